"""The blocking client, :class:`Client`: one short method per etcd operation over a
``grpc.Channel``. Request building and response decoding live in ``_plan`` and the codec,
retry decisions in the retry core; this module only sends, waits and receives. Safe to share
between threads."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

from . import _plan
from . import watch as _watch
from ._base import AUTO_SYNC_TIMEOUT, ClientBase, TransportSlot, doc_of
from ._impl import codec, retry
from ._plan import Call
from ._requests import BytesLike
from ._transport import Endpoint, Transport, TransportConfig, open_transport
from .cluster import MemberListResult
from .errors import EtcdError
from .kv import (
    CompactResult,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    SortOrder,
    SortTarget,
    TxnResult,
)
from .txn import Compare, Op
from .watch import Event, Watch, WatchFilter, WatchResponse

__all__ = ["Client"]

T = TypeVar("T")

_log = logging.getLogger("fastetcd")
_monotonic = time.monotonic
_sleep = time.sleep
_RetryState = retry.RetryState


def _auto_sync(ref: weakref.ReferenceType[Client], stop: threading.Event, interval: float) -> None:
    """Body of the auto-sync thread: refresh the endpoints every ``interval`` seconds until
    the client is closed or garbage-collected."""
    while not stop.wait(interval):
        client = ref()
        if client is None:
            return
        try:
            client.sync_endpoints(timeout=AUTO_SYNC_TIMEOUT)
        except EtcdError as exc:
            _log.debug("fastetcd auto-sync: MemberList failed: %s", exc)
        except Exception:  # never let the refresher die silently on a bug
            _log.exception("fastetcd auto-sync failed")
        del client


class Client(ClientBase):
    """A blocking etcd v3 client.

    ``Client("127.0.0.1:2379")`` or ``Client(["http://10.0.0.1:2379", ...])``; keys and values
    are ``bytes`` or ``str`` (UTF-8) and come back as ``bytes``. Several endpoints share the
    load round-robin and fail over to each other. Options: ``timeout`` (seconds per call,
    retries included, None = none; each method also takes ``timeout=``), ``max_retries``
    (default 100; 0 disables retrying) and ``backoff`` (a :class:`fastetcd.RetryPolicy`:
    25 ms doubling to 1 s, ±10% jitter) for retrying reads on UNAVAILABLE and writes that
    provably never left, ``require_leader`` (refuse answers from a member without a leader),
    ``auto_sync_interval`` (seconds between endpoint refreshes from MemberList, None = off),
    ``max_send_bytes`` (default 2 MiB; larger requests raise ``RequestTooLargeError``
    before sending), ``max_recv_bytes`` (default 2**31-1),
    ``keepalive_time``/``keepalive_timeout`` (HTTP/2 pings, off by default),
    ``transport`` ("native", fastetcd's own compiled gRPC-over-HTTP/2 client, the default
    when it is built; or "grpcio").
    TLS: an ``https://`` endpoint, or any of ``ca_cert`` (PEM CA bundle path; None = the
    system trust store), ``cert_cert`` and ``cert_key`` (client certificate and unencrypted
    key, PEM paths, for mutual TLS; both or neither), makes every connection TLS (HTTP/2
    negotiated by ALPN) with the server's certificate checked against the endpoint's host
    name or IP address; a failed handshake raises ``UnavailableError`` saying so.
    Use it as a context manager or call :meth:`close`.
    """

    _transport: Transport
    _slot: TransportSlot[Transport]

    def _connect(self) -> None:
        self._slot = TransportSlot(open_transport(self._config, self._transport_name))
        self._transport = self._slot.transport
        #: True once close() was called. A stream that ends with CancelledError while this is
        #: False was on a transport that auto-sync replaced: reopen it on ``_transport``.
        self._closed = False
        self._retired: list[weakref.finalize] = []  # type: ignore[type-arg]
        self._swap_lock = threading.Lock()
        self._sync_stop: threading.Event | None = None

    def _start_auto_sync(self, interval: float) -> None:
        self._sync_stop = threading.Event()
        threading.Thread(
            target=_auto_sync,
            args=(weakref.ref(self), self._sync_stop, interval),
            name="fastetcd-auto-sync",
            daemon=True,
        ).start()

    def _call(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the retry core decides, and decode its response."""
        if len(call.request) > self._max_send_bytes:
            raise self._too_large(call)
        timeout = self._timeout if call.timeout is None else call.timeout
        deadline = None if timeout is None else _monotonic() + timeout
        state = None
        while True:
            slot = self._slot  # held until the attempt ends: see TransportSlot
            try:
                response = slot.transport.unary(call.method, call.request, timeout, self._metadata)
            except EtcdError as error:
                del slot
                if state is None:
                    state = _RetryState(self._retry_policy, call.repeatable, deadline)
                _sleep(state.on_error(error, _monotonic()))
                timeout = state.timeout(_monotonic())
                continue
            del slot
            return call.decode(response)

    def _swap(self, config: TransportConfig) -> None:
        """Move to a transport for ``config`` (unless the endpoints are already those); the
        old transport is closed after its last call in flight has finished."""
        slot = TransportSlot(open_transport(config, self._transport_name))
        with self._swap_lock:
            old = self._slot
            if old.retired or set(config.endpoints) == set(self._config.endpoints):
                slot.transport.close()  # closed meanwhile, or another sync won the race
                return
            self._slot, self._transport, self._config = slot, slot.transport, config
            old.retired = True
            self._retired = [f for f in self._retired if f.alive]
            # Runs when the last attempt holding ``old`` lets go of it (now, if none does).
            self._retired.append(weakref.finalize(old, old.transport.close))
        del old

    @doc_of(_plan.member_list)
    def member_list(
        self, *, serializable: bool = False, timeout: float | None = None
    ) -> MemberListResult:
        return self._call(_plan.member_list(serializable=serializable, timeout=timeout))

    def sync_endpoints(self, *, timeout: float | None = None) -> tuple[Endpoint, ...]:
        """Replace the endpoints by the client URLs that ``member_list()`` reports for the
        cluster's started, voting members (what ``auto_sync_interval`` does periodically) and
        return them. Calls in flight finish on the old connections. ``timeout``: seconds for
        the MemberList call (None: the client's ``timeout``)."""
        config = self._synced_config(self.member_list(timeout=timeout))
        if config is not None:
            self._swap(config)
        return self.endpoints

    def close(self) -> None:
        """Close the client's connections (and stop auto-sync); calls in flight fail with
        ``CancelledError``."""
        self._closed = True
        if self._sync_stop is not None:
            self._sync_stop.set()
        with self._swap_lock:
            self._slot.retired = True
            retired, self._retired = self._retired, []
        self._slot.transport.close()
        for finalizer in retired:
            finalizer()  # closes a replaced transport that calls were still using

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @doc_of(_plan.get)
    def get(
        self,
        key: BytesLike,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> KeyValue | None:
        # the planner's compiled core, called positionally (what _plan.get does)
        return self._call(codec.plan_get(key, revision, serializable, timeout))

    @doc_of(_plan.range)
    def range(
        self,
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
    ) -> RangeResult:
        return self._call(
            _plan.range(
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
                timeout=timeout,
                idempotent=idempotent,
            )
        )

    @doc_of(_plan.get_prefix)
    def get_prefix(
        self,
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
    ) -> RangeResult:
        return self._call(
            _plan.get_prefix(
                prefix,
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
        )

    @doc_of(_plan.put)
    def put(
        self,
        key: BytesLike,
        value: BytesLike,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> PutResult:
        # the planner's compiled core, called positionally (what _plan.put does)
        return self._call(
            codec.plan_put(
                key, value, lease, prev_kv, ignore_value, ignore_lease, timeout, idempotent
            )
        )

    @doc_of(_plan.delete)
    def delete(
        self,
        key: BytesLike,
        range_end: BytesLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> DeleteResult:
        return self._call(
            _plan.delete(
                key,
                range_end,
                prefix=prefix,
                from_key=from_key,
                prev_kv=prev_kv,
                timeout=timeout,
                idempotent=idempotent,
            )
        )

    @doc_of(_plan.txn)
    def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
        *,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> TxnResult:
        return self._call(
            _plan.txn(compare, success, failure, timeout=timeout, idempotent=idempotent)
        )

    @doc_of(_plan.compact)
    def compact(
        self,
        revision: int,
        *,
        physical: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> CompactResult:
        return self._call(
            _plan.compact(revision, physical=physical, timeout=timeout, idempotent=idempotent)
        )

    @doc_of(_watch.watch_plan)
    def watch(
        self,
        key: BytesLike,
        *,
        prefix: bool = False,
        range_end: BytesLike | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        progress_notify: bool = False,
        fragment: bool = False,
        require_leader: bool | None = None,
    ) -> Watch:
        return _watch.open_watch(
            self,
            _watch.watch_plan(
                key,
                prefix=prefix,
                range_end=range_end,
                start_revision=start_revision,
                prev_kv=prev_kv,
                filters=filters,
                progress_notify=progress_notify,
                fragment=fragment,
                require_leader=require_leader,
            ),
        )

    @doc_of(_watch.watch_once_plan)
    def watch_once(
        self,
        key: BytesLike,
        *,
        prefix: bool = False,
        range_end: BytesLike | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        require_leader: bool | None = None,
        timeout: float | None = None,
    ) -> Event:
        plan, timeout = _watch.watch_once_plan(
            key,
            prefix=prefix,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            require_leader=require_leader,
            timeout=timeout,
        )
        return _watch.watch_once(self, plan, timeout)

    @doc_of(_watch.callback_plan)
    def add_watch_callback(
        self,
        key: BytesLike,
        callback: Callable[[WatchResponse], object],
        *,
        prefix: bool = False,
        range_end: BytesLike | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        progress_notify: bool = False,
        fragment: bool = False,
        require_leader: bool | None = None,
        on_error: Callable[[EtcdError], object] | None = None,
    ) -> Watch:
        plan = _watch.callback_plan(
            key,
            callback,
            prefix=prefix,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            progress_notify=progress_notify,
            fragment=fragment,
            require_leader=require_leader,
            on_error=on_error,
        )
        return _watch.add_callback(self, plan, callback, on_error)

    @doc_of(_watch.request_progress_plan)
    def request_progress(self) -> None:
        _watch.request_progress(self)
