"""Planning: each client operation becomes a :class:`Call` — the gRPC method path, the
encoded request, the decoder of its response, whether it is safe to repeat and its timeout.

No I/O happens here. ``Client`` and ``AsyncClient`` are thin drivers that send a Call's
bytes over their transport and decode the reply, so request building, validation and
response decoding exist once. The functions below carry the public signatures and
docstrings of the client methods of the same names (a parity test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from . import _requests
from ._impl import codec
from ._requests import BytesLike
from .cluster import Member, MemberListResult
from .errors import DecodeError
from .kv import (
    CompactResult,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnResult,
)
from .txn import Compare, Op, encode_txn

__all__ = [
    "Call",
    "get",
    "range",
    "get_prefix",
    "put",
    "delete",
    "txn",
    "compact",
    "member_list",
]

T = TypeVar("T")

KV_RANGE = codec.KV_RANGE
KV_PUT = codec.KV_PUT
KV_DELETE_RANGE = "/etcdserverpb.KV/DeleteRange"
KV_TXN = "/etcdserverpb.KV/Txn"
KV_COMPACT = "/etcdserverpb.KV/Compact"
CLUSTER_MEMBER_LIST = "/etcdserverpb.Cluster/MemberList"


if TYPE_CHECKING:
    from ._codec import Call
else:
    #: One planned RPC (the codec's, compiled or its pure twin).
    Call = codec.Call


#: Check a per-call ``timeout``: None, or a finite number of seconds > 0 (as a float).
_timeout = codec.check_timeout


def get(
    key: BytesLike,
    *,
    revision: int = 0,
    serializable: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[KeyValue | None]:
    """Return the :class:`KeyValue` of ``key``, or ``None`` if it does not exist.

    ``revision``: read the key as it was at that revision (0 = latest); a compacted revision
    raises ``CompactedError``, a future one ``FutureRevisionError``.
    ``serializable``: answer from the contacted member's local state without a quorum read
    (faster, possibly stale).
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. Reads are retried on UNAVAILABLE (a lost
    connection, "no leader", a server timeout …) per the client's ``max_retries`` and
    ``backoff``; ``idempotent`` changes nothing for them (it exists for symmetry with writes).
    """
    return codec.plan_get(key, revision, serializable, timeout)


def range(  # noqa: A001 - the etcd name of the operation
    key: BytesLike,
    range_end: BytesLike | None = None,
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
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[RangeResult]:
    """Read a key or a range of keys; returns a :class:`RangeResult` (``kvs``, ``count``,
    ``more``, ``header``).

    The range is ``key`` alone, or ``[key, range_end)``, or every key starting with ``key``
    (``prefix=True``; an empty key means all keys), or every key ``>= key``
    (``from_key=True``). These three options are mutually exclusive.
    ``limit``: at most this many keys (0 = no limit); ``more`` tells if more exist.
    ``revision``: read at that revision (0 = latest). ``sort_target``/``sort_order``: a
    :class:`SortTarget` and :class:`SortOrder` (or their names as str).
    ``serializable``: local read without quorum. ``keys_only``: values are left empty.
    ``count_only``: only ``count`` is returned. ``min/max_mod_revision`` and
    ``min/max_create_revision`` filter the returned keys (they do not change ``count``).
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. Reads are retried on UNAVAILABLE (a lost
    connection, "no leader", a server timeout …) per the client's ``max_retries`` and
    ``backoff``; ``idempotent`` changes nothing for them (it exists for symmetry with writes).
    """
    request = _requests.encode_range(
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
    )
    return Call(KV_RANGE, request, codec.decode_range_response, True, _timeout(timeout))


def get_prefix(
    prefix: BytesLike,
    *,
    limit: int = 0,
    revision: int = 0,
    sort_target: SortTarget | str = SortTarget.KEY,
    sort_order: SortOrder | str = SortOrder.NONE,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[RangeResult]:
    """Read every key starting with ``prefix`` (``range(prefix, prefix=True, ...)``);
    the options, ``timeout`` and ``idempotent`` included, are those of :meth:`range`."""
    return range(
        prefix,
        prefix=True,
        limit=limit,
        revision=revision,
        sort_target=sort_target,
        sort_order=sort_order,
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
        timeout=timeout,
        idempotent=idempotent,
    )


def put(
    key: BytesLike,
    value: BytesLike,
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[PutResult]:
    """Set ``key`` to ``value``; returns a :class:`PutResult` (``header``, ``prev_kv``).

    ``lease``: attach the key to that lease id (0 = none). ``prev_kv``: return the previous
    key-value in ``prev_kv``. ``ignore_value``: keep the current value (``value`` must be
    empty; the key must exist, else ``KeyNotFoundError``). ``ignore_lease``: keep the
    current lease (``lease`` must be 0).
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. A write is retried only when it provably
    never left the client; after an ambiguous failure (connection lost after sending, a
    server timeout) it raises ``UnavailableError`` and may or may not have been applied.
    ``idempotent=True`` declares that applying it twice is harmless: it is then retried
    like a read.
    """
    return codec.plan_put(
        key, value, lease, prev_kv, ignore_value, ignore_lease, timeout, idempotent
    )


def delete(
    key: BytesLike,
    range_end: BytesLike | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[DeleteResult]:
    """Delete a key or a range of keys; returns a :class:`DeleteResult` (``deleted``,
    ``prev_kvs``, ``header``).

    The range options are those of :meth:`range`. ``prev_kv``: return the deleted
    key-values in ``prev_kvs``.
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. A write is retried only when it provably
    never left the client; after an ambiguous failure (connection lost after sending, a
    server timeout) it raises ``UnavailableError`` and may or may not have been applied.
    ``idempotent=True`` declares that applying it twice is harmless: it is then retried
    like a read.
    """
    request = _requests.encode_delete(
        key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv
    )
    return Call(
        KV_DELETE_RANGE,
        request,
        codec.decode_delete_range_response,
        bool(idempotent),
        _timeout(timeout),
    )


def txn(
    compare: Iterable[Compare] = (),
    success: Iterable[Op] = (),
    failure: Iterable[Op] = (),
    *,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[TxnResult]:
    """Run a transaction: if every compare holds, the ``success`` ops run, else the
    ``failure`` ops, atomically. Returns a :class:`TxnResult` (``succeeded``, ``responses``
    with one result per op of the branch that ran, ``header``). Build compares and ops with
    :mod:`fastetcd.txn`, e.g. ``txn([Value(b"k") == b"v"], [Put(b"k", b"w")], [Get(b"k")])``.

    A txn counts as a write for retrying, even with only reads in it (as in etcd's Go client).
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. A write is retried only when it provably
    never left the client; after an ambiguous failure (connection lost after sending, a
    server timeout) it raises ``UnavailableError`` and may or may not have been applied.
    ``idempotent=True`` declares that applying it twice is harmless: it is then retried
    like a read.
    """
    return Call(
        KV_TXN,
        encode_txn(compare, success, failure),
        codec.decode_txn_response,
        bool(idempotent),
        _timeout(timeout),
    )


def compact(
    revision: int,
    *,
    physical: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Call[CompactResult]:
    """Discard the key history before ``revision``; returns a :class:`CompactResult`.

    ``physical``: return only once the compaction has been applied to the backend.
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``);
    past it ``DeadlineExceededError`` is raised. A write is retried only when it provably
    never left the client; after an ambiguous failure (connection lost after sending, a
    server timeout) it raises ``UnavailableError`` and may or may not have been applied.
    ``idempotent=True`` declares that applying it twice is harmless: it is then retried
    like a read.
    """
    request = _requests.encode_compact(revision, physical)
    return Call(
        KV_COMPACT,
        request,
        codec.decode_compaction_response,
        bool(idempotent),
        _timeout(timeout),
    )


# ------------------------------------------------------------------------------- cluster
# Off the hot path: these use the generated protobuf modules, imported on first use.


def _decode_member_list(data: bytes) -> MemberListResult:
    from ._pb import rpc_pb2

    try:
        msg = rpc_pb2.MemberListResponse.FromString(data)
    except Exception as exc:  # protobuf's own DecodeError
        raise DecodeError(f"malformed MemberListResponse: {exc}") from None
    h = msg.header
    header = ResponseHeader(h.cluster_id, h.member_id, h.revision, h.raft_term)
    members = tuple(
        Member(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), m.isLearner)
        for m in msg.members
    )
    return MemberListResult(header, members)


def member_list(
    *, serializable: bool = False, timeout: float | None = None
) -> Call[MemberListResult]:
    """List the cluster's members; returns a :class:`MemberListResult` (``members``, each a
    :class:`Member` with ``id``, ``name``, ``peer_urls``, ``client_urls`` and
    ``is_learner``; and ``header``).

    ``serializable``: answer from the contacted member's local state (otherwise etcd 3.5+
    makes it a linearizable read, which is what etcd's Go client asks for).
    ``timeout``: seconds for this call, retries included (None: the client's ``timeout``).
    Retried on UNAVAILABLE, like a read.
    """
    from ._pb import rpc_pb2

    request = rpc_pb2.MemberListRequest(linearizable=not serializable).SerializeToString()
    return Call(CLUSTER_MEMBER_LIST, request, _decode_member_list, True, _timeout(timeout))
