"""User arguments -> request bytes: validation, coercion and encoding of KV requests.

Shared by the client methods (through ``_plan``) and by the txn ops (``txn``), so a bad
argument raises the same ``fastetcd.errors`` exception, in the caller's frame, wherever it
is used.
"""

from __future__ import annotations

from typing import Union

from ._impl import codec
from .errors import InvalidArgumentError
from .kv import SortOrder, SortTarget

__all__ = [
    "BytesLike",
    "to_bytes",
    "key_bytes",
    "int64",
    "range_bounds",
    "encode_range",
    "encode_put",
    "encode_delete",
    "encode_compact",
]

#: What fastetcd accepts as a key or value: bytes as they are, str as UTF-8.
BytesLike = Union[bytes, bytearray, memoryview, str]

#: The checks of a user's keys, values and ints live in the codec (compiled, with its twin):
#: bytes or str (UTF-8) for keys and values, a non-empty key, ints within int64.
to_bytes = codec.to_bytes
key_bytes = codec.key_bytes
int64 = codec.int64


def range_bounds(
    key: object, range_end: object | None, prefix: bool, from_key: bool
) -> tuple[bytes, bytes]:
    """Resolve (key, range_end) from a key and the mutually exclusive range options.

    ``prefix``: every key starting with ``key`` (an empty key means every key).
    ``from_key``: every key >= ``key`` (an empty key means every key).
    ``range_end``: keys in ``[key, range_end)``. None of them: ``key`` alone.
    """
    if (range_end is not None) + bool(prefix) + bool(from_key) > 1:
        raise InvalidArgumentError("prefix, from_key and range_end are mutually exclusive")
    if prefix:
        start = to_bytes(key, "key")
        if not start:
            return b"\x00", b"\x00"
        return start, codec.prefix_range_end(start)
    if from_key:
        return to_bytes(key, "key") or b"\x00", b"\x00"
    start = key_bytes(key)
    if range_end is None:
        return start, b""
    return start, to_bytes(range_end, "range_end")


def _sort_target(value: object) -> int:
    if isinstance(value, str):
        try:
            return SortTarget[value.upper()]
        except KeyError:
            pass
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value in SortTarget._value2member_map_
    ):
        return int(value)
    raise InvalidArgumentError(f"invalid sort_target {value!r}: use a fastetcd.SortTarget")


def _sort_order(value: object) -> int:
    if isinstance(value, str):
        try:
            return SortOrder[value.upper()]
        except KeyError:
            pass
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value in SortOrder._value2member_map_
    ):
        return int(value)
    raise InvalidArgumentError(f"invalid sort_order {value!r}: use a fastetcd.SortOrder")


def encode_range(
    key: object,
    range_end: object | None = None,
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
) -> bytes:
    """Validate range arguments and encode a RangeRequest."""
    start, end = range_bounds(key, range_end, prefix, from_key)
    if sort_target is SortTarget.KEY and sort_order is SortOrder.NONE:  # the defaults
        target = order = 0
    else:
        target = _sort_target(sort_target)
        order = _sort_order(sort_order)
    if target == SortTarget.KEY and order == SortOrder.ASCEND:
        # The server returns keys in ascending order anyway (as etcd's Go client does).
        order = SortOrder.NONE
    return codec.encode_range_request(
        start,
        end,
        int64(limit, "limit", 0),
        int64(revision, "revision", 0),
        order,
        target,
        bool(serializable),
        bool(keys_only),
        bool(count_only),
        int64(min_mod_revision, "min_mod_revision", 0),
        int64(max_mod_revision, "max_mod_revision", 0),
        int64(min_create_revision, "min_create_revision", 0),
        int64(max_create_revision, "max_create_revision", 0),
    )


def encode_put(
    key: object,
    value: object,
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> bytes:
    """Validate put arguments and encode a PutRequest."""
    return codec.encode_put(key, value, lease, prev_kv, ignore_value, ignore_lease)


def encode_delete(
    key: object,
    range_end: object | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
) -> bytes:
    """Validate delete arguments and encode a DeleteRangeRequest."""
    start, end = range_bounds(key, range_end, prefix, from_key)
    return codec.encode_delete_range_request(start, end, bool(prev_kv))


def encode_compact(revision: int, physical: bool = False) -> bytes:
    """Validate compact arguments and encode a CompactionRequest."""
    return codec.encode_compaction_request(int64(revision, "revision", 1), bool(physical))
