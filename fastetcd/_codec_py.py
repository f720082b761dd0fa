"""Pure-Python twin of the compiled codec (``src/_codec.pyx`` -> ``fastetcd._codec``).

This module is the fallback used when the compiled extension is not available. It exports
exactly the names declared in ``fastetcd/_codec.pyi`` and must stay byte-identical to the
compiled module: the same bytes out of every encoder, the same field values out of every
decoder and the same exception types for bad input. ``tests/test_codec.py`` runs every test
against both implementations and checks them against protobuf's own serializer and parser.

Encoding appends precomputed tag bytes and varints to a ``bytearray``; decoding walks the
input with an integer position and an explicit end (so a sub-message is never copied), and
raises :class:`fastetcd.errors.DecodeError` on any malformed input. No protobuf runtime is
imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import index as _index
from typing import Generic, SupportsIndex, TypeVar, Union

from fastetcd.errors import ArgumentTypeError, DecodeError, EmptyKeyError, InvalidArgumentError

__all__ = [
    "ResponseHeader",
    "KeyValue",
    "RangeResult",
    "PutResult",
    "DeleteResult",
    "TxnResult",
    "CompactResult",
    "OpResult",
    "SORT_NONE",
    "SORT_ASCEND",
    "SORT_DESCEND",
    "SORT_BY_KEY",
    "SORT_BY_VERSION",
    "SORT_BY_CREATE",
    "SORT_BY_MOD",
    "SORT_BY_VALUE",
    "CMP_EQUAL",
    "CMP_GREATER",
    "CMP_LESS",
    "CMP_NOT_EQUAL",
    "TARGET_VERSION",
    "TARGET_CREATE",
    "TARGET_MOD",
    "TARGET_VALUE",
    "TARGET_LEASE",
    "OP_RANGE",
    "OP_PUT",
    "OP_DELETE_RANGE",
    "OP_TXN",
    "Call",
    "to_bytes",
    "key_bytes",
    "int64",
    "encode_get",
    "encode_put",
    "decode_get_response",
    "prefix_range_end",
    "encode_range_request",
    "encode_put_request",
    "encode_delete_range_request",
    "encode_compare",
    "encode_request_op",
    "encode_txn_request",
    "encode_compaction_request",
    "decode_response_header",
    "decode_key_value",
    "decode_range_response",
    "decode_put_response",
    "decode_delete_range_response",
    "decode_txn_response",
    "decode_compaction_response",
]

# --------------------------------------------------------------------------- enum values

#: RangeRequest.SortOrder
SORT_NONE = 0
SORT_ASCEND = 1
SORT_DESCEND = 2
#: RangeRequest.SortTarget
SORT_BY_KEY = 0
SORT_BY_VERSION = 1
SORT_BY_CREATE = 2
SORT_BY_MOD = 3
SORT_BY_VALUE = 4
#: Compare.CompareResult
CMP_EQUAL = 0
CMP_GREATER = 1
CMP_LESS = 2
CMP_NOT_EQUAL = 3
#: Compare.CompareTarget
TARGET_VERSION = 0
TARGET_CREATE = 1
TARGET_MOD = 2
TARGET_VALUE = 3
TARGET_LEASE = 4
#: RequestOp oneof field numbers
OP_RANGE = 1
OP_PUT = 2
OP_DELETE_RANGE = 3
OP_TXN = 4

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63
_TWO64 = 1 << 64

#: A TxnResponse may hold at most this many TxnResponses on one nesting path (itself included).
_MAX_TXN_DEPTH = 32

_setattr = object.__setattr__

_T = TypeVar("_T")

# --------------------------------------------------------------------------- result classes


def _immutable(self: object, name: str, value: object = None) -> None:
    raise AttributeError(f"{type(self).__name__} objects are immutable (cannot change {name!r})")


class _Record:
    """Shared behaviour of the result classes: immutable, equal by class and field values,
    hashable, ``repr`` as ``Name(field=value, ...)`` and picklable. A subclass lists its
    fields in ``__slots__`` in constructor order."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple([getattr(self, name) for name in names])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), self._fields())

    __setattr__ = _immutable
    __delattr__ = _immutable


class ResponseHeader(_Record):
    """etcdserverpb.ResponseHeader: where and when a response was produced."""

    __slots__ = ("cluster_id", "member_id", "revision", "raft_term")

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int

    def __init__(
        self, cluster_id: int = 0, member_id: int = 0, revision: int = 0, raft_term: int = 0
    ) -> None:
        _setattr(self, "cluster_id", cluster_id)
        _setattr(self, "member_id", member_id)
        _setattr(self, "revision", revision)
        _setattr(self, "raft_term", raft_term)


class KeyValue(_Record):
    """mvccpb.KeyValue: one key with its value and revisions."""

    __slots__ = ("key", "value", "create_revision", "mod_revision", "version", "lease")

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    def __init__(
        self,
        key: bytes = b"",
        value: bytes = b"",
        create_revision: int = 0,
        mod_revision: int = 0,
        version: int = 0,
        lease: int = 0,
    ) -> None:
        _setattr(self, "key", key)
        _setattr(self, "value", value)
        _setattr(self, "create_revision", create_revision)
        _setattr(self, "mod_revision", mod_revision)
        _setattr(self, "version", version)
        _setattr(self, "lease", lease)


class RangeResult(_Record):
    """Result of a Range (get) request."""

    __slots__ = ("header", "kvs", "more", "count")

    header: ResponseHeader
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int

    def __init__(
        self,
        header: ResponseHeader,
        kvs: tuple[KeyValue, ...] = (),
        more: bool = False,
        count: int = 0,
    ) -> None:
        _setattr(self, "header", header)
        _setattr(self, "kvs", kvs)
        _setattr(self, "more", more)
        _setattr(self, "count", count)


class PutResult(_Record):
    """Result of a Put request."""

    __slots__ = ("header", "prev_kv")

    header: ResponseHeader
    prev_kv: KeyValue | None

    def __init__(self, header: ResponseHeader, prev_kv: KeyValue | None = None) -> None:
        _setattr(self, "header", header)
        _setattr(self, "prev_kv", prev_kv)


class DeleteResult(_Record):
    """Result of a DeleteRange request."""

    __slots__ = ("header", "deleted", "prev_kvs")

    header: ResponseHeader
    deleted: int
    prev_kvs: tuple[KeyValue, ...]

    def __init__(
        self, header: ResponseHeader, deleted: int = 0, prev_kvs: tuple[KeyValue, ...] = ()
    ) -> None:
        _setattr(self, "header", header)
        _setattr(self, "deleted", deleted)
        _setattr(self, "prev_kvs", prev_kvs)


class TxnResult(_Record):
    """Result of a Txn request: which branch ran and one result per op of that branch."""

    __slots__ = ("header", "succeeded", "responses")

    header: ResponseHeader
    succeeded: bool
    responses: tuple[OpResult, ...]

    def __init__(
        self,
        header: ResponseHeader,
        succeeded: bool = False,
        responses: tuple[OpResult, ...] = (),
    ) -> None:
        _setattr(self, "header", header)
        _setattr(self, "succeeded", succeeded)
        _setattr(self, "responses", responses)


class CompactResult(_Record):
    """Result of a Compaction request."""

    __slots__ = ("header",)

    header: ResponseHeader

    def __init__(self, header: ResponseHeader) -> None:
        _setattr(self, "header", header)


#: What one op of a txn produced.
OpResult = Union[RangeResult, PutResult, DeleteResult, TxnResult]

_EMPTY_HEADER = ResponseHeader(0, 0, 0, 0)

# --------------------------------------------------------------------------- encoding helpers

_SMALL_VARINTS = tuple(bytes((i,)) for i in range(128))


def _uvarint(value: int) -> bytes:
    """The varint bytes of a non-negative int below 2**64."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _uvarint((field << 3) | wire_type)


def _check_bytes(value: object, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def _check_int(value: object, name: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high]: TypeError for a non-int, OverflowError outside."""
    if type(value) is int:
        v = value
    elif isinstance(value, SupportsIndex):  # int subclasses (bool) and __index__ types
        v = _index(value)
    else:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if v < low or v > high:
        raise OverflowError(f"{name}={v} is out of range [{low}, {high}]")
    return v


def _int64_field(tag: bytes, value: object, name: str) -> bytes:
    """An int64 field (its varint is two's complement, so a negative value takes 10 bytes),
    or nothing when the value is 0."""
    v = _check_int(value, name, _INT64_MIN, _INT64_MAX)
    return tag + _uvarint(v & _MASK64) if v else b""


def _enum_field(tag: bytes, value: object, name: str) -> bytes:
    """An enum field (an int32, sign-extended to 64 bits as protobuf writes it), or nothing
    when the value is 0."""
    v = _check_int(value, name, _INT32_MIN, _INT32_MAX)
    return tag + _uvarint(v & _MASK64) if v else b""


def _bytes_field(tag: bytes, value: bytes) -> bytes:
    """A length-delimited field, or nothing when the value is empty."""
    return tag + _uvarint(len(value)) + value if value else b""


# Precomputed tags: _T<field>_<wire type> (wire type 0 = varint, 2 = length-delimited), and
# whole "bool field = true" fields.
_T1_0 = _tag(1, 0)
_T2_0 = _tag(2, 0)
_T3_0 = _tag(3, 0)
_T4_0 = _tag(4, 0)
_T5_0 = _tag(5, 0)
_T6_0 = _tag(6, 0)
_T10_0 = _tag(10, 0)
_T11_0 = _tag(11, 0)
_T12_0 = _tag(12, 0)
_T13_0 = _tag(13, 0)
_T1_2 = _tag(1, 2)
_T2_2 = _tag(2, 2)
_T3_2 = _tag(3, 2)
_T64_2 = _tag(64, 2)
_TRUE_2 = _tag(2, 0) + b"\x01"
_TRUE_3 = _tag(3, 0) + b"\x01"
_TRUE_4 = _tag(4, 0) + b"\x01"
_TRUE_5 = _tag(5, 0) + b"\x01"
_TRUE_6 = _tag(6, 0) + b"\x01"
_TRUE_7 = _tag(7, 0) + b"\x01"
_TRUE_8 = _tag(8, 0) + b"\x01"
_TRUE_9 = _tag(9, 0) + b"\x01"

# Compare target -> tag of its target_union member (VALUE is length-delimited, others varint).
_COMPARE_UNION_TAGS = {
    TARGET_VERSION: _tag(4, 0),
    TARGET_CREATE: _tag(5, 0),
    TARGET_MOD: _tag(6, 0),
    TARGET_VALUE: _tag(7, 2),
    TARGET_LEASE: _tag(8, 0),
}
# RequestOp kind -> tag of its oneof member.
_REQUEST_OP_TAGS = {kind: _tag(kind, 2) for kind in (OP_RANGE, OP_PUT, OP_DELETE_RANGE, OP_TXN)}

# --------------------------------------------------------------------------- planned calls


class Call(Generic[_T]):
    """One planned RPC: ``decode(transport.unary(method, request))`` is its result.

    ``repeatable`` is True for requests that may be sent again after an ambiguous failure
    (reads, and writes the caller marked ``idempotent=True``); other writes are False (etcd's
    Go client: repeatable vs nonRepeatable). The retry core (``fastetcd._retry``) decides
    from it. ``timeout`` is the caller's per-call deadline in seconds, retries included
    (None: the client's). Built by ``fastetcd._plan``; read-only.
    """

    __slots__ = ("method", "request", "decode", "repeatable", "timeout")

    method: str
    request: bytes
    decode: Callable[[bytes], _T]
    repeatable: bool
    timeout: float | None

    def __init__(
        self,
        method: str,
        request: bytes,
        decode: Callable[[bytes], _T],
        repeatable: bool,
        timeout: float | None = None,
    ) -> None:
        if not isinstance(method, str) or not isinstance(request, bytes):
            raise TypeError("Call(method: str, request: bytes, ...)")
        _setattr(self, "method", method)
        _setattr(self, "request", request)
        _setattr(self, "decode", decode)
        _setattr(self, "repeatable", bool(repeatable))
        _setattr(self, "timeout", timeout)

    __setattr__ = _immutable
    __delattr__ = _immutable

    def __repr__(self) -> str:
        return (
            f"Call({self.method}, {len(self.request)} bytes, repeatable={self.repeatable}, "
            f"timeout={self.timeout})"
        )


# --------------------------------------------------------------------------- user arguments


def to_bytes(value: object, what: str) -> bytes:
    """Return a user's key or value as bytes: bytes as they are, bytearray and memoryview
    copied, str encoded as UTF-8; anything else raises ``ArgumentTypeError``."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ArgumentTypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def key_bytes(key: object, what: str = "key") -> bytes:
    """Return a user's key as bytes (as :func:`to_bytes`); an empty key raises
    ``EmptyKeyError``, as etcd would."""
    data = to_bytes(key, what)
    if not data:
        raise EmptyKeyError(f"{what} must not be empty")
    return data


def int64(value: object, what: str, minimum: int = _INT64_MIN) -> int:
    """Return a user's int argument as an int in [minimum, 2**63-1]: bools and non-ints
    raise ``ArgumentTypeError``, values outside the range ``InvalidArgumentError``."""
    minimum = _check_int(minimum, "minimum", _INT64_MIN, _INT64_MAX)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be an int, not {type(value).__name__}")
    if not minimum <= value <= _INT64_MAX:
        raise InvalidArgumentError(
            f"{what} must be between {minimum} and {_INT64_MAX}, not {value}"
        )
    return int(value)


def encode_get(key: object, revision: object, serializable: object) -> bytes:
    """A client's get arguments, checked and coerced (``key`` bytes or str, not empty;
    ``revision`` an int >= 0), encoded as the RangeRequest for that one key."""
    k = key_bytes(key)
    rev = int64(revision, "revision", 0)
    return (
        _bytes_field(_T1_2, k)
        + _int64_field(_T4_0, rev, "revision")
        + (_TRUE_7 if serializable else b"")
    )


def encode_put(
    key: object,
    value: object,
    lease: object,
    prev_kv: object,
    ignore_value: object,
    ignore_lease: object,
) -> bytes:
    """A client's put arguments, checked and coerced (keys and values as bytes or str,
    ``lease`` an int64), encoded as a PutRequest; bad arguments raise the
    ``fastetcd.errors`` exceptions of :func:`key_bytes`, :func:`to_bytes` and
    :func:`int64`."""
    return encode_put_request(
        key_bytes(key),
        to_bytes(value, "value"),
        int64(lease, "lease"),
        bool(prev_kv),
        bool(ignore_value),
        bool(ignore_lease),
    )


# --------------------------------------------------------------------------- encoders


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's prefix end: drop trailing 0xff bytes, then add one to the last byte.
    All-0xff or empty input gives b"\\x00" ("to the end of the keyspace")."""
    _check_bytes(prefix, "prefix")
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def encode_range_request(
    key: bytes,
    range_end: bytes,
    limit: int,
    revision: int,
    sort_order: int,
    sort_target: int,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: int,
    max_mod_revision: int,
    min_create_revision: int,
    max_create_revision: int,
) -> bytes:
    """RangeRequest: key=1 range_end=2 limit=3 revision=4 sort_order=5 sort_target=6
    serializable=7 keys_only=8 count_only=9 min_mod_revision=10 max_mod_revision=11
    min_create_revision=12 max_create_revision=13 (all ints int64, enums varint)."""
    _check_bytes(key, "key")
    _check_bytes(range_end, "range_end")
    return b"".join(
        (
            _bytes_field(_T1_2, key),
            _bytes_field(_T2_2, range_end),
            _int64_field(_T3_0, limit, "limit"),
            _int64_field(_T4_0, revision, "revision"),
            _enum_field(_T5_0, sort_order, "sort_order"),
            _enum_field(_T6_0, sort_target, "sort_target"),
            _TRUE_7 if serializable else b"",
            _TRUE_8 if keys_only else b"",
            _TRUE_9 if count_only else b"",
            _int64_field(_T10_0, min_mod_revision, "min_mod_revision"),
            _int64_field(_T11_0, max_mod_revision, "max_mod_revision"),
            _int64_field(_T12_0, min_create_revision, "min_create_revision"),
            _int64_field(_T13_0, max_create_revision, "max_create_revision"),
        )
    )


# -------------------- whole calls (the planning of the hot client methods, in one step)

#: The gRPC method paths of the calls planned here.
KV_RANGE = "/etcdserverpb.KV/Range"
KV_PUT = "/etcdserverpb.KV/Put"


def check_timeout(timeout: object) -> float | None:
    """Check a per-call ``timeout``: None, or a finite number of seconds > 0 (returned as a
    float); anything else raises ``InvalidArgumentError``."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgumentError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not 0 < timeout < float("inf"):
        raise InvalidArgumentError(f"timeout must be > 0 seconds, not {timeout!r}")
    return float(timeout)


def plan_get(
    key: object, revision: object, serializable: object, timeout: object
) -> Call[KeyValue | None]:
    """The :class:`Call` of a get: :func:`encode_get`'s request to ``KV_RANGE``, decoded
    by :func:`decode_get_response`, repeatable, with the checked ``timeout``."""
    return Call(
        KV_RANGE,
        encode_get(key, revision, serializable),
        decode_get_response,
        True,
        check_timeout(timeout),
    )


def plan_put(
    key: object,
    value: object,
    lease: object,
    prev_kv: object,
    ignore_value: object,
    ignore_lease: object,
    timeout: object,
    idempotent: object,
) -> Call[PutResult]:
    """The :class:`Call` of a put: :func:`encode_put`'s request to ``KV_PUT``, decoded by
    :func:`decode_put_response`, repeatable only if ``idempotent``, with the checked
    ``timeout``."""
    return Call(
        KV_PUT,
        encode_put(key, value, lease, prev_kv, ignore_value, ignore_lease),
        decode_put_response,
        bool(idempotent),
        check_timeout(timeout),
    )


def encode_put_request(
    key: bytes, value: bytes, lease: int, prev_kv: bool, ignore_value: bool, ignore_lease: bool
) -> bytes:
    """PutRequest: key=1 value=2 lease=3 prev_kv=4 ignore_value=5 ignore_lease=6."""
    _check_bytes(key, "key")
    _check_bytes(value, "value")
    return b"".join(
        (
            _bytes_field(_T1_2, key),
            _bytes_field(_T2_2, value),
            _int64_field(_T3_0, lease, "lease"),
            _TRUE_4 if prev_kv else b"",
            _TRUE_5 if ignore_value else b"",
            _TRUE_6 if ignore_lease else b"",
        )
    )


def encode_delete_range_request(key: bytes, range_end: bytes, prev_kv: bool) -> bytes:
    """DeleteRangeRequest: key=1 range_end=2 prev_kv=3."""
    _check_bytes(key, "key")
    _check_bytes(range_end, "range_end")
    return _bytes_field(_T1_2, key) + _bytes_field(_T2_2, range_end) + (_TRUE_3 if prev_kv else b"")


def encode_compare(
    result: int, target: int, key: bytes, range_end: bytes, value: int | bytes
) -> bytes:
    """Compare: result=1 target=2 key=3, then the oneof target_union chosen by ``target``
    (version=4, create_revision=5, mod_revision=6 as int64; value=7 as bytes; lease=8
    as int64) always written, then range_end=64. ``value`` must be bytes for
    TARGET_VALUE and int otherwise (TypeError if not); ValueError for unknown target."""
    result_field = _enum_field(_T1_0, result, "result")
    target_i = _check_int(target, "target", _INT32_MIN, _INT32_MAX)
    union_tag = _COMPARE_UNION_TAGS.get(target_i)
    if union_tag is None:
        raise ValueError(f"unknown compare target {target_i}")
    _check_bytes(key, "key")
    _check_bytes(range_end, "range_end")
    if target_i == TARGET_VALUE:
        operand = _check_bytes(value, "value")
        union_field = union_tag + _uvarint(len(operand)) + operand
    else:
        v = _check_int(value, "value", _INT64_MIN, _INT64_MAX)
        union_field = union_tag + _uvarint(v & _MASK64)
    return b"".join(
        (
            result_field,
            _enum_field(_T2_0, target_i, "target"),
            _bytes_field(_T3_2, key),
            union_field,  # a set oneof member is written even when it is 0 or b""
            _bytes_field(_T64_2, range_end),
        )
    )


def encode_request_op(kind: int, request: bytes) -> bytes:
    """RequestOp: wrap an encoded request as oneof field ``kind`` (OP_RANGE..OP_TXN),
    always written even when ``request`` is empty. ValueError for an unknown kind."""
    kind_i = _check_int(kind, "kind", _INT32_MIN, _INT32_MAX)
    tag = _REQUEST_OP_TAGS.get(kind_i)
    if tag is None:
        raise ValueError(f"unknown request op kind {kind_i}")
    _check_bytes(request, "request")
    return tag + _uvarint(len(request)) + request


def encode_txn_request(
    compare: Sequence[bytes], success: Sequence[bytes], failure: Sequence[bytes]
) -> bytes:
    """TxnRequest: compare=1, success=2, failure=3; each element is an already-encoded
    Compare / RequestOp message, written as a length-delimited field."""
    parts: list[bytes] = []
    for tag, items, name in (
        (_T1_2, compare, "compare"),
        (_T2_2, success, "success"),
        (_T3_2, failure, "failure"),
    ):
        if isinstance(items, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"{name} must be a sequence of bytes, not {type(items).__name__}")
        for item in items:
            _check_bytes(item, name + " element")
            parts += (tag, _uvarint(len(item)), item)  # written even when empty
    return b"".join(parts)


def encode_compaction_request(revision: int, physical: bool) -> bytes:
    """CompactionRequest: revision=1 (int64) physical=2."""
    return _int64_field(_T1_0, revision, "revision") + (_TRUE_2 if physical else b"")


# --------------------------------------------------------------------------- decoding helpers


def _as_bytes(data: object) -> bytes:
    """The input as ``bytes`` (any bytes-like object is accepted)."""
    if type(data) is bytes:
        return data
    return memoryview(data).tobytes()  # type: ignore[arg-type]


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read an unsigned varint starting at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        if shift == 63:  # the 10th byte may only carry the top bit
            if byte > 1:
                raise DecodeError("varint is longer than 64 bits")
            return result | (byte << 63), pos
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise DecodeError("truncated varint")


def _tag_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a field tag (a varint that fits in 32 bits, as protobuf requires)."""
    tag, pos = _varint(buf, pos, end)
    if tag > 0xFFFFFFFF:
        raise DecodeError(f"field tag {tag} does not fit in 32 bits")
    return tag, pos


def _length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read the length of a length-delimited field and check it fits before ``end``."""
    if pos < end and buf[pos] < 0x80:
        n = buf[pos]
        pos += 1
    else:
        n, pos = _varint(buf, pos, end)
    if n > end - pos:
        raise DecodeError(f"length {n} runs past the end of the message")
    return n, pos


def _skip(buf: bytes, pos: int, end: int, tag: int, known: frozenset[int]) -> int:
    """Skip one unknown field whose tag was just read; return the position after it."""
    field = tag >> 3
    wire_type = tag & 7
    if field == 0:
        raise DecodeError("field number 0 is invalid")
    if field in known:
        raise DecodeError(f"field {field} has the wrong wire type {wire_type}")
    if wire_type == 0:
        return _varint(buf, pos, end)[1]
    if wire_type == 2:
        n, pos = _length(buf, pos, end)
        return pos + n
    if wire_type == 1:
        size = 8
    elif wire_type == 5:
        size = 4
    else:
        raise DecodeError(f"unsupported wire type {wire_type} (field {field})")
    if size > end - pos:
        raise DecodeError("truncated fixed-width field")
    return pos + size


def _int64(value: int) -> int:
    """Reinterpret a 64-bit varint as a signed int64."""
    return value - _TWO64 if value & _SIGN64 else value


_HEADER_FIELDS = frozenset({1, 2, 3, 4})
_KV_FIELDS = frozenset({1, 2, 3, 4, 5, 6})
_RANGE_FIELDS = frozenset({1, 2, 3, 4})
_PUT_FIELDS = frozenset({1, 2})
_DELETE_FIELDS = frozenset({1, 2, 3})
_TXN_FIELDS = frozenset({1, 2, 3})
_OP_FIELDS = frozenset({1, 2, 3, 4})
_COMPACT_FIELDS = frozenset({1})


def _header(buf: bytes, pos: int, end: int) -> ResponseHeader:
    cluster_id = member_id = revision = raft_term = 0
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x08:
            cluster_id, pos = _varint(buf, pos, end)
        elif tag == 0x10:
            member_id, pos = _varint(buf, pos, end)
        elif tag == 0x18:
            revision, pos = _varint(buf, pos, end)
            revision = _int64(revision)
        elif tag == 0x20:
            raft_term, pos = _varint(buf, pos, end)
        else:
            pos = _skip(buf, pos, end, tag, _HEADER_FIELDS)
    header = ResponseHeader.__new__(ResponseHeader)
    _setattr(header, "cluster_id", cluster_id)
    _setattr(header, "member_id", member_id)
    _setattr(header, "revision", revision)
    _setattr(header, "raft_term", raft_term)
    return header


# Slot setters of KeyValue, bound once: the decoder builds thousands of these per response and
# calling a member descriptor's __set__ is cheaper than object.__setattr__ by name.
_kv_key_set, _kv_value_set, _kv_create_set, _kv_mod_set, _kv_version_set, _kv_lease_set = (
    KeyValue.__dict__[name].__set__ for name in KeyValue.__slots__
)
_new = object.__new__


def _key_value(buf: bytes, pos: int, end: int) -> KeyValue:
    # The hot path of a range response: varints and lengths are read inline here, with
    # _varint only for the rare 10-byte varint and _length's checks spelled out.
    key = value = b""
    create_revision = mod_revision = version = lease = 0
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _tag_at(buf, pos - 1, end)
        if tag == 0x0A or tag == 0x2A:  # key, value
            if pos >= end:
                raise DecodeError("truncated length")
            n = buf[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint(buf, pos - 1, end)
            if n > end - pos:
                raise DecodeError(f"length {n} runs past the end of the message")
            if tag == 0x0A:
                key = buf[pos : pos + n]
            else:
                value = buf[pos : pos + n]
            pos += n
        elif tag == 0x10 or tag == 0x18 or tag == 0x20 or tag == 0x30:  # the int64 fields
            start = pos
            number = shift = 0
            while True:
                if pos >= end:
                    raise DecodeError("truncated varint")
                byte = buf[pos]
                pos += 1
                number |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift == 63:  # a 10th byte follows: let _varint check it
                    number, pos = _varint(buf, start, end)
                    break
            if number >= _SIGN64:
                number -= _TWO64
            if tag == 0x10:
                create_revision = number
            elif tag == 0x18:
                mod_revision = number
            elif tag == 0x20:
                version = number
            else:
                lease = number
        else:
            pos = _skip(buf, pos, end, tag, _KV_FIELDS)
    kv: KeyValue = _new(KeyValue)
    _kv_key_set(kv, key)
    _kv_value_set(kv, value)
    _kv_create_set(kv, create_revision)
    _kv_mod_set(kv, mod_revision)
    _kv_version_set(kv, version)
    _kv_lease_set(kv, lease)
    return kv


def _range(buf: bytes, pos: int, end: int) -> RangeResult:
    header = _EMPTY_HEADER
    kvs: list[KeyValue] = []
    more = False
    count = 0
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x12:
            n, pos = _length(buf, pos, end)
            kvs.append(_key_value(buf, pos, pos + n))
            pos += n
        elif tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        elif tag == 0x18:
            flag, pos = _varint(buf, pos, end)
            more = flag != 0
        elif tag == 0x20:
            count, pos = _varint(buf, pos, end)
            count = _int64(count)
        else:
            pos = _skip(buf, pos, end, tag, _RANGE_FIELDS)
    result = RangeResult.__new__(RangeResult)
    _setattr(result, "header", header)
    _setattr(result, "kvs", tuple(kvs))
    _setattr(result, "more", more)
    _setattr(result, "count", count)
    return result


def _put(buf: bytes, pos: int, end: int) -> PutResult:
    header = _EMPTY_HEADER
    prev_kv = None
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        elif tag == 0x12:
            n, pos = _length(buf, pos, end)
            prev_kv = _key_value(buf, pos, pos + n)
            pos += n
        else:
            pos = _skip(buf, pos, end, tag, _PUT_FIELDS)
    result = PutResult.__new__(PutResult)
    _setattr(result, "header", header)
    _setattr(result, "prev_kv", prev_kv)
    return result


def _delete(buf: bytes, pos: int, end: int) -> DeleteResult:
    header = _EMPTY_HEADER
    deleted = 0
    prev_kvs: list[KeyValue] = []
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x1A:
            n, pos = _length(buf, pos, end)
            prev_kvs.append(_key_value(buf, pos, pos + n))
            pos += n
        elif tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        elif tag == 0x10:
            deleted, pos = _varint(buf, pos, end)
            deleted = _int64(deleted)
        else:
            pos = _skip(buf, pos, end, tag, _DELETE_FIELDS)
    result = DeleteResult.__new__(DeleteResult)
    _setattr(result, "header", header)
    _setattr(result, "deleted", deleted)
    _setattr(result, "prev_kvs", tuple(prev_kvs))
    return result


def _response_op(buf: bytes, pos: int, end: int, depth: int) -> OpResult:
    """One ResponseOp of a TxnResponse at nesting ``depth`` (the outermost txn is 1)."""
    response: OpResult | None = None
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x0A:
            n, pos = _length(buf, pos, end)
            response = _range(buf, pos, pos + n)
            pos += n
        elif tag == 0x12:
            n, pos = _length(buf, pos, end)
            response = _put(buf, pos, pos + n)
            pos += n
        elif tag == 0x1A:
            n, pos = _length(buf, pos, end)
            response = _delete(buf, pos, pos + n)
            pos += n
        elif tag == 0x22:
            if depth >= _MAX_TXN_DEPTH:
                raise DecodeError(f"txn responses nested deeper than {_MAX_TXN_DEPTH}")
            n, pos = _length(buf, pos, end)
            response = _txn(buf, pos, pos + n, depth + 1)
            pos += n
        else:
            pos = _skip(buf, pos, end, tag, _OP_FIELDS)
    if response is None:
        raise DecodeError("ResponseOp has no response set")
    return response


def _txn(buf: bytes, pos: int, end: int, depth: int) -> TxnResult:
    header = _EMPTY_HEADER
    succeeded = False
    responses: list[OpResult] = []
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x1A:
            n, pos = _length(buf, pos, end)
            responses.append(_response_op(buf, pos, pos + n, depth))
            pos += n
        elif tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        elif tag == 0x10:
            flag, pos = _varint(buf, pos, end)
            succeeded = flag != 0
        else:
            pos = _skip(buf, pos, end, tag, _TXN_FIELDS)
    result = TxnResult.__new__(TxnResult)
    _setattr(result, "header", header)
    _setattr(result, "succeeded", succeeded)
    _setattr(result, "responses", tuple(responses))
    return result


def _compact(buf: bytes, pos: int, end: int) -> CompactResult:
    header = _EMPTY_HEADER
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        else:
            pos = _skip(buf, pos, end, tag, _COMPACT_FIELDS)
    result = CompactResult.__new__(CompactResult)
    _setattr(result, "header", header)
    return result


# --------------------------------------------------------------------------- decoders


def decode_response_header(data: bytes) -> ResponseHeader:
    """ResponseHeader: cluster_id=1 member_id=2 (uint64) revision=3 (int64) raft_term=4 (uint64)."""
    buf = _as_bytes(data)
    return _header(buf, 0, len(buf))


def decode_key_value(data: bytes) -> KeyValue:
    """mvccpb.KeyValue: key=1 create_revision=2 mod_revision=3 version=4 value=5 lease=6."""
    buf = _as_bytes(data)
    return _key_value(buf, 0, len(buf))


def decode_range_response(data: bytes) -> RangeResult:
    """RangeResponse: header=1 kvs=2 (repeated KeyValue) more=3 count=4 (int64)."""
    buf = _as_bytes(data)
    return _range(buf, 0, len(buf))


def decode_get_response(data: bytes) -> KeyValue | None:
    """A RangeResponse's first key-value, or None when it has none (the result of a
    get)."""
    kvs = decode_range_response(data).kvs
    return kvs[0] if kvs else None


def decode_put_response(data: bytes) -> PutResult:
    """PutResponse: header=1 prev_kv=2."""
    buf = _as_bytes(data)
    return _put(buf, 0, len(buf))


def decode_delete_range_response(data: bytes) -> DeleteResult:
    """DeleteRangeResponse: header=1 deleted=2 (int64) prev_kvs=3 (repeated KeyValue)."""
    buf = _as_bytes(data)
    return _delete(buf, 0, len(buf))


def decode_txn_response(data: bytes) -> TxnResult:
    """TxnResponse: header=1 succeeded=2 responses=3 (repeated ResponseOp: response_range=1
    response_put=2 response_delete_range=3 response_txn=4)."""
    buf = _as_bytes(data)
    return _txn(buf, 0, len(buf), 1)


def decode_compaction_response(data: bytes) -> CompactResult:
    """CompactionResponse: header=1."""
    buf = _as_bytes(data)
    return _compact(buf, 0, len(buf))
