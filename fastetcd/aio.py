# cython: annotation_typing=False, embedsignature=False
"""The asyncio client, :class:`AsyncClient`: the same methods as :class:`fastetcd.Client`, to
await. Request building and response decoding live in ``_plan`` and the codec, retry
decisions in the retry core; this module only sends, waits and receives. On the native
transport a unary call is a compiled ``AsyncCall`` (``src/_h2_asyncio.pxi``), its first
attempt made without a coroutine; the attempts after a failure, and every call on grpcio, run
in the ``_call``/``_retry`` coroutines here."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from . import _native, _plan
from . import watch as _watch
from ._base import AUTO_SYNC_TIMEOUT, ClientBase, TransportSlot, doc_of
from ._impl import codec, retry
from ._plan import Call
from ._requests import BytesLike
from ._transport import AsyncTransport, Endpoint, TransportConfig, open_async_transport
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
from .watch import AsyncWatch, Event, WatchFilter, WatchResponse

# the planners of the hottest calls, looked up once (a module attribute per call otherwise)
_plan_get = codec.plan_get
_plan_put = codec.plan_put

__all__ = ["AsyncClient"]

T = TypeVar("T")

_log = logging.getLogger("fastetcd")
_monotonic = time.monotonic
_sleep = asyncio.sleep
_RetryState = retry.RetryState


async def _auto_sync(ref: weakref.ReferenceType[AsyncClient], interval: float) -> None:
    """Body of the auto-sync task: refresh the endpoints every ``interval`` seconds until the
    client is closed (the task is cancelled) or garbage-collected."""
    while True:
        await asyncio.sleep(interval)
        client = ref()
        if client is None:
            return
        try:
            await client.sync_endpoints(timeout=AUTO_SYNC_TIMEOUT)
        except EtcdError as exc:
            _log.debug("fastetcd auto-sync: MemberList failed: %s", exc)
        except Exception:  # never let the refresher die silently on a bug
            _log.exception("fastetcd auto-sync failed")
        del client


class AsyncClient(ClientBase):
    """An asyncio etcd v3 client (works on the default loop and on uvloop).

    ``AsyncClient("127.0.0.1:2379")`` or ``AsyncClient(["http://10.0.0.1:2379", ...])``; keys
    and values are ``bytes`` or ``str`` (UTF-8) and come back as ``bytes``. Several endpoints
    share the load round-robin and fail over to each other. Options: ``timeout`` (seconds per
    call, retries included, None = none; each method also takes ``timeout=``),
    ``max_retries`` (default 100; 0 disables retrying) and ``backoff`` (a
    :class:`fastetcd.RetryPolicy`: 25 ms doubling to 1 s, ±10% jitter) for retrying reads
    on UNAVAILABLE and writes that provably never left, ``require_leader`` (refuse answers
    from a member without a leader), ``auto_sync_interval`` (seconds between endpoint
    refreshes from MemberList, None = off), ``max_send_bytes`` (default 2 MiB; larger
    requests raise ``RequestTooLargeError`` before sending), ``max_recv_bytes`` (default
    2**31-1), ``keepalive_time``/``keepalive_timeout`` (HTTP/2 pings, off by default),
    ``transport`` ("native", fastetcd's own compiled gRPC-over-HTTP/2 client, the default
    when it is built; or "grpcio").
    TLS: an ``https://`` endpoint, or any of ``ca_cert`` (PEM CA bundle path; None = the
    system trust store), ``cert_cert`` and ``cert_key`` (client certificate and unencrypted
    key, PEM paths, for mutual TLS; both or neither), makes every connection TLS (HTTP/2
    negotiated by ALPN) with the server's certificate checked against the endpoint's host
    name or IP address; a failed handshake raises ``UnavailableError`` saying so.
    Create it inside the event loop that uses it; use it as an ``async with`` block or
    ``await`` :meth:`close`.
    The unary methods (``get``, ``put``, ``txn``, …) return an awaitable that is also a
    coroutine (``asyncio.create_task`` takes it). On the native transport, once connected,
    it is an ``AsyncCall``: the call already started (the request leaves with the loop's
    next write, awaited or not; made while the loop is not running, when it runs) and an
    asyncio future (``done``, ``result``,
    ``cancel``, ``add_done_callback``; cancelling it resets its HTTP/2 stream; a failure
    nobody reads is reported to the loop's exception handler when the call is dropped).
    """

    _transport: AsyncTransport
    _slot: TransportSlot[AsyncTransport]

    def _connect(self) -> None:
        self._slot = TransportSlot(open_async_transport(self._config, self._transport_name))
        self._transport = self._slot.transport
        #: True once close() was called. A stream that ends with CancelledError while this is
        #: False was on a transport that auto-sync replaced: reopen it on ``_transport``.
        self._closed = False
        self._retired: list[TransportSlot[AsyncTransport]] = []
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_pending: float | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: How a planned call starts: on the native transport, its compiled AsyncCaller
        #: (an ``AsyncCall``, started at once: a future and a coroutine in one; or ``_call``
        #: when no connection is ready); on grpcio, the ``_call`` coroutine.
        self._caller = _native.async_caller(self) if self._transport_name == "native" else None
        self._start: Callable[[Call[Any]], Coroutine[Any, Any, Any]] = (
            self._call if self._caller is None else self._caller.start
        )
        if self._caller is not None:
            # On the native transport, get and put are the caller's own methods (same
            # signatures as the class's get and put below), bound over the class's: a get
            # or a put is then one call, which writes its request straight into a
            # connection's output (no Call is planned unless needed). Not where a subclass
            # overrides the method, or it was replaced on the class (e.g. by a mock)
            # before the client was made: then the class's attribute is used, as usual.
            for name, method in _DIRECT.items():
                if getattr(type(self), name) is method:
                    vars(self)[name] = getattr(self._caller, name)

    def _start_auto_sync(self, interval: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # created outside the loop: start with the first call
            self._set_sync_pending(interval)
            return
        self._set_sync_pending(None)
        self._sync_task = loop.create_task(_auto_sync(weakref.ref(self), interval))

    def _set_sync_pending(self, interval: float | None) -> None:
        self._sync_pending = interval
        if self._caller is not None:  # its calls go through _call, which starts auto-sync
            self._caller.sync_pending = interval is not None

    async def _call(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the retry core decides, and decode its response."""
        if self._sync_pending is not None:
            self._start_auto_sync(self._sync_pending)
        if len(call.request) > self._max_send_bytes:
            raise self._too_large(call)
        timeout = self._timeout if call.timeout is None else call.timeout
        deadline = None if timeout is None else _monotonic() + timeout
        return await self._attempts(call, timeout, None, deadline)

    async def _retry(self, call: Call[T], error: EtcdError, deadline: float | None) -> T:
        """Go on with ``call`` after its first attempt (made by the native transport's
        ``AsyncCall``) failed with ``error``: wait as the retry core decides (or raise),
        then attempt again."""
        state = _RetryState(self._retry_policy, call.repeatable, deadline)
        await _sleep(state.on_error(error, _monotonic()))
        return await self._attempts(call, state.timeout(_monotonic()), state, deadline)

    async def _attempts(
        self, call: Call[T], timeout: float | None, state: Any, deadline: float | None
    ) -> T:
        """Attempt ``call`` (the first with ``timeout``) until one succeeds or the retry
        core (``state``, made at the first failure) gives up."""
        while True:
            slot = self._slot
            slot.calls += 1
            try:
                response = await slot.transport.unary(
                    call.method, call.request, timeout, self._metadata
                )
            except EtcdError as error:
                if state is None:
                    state = _RetryState(self._retry_policy, call.repeatable, deadline)
                delay = state.on_error(error, _monotonic())
            else:
                return call.decode(response)
            finally:
                slot.calls -= 1
                if slot.retired:
                    await self._release(slot)
            await _sleep(delay)
            timeout = state.timeout(_monotonic())

    def _release_soon(self, slot: TransportSlot[AsyncTransport]) -> None:
        """:meth:`_release` from a callback (an ``AsyncCall`` ending on a retired slot)."""
        if not slot.calls and not slot.closed:
            task = asyncio.get_running_loop().create_task(self._release(slot))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    @staticmethod
    async def _release(slot: TransportSlot[AsyncTransport]) -> None:
        """Close a retired slot's transport once its last call has ended."""
        if not slot.calls and not slot.closed:
            slot.closed = True
            await slot.transport.close()

    async def _swap(self, config: TransportConfig) -> None:
        """Move to a transport for ``config`` (unless the endpoints are already those); the
        old transport is closed after its last call in flight has finished."""
        old = self._slot
        if old.retired or set(config.endpoints) == set(self._config.endpoints):
            return
        slot = TransportSlot(open_async_transport(config, self._transport_name))
        self._slot, self._transport, self._config = slot, slot.transport, config
        if self._caller is not None:  # it counts its calls on the current slot itself
            self._caller.use(slot)
        self._retired = [s for s in self._retired if not s.closed]
        self._retired.append(old)
        old.retired = True
        if not old.calls and not old.closed:
            old.closed = True
            await old.transport.close()

    @doc_of(_plan.member_list)
    def member_list(
        self, *, serializable: bool = False, timeout: float | None = None
    ) -> Coroutine[Any, Any, MemberListResult]:
        return self._start(_plan.member_list(serializable=serializable, timeout=timeout))

    async def sync_endpoints(self, *, timeout: float | None = None) -> tuple[Endpoint, ...]:
        """Replace the endpoints by the client URLs that ``member_list()`` reports for the
        cluster's started, voting members (what ``auto_sync_interval`` does periodically) and
        return them. Calls in flight finish on the old connections. ``timeout``: seconds for
        the MemberList call (None: the client's ``timeout``)."""
        config = self._synced_config(await self.member_list(timeout=timeout))
        if config is not None:
            await self._swap(config)
        return self.endpoints

    async def close(self) -> None:
        """Close the client's connections (and stop auto-sync)."""
        self._closed = True
        self._set_sync_pending(None)
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
        slots, self._retired = [self._slot, *self._retired], []
        for slot in slots:
            slot.retired = True
            if not slot.closed:
                slot.closed = True
                await slot.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @doc_of(_plan.get)
    def get(
        self,
        key: BytesLike,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> Coroutine[Any, Any, KeyValue | None]:
        # (on the native transport, the client's AsyncCaller.get is bound over this)
        return self._start(_plan_get(key, revision, serializable, timeout))

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
    ) -> Coroutine[Any, Any, RangeResult]:
        return self._start(
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
            ),
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
    ) -> Coroutine[Any, Any, RangeResult]:
        return self._start(
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
            ),
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
    ) -> Coroutine[Any, Any, PutResult]:
        # (on the native transport, the client's AsyncCaller.put is bound over this)
        return self._start(
            _plan_put(key, value, lease, prev_kv, ignore_value, ignore_lease, timeout, idempotent)
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
    ) -> Coroutine[Any, Any, DeleteResult]:
        return self._start(
            _plan.delete(
                key,
                range_end,
                prefix=prefix,
                from_key=from_key,
                prev_kv=prev_kv,
                timeout=timeout,
                idempotent=idempotent,
            ),
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
    ) -> Coroutine[Any, Any, TxnResult]:
        return self._start(
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
    ) -> Coroutine[Any, Any, CompactResult]:
        return self._start(
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
    ) -> AsyncWatch:
        return _watch.open_async_watch(
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
    async def watch_once(
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
        return await _watch.async_watch_once(self, plan, timeout)

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
    ) -> AsyncWatch:
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
        return _watch.async_add_callback(self, plan, callback, on_error)

    @doc_of(_watch.request_progress_plan)
    async def request_progress(self) -> None:
        _watch.async_request_progress(self)


#: The methods the native transport's caller takes the place of, per client (see _connect).
_DIRECT = {"get": AsyncClient.get, "put": AsyncClient.put}
