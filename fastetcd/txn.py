"""Transactions: compares and the operations run when they hold (or not).

A transaction is ``client.txn(compare, success, failure)``: if every compare in ``compare``
holds, the ops in ``success`` run, else those in ``failure``; all atomically, at one revision.

Compares are written with the targets below and Python's comparison operators::

    from fastetcd.txn import Value, Version, ModRevision, Put, Get, Delete

    client.txn(
        [Version(b"/cfg") > 0, Value(b"/cfg") == b"old"],
        [Put(b"/cfg", b"new")],
        [Get(b"/cfg")],
    )

Targets: :class:`Value`, :class:`Version`, :class:`CreateRevision`, :class:`ModRevision`,
:class:`LeaseValue`; operators ``==``, ``!=``, ``<``, ``>``. A target may cover a range of
keys (``prefix=True`` or ``range_end=...``): the compare then holds only if it holds for every
key in the range. Ops: :class:`Get`, :class:`Put`, :class:`Delete` and a nested :class:`Txn`.
Everything here is immutable and is validated and encoded when it is built, so a bad
argument raises where it is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from . import _requests
from ._impl import codec
from .errors import ArgumentTypeError
from .kv import SortOrder, SortTarget

__all__ = [
    "Compare",
    "Value",
    "Version",
    "CreateRevision",
    "ModRevision",
    "LeaseValue",
    "Op",
    "Get",
    "Put",
    "Delete",
    "Txn",
    "key_exists",
    "key_missing",
    "encode_txn",
]

_OPERATORS = {
    codec.CMP_EQUAL: "==",
    codec.CMP_NOT_EQUAL: "!=",
    codec.CMP_LESS: "<",
    codec.CMP_GREATER: ">",
}


class Compare:
    """One condition of a transaction; built by comparing a target, e.g.
    ``Value(b"k") == b"v"``. Immutable."""

    __slots__ = ("target", "key", "range_end", "result", "value", "_pb")

    target: int
    key: bytes
    range_end: bytes
    result: int
    value: int | bytes
    _pb: bytes

    def __init__(
        self, target: int, key: bytes, range_end: bytes, result: int, value: int | bytes
    ) -> None:
        pb = codec.encode_compare(result, target, key, range_end, value)
        for name, item in (
            ("target", target),
            ("key", key),
            ("range_end", range_end),
            ("result", result),
            ("value", value),
            ("_pb", pb),
        ):
            object.__setattr__(self, name, item)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        names = {
            codec.TARGET_VALUE: "Value",
            codec.TARGET_VERSION: "Version",
            codec.TARGET_CREATE: "CreateRevision",
            codec.TARGET_MOD: "ModRevision",
            codec.TARGET_LEASE: "LeaseValue",
        }
        end = f", range_end={self.range_end!r}" if self.range_end else ""
        return f"{names[self.target]}({self.key!r}{end}) {_OPERATORS[self.result]} {self.value!r}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Compare) and self._pb == other._pb

    def __hash__(self) -> int:
        return hash(self._pb)

    def __reduce__(self) -> tuple[object, ...]:
        return (Compare, (self.target, self.key, self.range_end, self.result, self.value))


class _Target:
    """A compare target: comparing it with a value gives a :class:`Compare`."""

    __slots__ = ("key", "range_end")
    _target: ClassVar[int]

    def __init__(
        self,
        key: _requests.BytesLike,
        range_end: _requests.BytesLike | None = None,
        *,
        prefix: bool = False,
    ) -> None:
        """``key`` alone, or every key with that prefix, or the keys in ``[key, range_end)``."""
        self.key, self.range_end = _requests.range_bounds(key, range_end, prefix, False)

    def _operand(self, value: object) -> int | bytes:
        return _requests.int64(value, f"{type(self).__name__} operand")

    def _compare(self, result: int, value: object) -> Compare:
        return Compare(self._target, self.key, self.range_end, result, self._operand(value))

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return self._compare(codec.CMP_EQUAL, value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return self._compare(codec.CMP_NOT_EQUAL, value)

    def __lt__(self, value: object) -> Compare:
        return self._compare(codec.CMP_LESS, value)

    def __gt__(self, value: object) -> Compare:
        return self._compare(codec.CMP_GREATER, value)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        end = f", range_end={self.range_end!r}" if self.range_end else ""
        return f"{type(self).__name__}({self.key!r}{end})"


class Value(_Target):
    """Compare a key's value (bytes or str) with ``==``, ``!=``, ``<``, ``>``."""

    __slots__ = ()
    _target = codec.TARGET_VALUE

    def _operand(self, value: object) -> int | bytes:
        return _requests.to_bytes(value, "Value operand")


class Version(_Target):
    """Compare a key's version (number of puts since creation; 0 = key absent)."""

    __slots__ = ()
    _target = codec.TARGET_VERSION


class CreateRevision(_Target):
    """Compare the revision at which a key was created (0 = key absent)."""

    __slots__ = ()
    _target = codec.TARGET_CREATE


class ModRevision(_Target):
    """Compare the revision at which a key was last modified (0 = key absent)."""

    __slots__ = ()
    _target = codec.TARGET_MOD


class LeaseValue(_Target):
    """Compare the lease id a key is attached to (0 = no lease)."""

    __slots__ = ()
    _target = codec.TARGET_LEASE


def key_exists(key: _requests.BytesLike) -> Compare:
    """A compare that holds when ``key`` exists (``Version(key) > 0``)."""
    return Version(key) > 0


def key_missing(key: _requests.BytesLike) -> Compare:
    """A compare that holds when ``key`` does not exist (``Version(key) == 0``)."""
    return Version(key) == 0


class Op:
    """Base of the operations a transaction runs. Immutable; holds its encoded request."""

    __slots__ = ("_pb",)
    _pb: bytes

    def _set(self, kind: int, request: bytes) -> None:
        object.__setattr__(self, "_pb", codec.encode_request_op(kind, request))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and type(other) is type(self) and self._pb == other._pb

    def __hash__(self) -> int:
        return hash(self._pb)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<RequestOp of {len(self._pb)} bytes>)"


class Get(Op):
    """Read a key or range inside a transaction (options as for ``Client.range``);
    its result is a ``RangeResult``."""

    __slots__ = ()

    def __init__(
        self,
        key: _requests.BytesLike,
        range_end: _requests.BytesLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_target: SortTarget | str = SortTarget.KEY,
        sort_order: SortOrder | str = SortOrder.NONE,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> None:
        self._set(
            codec.OP_RANGE,
            _requests.encode_range(
                key,
                range_end,
                prefix=prefix,
                from_key=from_key,
                limit=limit,
                revision=revision,
                sort_target=sort_target,
                sort_order=sort_order,
                serializable=serializable,
                keys_only=keys_only,
                count_only=count_only,
                min_mod_revision=min_mod_revision,
                max_mod_revision=max_mod_revision,
                min_create_revision=min_create_revision,
                max_create_revision=max_create_revision,
            ),
        )


class Put(Op):
    """Write a key inside a transaction (options as for ``Client.put``); its result is a
    ``PutResult``."""

    __slots__ = ()

    def __init__(
        self,
        key: _requests.BytesLike,
        value: _requests.BytesLike,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> None:
        self._set(
            codec.OP_PUT,
            _requests.encode_put(
                key,
                value,
                lease=lease,
                prev_kv=prev_kv,
                ignore_value=ignore_value,
                ignore_lease=ignore_lease,
            ),
        )


class Delete(Op):
    """Delete a key or range inside a transaction (options as for ``Client.delete``); its
    result is a ``DeleteResult``."""

    __slots__ = ()

    def __init__(
        self,
        key: _requests.BytesLike,
        range_end: _requests.BytesLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> None:
        self._set(
            codec.OP_DELETE_RANGE,
            _requests.encode_delete(
                key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv
            ),
        )


class Txn(Op):
    """A transaction nested inside another one; its result is a ``TxnResult``."""

    __slots__ = ()

    def __init__(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
    ) -> None:
        self._set(codec.OP_TXN, encode_txn(compare, success, failure))


def encode_txn(compare: Iterable[Compare], success: Iterable[Op], failure: Iterable[Op]) -> bytes:
    """Validate the parts of a transaction and encode a TxnRequest."""
    if isinstance(compare, (Compare, Op)) or isinstance(success, Op) or isinstance(failure, Op):
        raise ArgumentTypeError("compare, success and failure must be lists, not single items")
    cmps = []
    for item in compare:
        if not isinstance(item, Compare):
            raise ArgumentTypeError(
                f"compare items must be fastetcd.txn.Compare, not {type(item).__name__} "
                "(write e.g. Value(b'k') == b'v')"
            )
        cmps.append(item._pb)
    return codec.encode_txn_request(
        cmps, _op_bytes(success, "success"), _op_bytes(failure, "failure")
    )


def _op_bytes(ops: Iterable[Op], what: str) -> list[bytes]:
    out = []
    for op in ops:
        if not isinstance(op, Op) or type(op) is Op:
            raise ArgumentTypeError(
                f"{what} items must be fastetcd.txn.Get/Put/Delete/Txn, not {type(op).__name__}"
            )
        out.append(op._pb)
    return out
