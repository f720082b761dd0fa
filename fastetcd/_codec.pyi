"""Type stub shared by the compiled codec (``fastetcd._codec``, built from ``src/_codec.pyx``)
and its pure-Python twin (``fastetcd._codec_py``). Both modules export exactly these names and
must behave identically: same bytes out, same objects out, same exceptions.

Encoding rules (proto3, as protobuf's own serializer writes them):
  * fields in ascending field-number order;
  * scalar fields equal to their default (0, False, b"") are omitted;
  * a set ``oneof`` member is always written, even when its value is the default
    (Compare.target_union, RequestOp.request);
  * elements of repeated message fields are always written, even when empty;
  * int64 values are varints of their 64-bit two's complement (negative -> 10 bytes);
  * ints outside the field's range raise OverflowError; a non-int raises TypeError;
    keys/values must be ``bytes`` (TypeError otherwise).

Decoding rules:
  * unknown fields of wire types 0, 1, 2 and 5 are skipped;
  * truncated input, an over-long varint (more than 10 bytes, or a 10th byte > 1), a
    length past the end, wire types 3/4/6/7, field number 0, a known field with the wrong
    wire type, a ResponseOp with no response set, or nesting deeper than 32 TxnResponses
    raise ``fastetcd.errors.DecodeError``;
  * a scalar field seen twice: the last value wins; a singular message field seen twice:
    the last one wins (protobuf would merge; etcd never sends this);
  * an absent header decodes as ``ResponseHeader(0, 0, 0, 0)``; an absent prev_kv as None;
  * int64 fields are read as signed, uint64 fields (header ids, raft_term) as unsigned;
  * bool fields: any non-zero varint is True;
  * ``data`` may be any bytes-like object (bytes, bytearray, memoryview); keys and values
    in results are always ``bytes``.

Result classes: slotted and immutable (setting any attribute raises AttributeError);
constructors take the fields positionally in the order shown; ``==`` is true for two objects
of the same class with equal fields (NotImplemented otherwise), ``hash`` hashes the fields,
``repr`` is ``ClassName(field=value, ...)`` in constructor order, and they pickle (via
``__reduce__`` returning ``(type(self), fields_tuple)``).
"""

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, Union

_T = TypeVar("_T")

class ResponseHeader:
    """etcdserverpb.ResponseHeader: where and when a response was produced."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int
    def __init__(
        self, cluster_id: int = 0, member_id: int = 0, revision: int = 0, raft_term: int = 0
    ) -> None: ...

class KeyValue:
    """mvccpb.KeyValue: one key with its value and revisions."""

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
    ) -> None: ...

class RangeResult:
    """Result of a Range (get) request."""

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
    ) -> None: ...

class PutResult:
    """Result of a Put request."""

    header: ResponseHeader
    prev_kv: KeyValue | None
    def __init__(self, header: ResponseHeader, prev_kv: KeyValue | None = None) -> None: ...

class DeleteResult:
    """Result of a DeleteRange request."""

    header: ResponseHeader
    deleted: int
    prev_kvs: tuple[KeyValue, ...]
    def __init__(
        self, header: ResponseHeader, deleted: int = 0, prev_kvs: tuple[KeyValue, ...] = ()
    ) -> None: ...

OpResult = Union[RangeResult, PutResult, DeleteResult, "TxnResult"]

class TxnResult:
    """Result of a Txn request: which branch ran and one result per op of that branch."""

    header: ResponseHeader
    succeeded: bool
    responses: tuple[OpResult, ...]
    def __init__(
        self,
        header: ResponseHeader,
        succeeded: bool = False,
        responses: tuple[OpResult, ...] = (),
    ) -> None: ...

class CompactResult:
    """Result of a Compaction request."""

    header: ResponseHeader
    def __init__(self, header: ResponseHeader) -> None: ...

# Enum values (etcdserverpb)
SORT_NONE: int  # RangeRequest.SortOrder NONE=0, ASCEND=1, DESCEND=2
SORT_ASCEND: int
SORT_DESCEND: int
SORT_BY_KEY: int  # RangeRequest.SortTarget KEY=0, VERSION=1, CREATE=2, MOD=3, VALUE=4
SORT_BY_VERSION: int
SORT_BY_CREATE: int
SORT_BY_MOD: int
SORT_BY_VALUE: int
CMP_EQUAL: int  # Compare.CompareResult EQUAL=0, GREATER=1, LESS=2, NOT_EQUAL=3
CMP_GREATER: int
CMP_LESS: int
CMP_NOT_EQUAL: int
TARGET_VERSION: int  # Compare.CompareTarget VERSION=0, CREATE=1, MOD=2, VALUE=3, LEASE=4
TARGET_CREATE: int
TARGET_MOD: int
TARGET_VALUE: int
TARGET_LEASE: int
OP_RANGE: int  # RequestOp oneof field numbers: request_range=1, put=2, delete_range=3, txn=4
OP_PUT: int
OP_DELETE_RANGE: int
OP_TXN: int

class Call(Generic[_T]):
    """One planned RPC: ``decode(transport.unary(method, request))`` is its result.

    ``repeatable`` is True for requests that may be sent again after an ambiguous failure
    (reads, and writes the caller marked ``idempotent=True``); other writes are False (etcd's
    Go client: repeatable vs nonRepeatable). The retry core (``fastetcd._retry``) decides
    from it. ``timeout`` is the caller's per-call deadline in seconds, retries included
    (None: the client's). Built by ``fastetcd._plan``; read-only.
    """

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
    ) -> None: ...

def to_bytes(value: object, what: str) -> bytes:
    """Return a user's key or value as bytes: bytes as they are, bytearray and memoryview
    copied, str encoded as UTF-8; anything else raises ``ArgumentTypeError``."""

def key_bytes(key: object, what: str = "key") -> bytes:
    """Return a user's key as bytes (as :func:`to_bytes`); an empty key raises
    ``EmptyKeyError``, as etcd would."""

def int64(value: object, what: str, minimum: int = ...) -> int:
    """Return a user's int argument as an int in [minimum, 2**63-1]: bools and non-ints
    raise ``ArgumentTypeError``, values outside the range ``InvalidArgumentError``."""

def encode_get(key: object, revision: object, serializable: object) -> bytes:
    """A client's get arguments, checked and coerced, encoded as a one-key RangeRequest."""

def encode_put(
    key: object,
    value: object,
    lease: object,
    prev_kv: object,
    ignore_value: object,
    ignore_lease: object,
) -> bytes:
    """A client's put arguments, checked and coerced, encoded as a PutRequest."""

KV_RANGE: str
KV_PUT: str

def check_timeout(timeout: object) -> float | None:
    """Check a per-call ``timeout``: None, or a finite number of seconds > 0 (as a float);
    anything else raises ``InvalidArgumentError``."""

def plan_get(
    key: object, revision: object, serializable: object, timeout: object
) -> Call[KeyValue | None]:
    """The Call of a get (``encode_get``'s request, ``decode_get_response``, repeatable)."""

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
    """The Call of a put (``encode_put``'s request, ``decode_put_response``, repeatable only
    if ``idempotent``)."""

def decode_get_response(data: bytes | bytearray | memoryview) -> KeyValue | None:
    """A RangeResponse's first key-value, or None when it has none."""

def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's prefix end: drop trailing 0xff bytes, then add one to the last byte.
    All-0xff or empty input gives b"\\x00" ("to the end of the keyspace")."""

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

def encode_put_request(
    key: bytes, value: bytes, lease: int, prev_kv: bool, ignore_value: bool, ignore_lease: bool
) -> bytes:
    """PutRequest: key=1 value=2 lease=3 prev_kv=4 ignore_value=5 ignore_lease=6."""

def encode_delete_range_request(key: bytes, range_end: bytes, prev_kv: bool) -> bytes:
    """DeleteRangeRequest: key=1 range_end=2 prev_kv=3."""

def encode_compare(
    result: int, target: int, key: bytes, range_end: bytes, value: int | bytes
) -> bytes:
    """Compare: result=1 target=2 key=3, then the oneof target_union chosen by ``target``
    (version=4, create_revision=5, mod_revision=6 as int64; value=7 as bytes; lease=8
    as int64) always written, then range_end=64. ``value`` must be bytes for
    TARGET_VALUE and int otherwise (TypeError if not); ValueError for unknown target."""

def encode_request_op(kind: int, request: bytes) -> bytes:
    """RequestOp: wrap an encoded request as oneof field ``kind`` (OP_RANGE..OP_TXN),
    always written even when ``request`` is empty. ValueError for an unknown kind."""

def encode_txn_request(
    compare: Sequence[bytes], success: Sequence[bytes], failure: Sequence[bytes]
) -> bytes:
    """TxnRequest: compare=1, success=2, failure=3; each element is an already-encoded
    Compare / RequestOp message, written as a length-delimited field."""

def encode_compaction_request(revision: int, physical: bool) -> bytes:
    """CompactionRequest: revision=1 (int64) physical=2."""

def decode_response_header(data: bytes) -> ResponseHeader:
    """ResponseHeader: cluster_id=1 member_id=2 (uint64) revision=3 (int64) raft_term=4 (uint64)."""

def decode_key_value(data: bytes) -> KeyValue:
    """mvccpb.KeyValue: key=1 create_revision=2 mod_revision=3 version=4 value=5 lease=6."""

def decode_range_response(data: bytes) -> RangeResult:
    """RangeResponse: header=1 kvs=2 (repeated KeyValue) more=3 count=4 (int64)."""

def decode_put_response(data: bytes) -> PutResult:
    """PutResponse: header=1 prev_kv=2."""

def decode_delete_range_response(data: bytes) -> DeleteResult:
    """DeleteRangeResponse: header=1 deleted=2 (int64) prev_kvs=3 (repeated KeyValue)."""

def decode_txn_response(data: bytes) -> TxnResult:
    """TxnResponse: header=1 succeeded=2 responses=3 (repeated ResponseOp: response_range=1
    response_put=2 response_delete_range=3 response_txn=4)."""

def decode_compaction_response(data: bytes) -> CompactResult:
    """CompactionResponse: header=1."""
