"""The native transport: gRPC over HTTP/2 spoken by fastetcd itself.

The protocol work (frames, HPACK, flow control, gRPC framing, status mapping) is the
sans-I/O core ``fastetcd._h2`` (compiled from ``src/_h2.pyx``); this module only moves its
bytes:

* :class:`NativeAsyncTransport` runs one connection as an ``asyncio.Protocol`` on the
  running loop (uvloop when that is the loop). Any number of calls share it; what they
  queue is written once per loop iteration, so N calls in flight cost one ``write``.
* :class:`NativeTransport` (blocking client) uses blocking sockets, one connection per
  endpoint taken in turn (round robin), and no thread of its own (but a keepalive thread
  when ``keepalive_time`` is set): the calling thread writes its request and reads the
  socket until its response has arrived; when several threads wait, one reads for all and
  hands the role on. No cross-thread hand-off happens on the common path, so a call costs
  one ``send`` and one ``recv`` (and a ``poll`` when the connection was idle).

Both fail over to the next endpoint when connecting (retries belong to the retry layer).
The native transport needs the compiled core: with ``FASTETCD_NO_EXTENSIONS=1`` (or without
a compiler) asking for it raises ``InvalidArgumentError``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import select
import socket
import ssl
import threading
import time
import weakref
from typing import Any

from ._transport import Endpoint, Metadata, TransportConfig, load_tls
from .errors import (
    DEADLINE_MESSAGE as _DEADLINE_MESSAGE,
)
from .errors import (
    CancelledError,
    EtcdError,
    InvalidArgumentError,
    UnavailableError,
    from_status,
)

__all__ = [
    "NativeTransport",
    "NativeAsyncTransport",
    "NativeStream",
    "NativeAsyncStream",
    "available",
]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _core() -> Any:
    """The compiled HTTP/2 core, or a clear error when it is not available."""
    if _flag("FASTETCD_NO_EXTENSIONS"):
        raise InvalidArgumentError(
            "transport='native' needs the compiled extension fastetcd._h2, and "
            "FASTETCD_NO_EXTENSIONS is set; use transport='grpcio'"
        )
    try:
        from . import _h2
    except ImportError as exc:
        raise InvalidArgumentError(
            f"transport='native' needs the compiled extension fastetcd._h2 ({exc}); "
            "build it (python3 setup.py build_ext --inplace) or use transport='grpcio'"
        ) from exc
    return _h2


def available() -> bool:
    """True when the native transport can be used in this process."""
    try:
        _core()
    except InvalidArgumentError:
        return False
    return True


def async_caller(client: Any) -> Any:
    """What starts the AsyncClient ``client``'s unary calls on this transport: a compiled
    ``AsyncCaller`` (see ``_h2_asyncio.pxi``)."""
    return _core().AsyncCaller(client, NativeAsyncTransport)


def _deadline_error() -> EtcdError:
    return from_status(4, _DEADLINE_MESSAGE)


def _connect_error(
    endpoints: tuple[Endpoint, ...], last: BaseException | str | None
) -> UnavailableError:
    addresses = ", ".join(ep.address for ep in endpoints)
    exc = UnavailableError(f"cannot connect to {addresses}: {last}")
    exc.sent = False
    return exc


def _ssl_context(config: TransportConfig) -> ssl.SSLContext | None:
    """The client's TLS context for https endpoints (None: plaintext): built by
    ``load_tls`` from the client's ``ca_cert``/``cert_cert``/``cert_key`` (the system trust
    store when none is given), verifying the server's certificate and host, ALPN ``h2``."""
    if not config.endpoints[0].secure:
        return None
    context = (config.tls or load_tls()).context
    assert context is not None
    return context


#: How long a TLS handshake may take when the call has no deadline (gRPC's minimum connect
#: timeout), so a server that accepts and never answers cannot hang a connect.
_TLS_HANDSHAKE_TIMEOUT = 20.0
#: How long a new connection may take to send its SETTINGS before the endpoint is given up
#: (capped by ``keepalive_timeout``), as grpc-core waits for a connection to be ready.
_SETTINGS_TIMEOUT = 20.0
#: Back-off of an endpoint whose dial failed (asyncio transport): 0.1 s, doubling to 2 s;
#: endpoints without a connection are looked at no more often than every _REDIAL_CHECK.
_REDIAL_MIN = 0.1
_REDIAL_MAX = 2.0
_REDIAL_CHECK = 0.05


class _TLSError(ConnectionError):
    """The TLS handshake failed or did not negotiate HTTP/2 (message says which)."""


def _check_alpn(sslobj: Any, endpoint: Endpoint) -> None:
    """Refuse a TLS connection on which the server did not select HTTP/2 by ALPN."""
    if sslobj is None:
        raise _TLSError(f"TLS connection to {endpoint.address}: no TLS session")
    selected = sslobj.selected_alpn_protocol()
    if selected != "h2":
        raise _TLSError(
            f"TLS connection to {endpoint.address}: the server did not agree to HTTP/2 "
            f"(ALPN offered h2, server selected {selected!r})"
        )


def _tls_error(endpoint: Endpoint, exc: BaseException) -> _TLSError:
    """A failed TLS handshake as an error that says so (a certificate the client does not
    trust, a server that refused the client's certificate or speaks no TLS at all)."""
    if isinstance(exc, _TLSError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"server certificate not trusted: {exc.verify_message or exc}"
    elif isinstance(exc, ssl.SSLError) and "CERTIFICATE" in (exc.reason or ""):
        reason = f"the server refused the client certificate, or its absence ({exc})"
    elif isinstance(exc, ssl.SSLError) and not isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
    ):
        reason = str(exc)
    else:
        detail = str(exc) or f"{type(exc).__name__}: the connection was closed"
        reason = f"{detail} (is the server serving TLS on that port?)"
    return _TLSError(f"TLS handshake with {endpoint.address} failed: {reason}")


def _tls_deadline_error(endpoint: Endpoint) -> EtcdError:
    return from_status(
        4, f"{_DEADLINE_MESSAGE} (TLS handshake with {endpoint.address} did not complete)"
    )


#: Added to the error when a plaintext connection closes before the server's HTTP/2 SETTINGS
#: (what a TLS-only etcd does with a plaintext client).
_NO_SETTINGS_HINT = (
    " before the server's HTTP/2 SETTINGS arrived (is it a TLS endpoint? use https://)"
)
#: The same for a TLS connection: with TLS 1.3 (etcd 3.4, or 3.6; etcd 3.5 caps TLS at 1.2)
#: the server checks the client certificate after the client's side of the handshake is
#: done, so a refused or missing one shows as an alert or a close right after it.
_TLS_NO_SETTINGS_HINT = (
    " before the server's HTTP/2 SETTINGS arrived (TLS: with TLS 1.3 this is how a server"
    " refuses the client certificate, or its absence)"
)


def _bad_metadata(exc: ValueError) -> InvalidArgumentError:
    return InvalidArgumentError(f"bad metadata: {exc}")


# ============================================================================ asyncio


class _PureBase:
    """Stands in for the compiled connection base where there is none (the native transport
    is then unavailable, and no connection is ever made)."""


def _connection_base() -> Any:
    """The compiled ``_h2.AsyncConnectionBase``, or :class:`_PureBase` without it."""
    if not _flag("FASTETCD_NO_EXTENSIONS"):
        try:
            from ._h2 import AsyncConnectionBase
        except ImportError:  # pragma: no cover - a pure-Python install
            pass
        else:
            return AsyncConnectionBase
    return _PureBase


class _AsyncConnection(_connection_base(), asyncio.BufferedProtocol):  # type: ignore[misc]
    """One HTTP/2 connection on an event loop. Reads go straight into the core's read
    buffer (``get_buffer``/``buffer_updated``): no bytes object per read. Its compiled base,
    ``_h2.AsyncConnectionBase``, holds what calls use (``core``, ``loop``, ``transport``,
    ``ok``, ``lost``), schedules the writes (``schedule_flush``, ``flush``,
    ``call_done``) and takes the reads (``get_buffer``, ``buffer_updated``, which calls
    :meth:`_draining` when the connection stops taking new calls)."""

    def __init__(
        self,
        owner: NativeAsyncTransport,
        endpoint: Endpoint,
        loop: asyncio.AbstractEventLoop,
        index: int = 0,
    ) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.index = index  # of the endpoint in the transport's config
        self.loop = loop
        #: Set once the server's SETTINGS arrived (the connection is then ready for calls);
        #: failed if the connection is lost first.
        self.settled: asyncio.Future[None] | None = loop.create_future()
        self.core: Any = owner._h2.H2Connection(
            endpoint.address, endpoint.secure, owner._config.max_recv_bytes
        )
        # the base's buffer_updated releases a held PING ack PING_ACK_HOLD later
        self.core.hold_ping_acks = True
        self.transport: Any = None  # an asyncio or uvloop transport
        self.ok = False  # new calls may start here
        self.lost = False
        self._keepalive: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - the platform refuses; not fatal
                pass
        self.ok = True
        self.core.initiate()
        self.transport.write(self.core.data_to_send())
        config = self.owner._config
        if config.keepalive_time is not None:
            self._keepalive = self.loop.call_later(config.keepalive_time, self._ping)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost fails what is left

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.ok = False
        self._unbind()
        if self._keepalive is not None:
            self._keepalive.cancel()
        reason = f": {exc}" if exc else ""
        if not self.core.settings_received:
            reason += _TLS_NO_SETTINGS_HINT if self.endpoint.secure else _NO_SETTINGS_HINT
        self.core.fail_all(f"connection to {self.endpoint.address} lost{reason}", None)
        if self.settled is not None:
            if not self.settled.done():
                self.settled.set_exception(
                    ConnectionError(f"connection to {self.endpoint.address} lost{reason}")
                )
                self.settled.exception()  # retrieved: no "never retrieved" warning
            self.settled = None
        self.owner._forget(self)

    # ---------------------------------------------------------------- state

    def _draining(self) -> None:
        """GOAWAY received or a protocol error: no new calls; close once idle."""
        self.ok = False
        self.owner._forget(self)
        if self.core.closed or self.core.active == 0:
            self.close()

    def close(self) -> None:
        self.ok = False
        if self.transport is not None and not self.lost:
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        self.ok = False
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def _ping(self) -> None:
        config = self.owner._config
        if self.lost:
            return
        acked = self.core.pings_acked
        self.core.ping()
        self.flush()

        def check() -> None:
            if self.lost:
                return
            if self.core.pings_acked == acked:
                self.core.fail_all(
                    f"keepalive ping to {self.endpoint.address} not answered in "
                    f"{config.keepalive_timeout}s",
                    None,
                )
                self.abort()
                return
            assert config.keepalive_time is not None
            # the next ping goes keepalive_time after this one was sent
            delay = max(0.0, sent + config.keepalive_time - self.loop.time())
            self._keepalive = self.loop.call_later(delay, self._ping)

        sent = self.loop.time()
        self._keepalive = self.loop.call_later(config.keepalive_timeout, check)


# What NativeStream.interrupt() queues among a blocking stream's messages (never delivered).
_WAKE: Any = object()


def _take(messages: collections.deque[bytes], max_bytes: int) -> tuple[list[bytes], int]:
    """Pop the first message of ``messages`` and those after it while all total at most
    ``max_bytes`` (up to an interrupt mark); return them and their size on the wire (5-byte
    gRPC prefixes included)."""
    first = messages.popleft()
    batch = [first]
    size = len(first) + 5
    while messages:
        nxt = messages[0]
        if nxt is _WAKE or size + len(nxt) + 5 > max_bytes:
            break
        batch.append(messages.popleft())
        size += len(nxt) + 5
    return batch, size


def _expire(conn: _AsyncConnection, stream: Any, fut: asyncio.Future[bytes]) -> None:
    if not fut.done():
        conn.core.cancel(stream)
        fut.set_exception(_deadline_error())
        conn.call_done()


class NativeAsyncStream:
    """A bidi stream on the native asyncio transport. It is also the core's handle for the
    call: ``push``/``set_result``/``set_exception`` deliver the server's messages."""

    def __init__(self, transport: NativeAsyncTransport, method: str, metadata: Metadata) -> None:
        self._transport = transport
        self._method = method
        self._metadata = metadata
        self._conn: _AsyncConnection | None = None
        self._stream: Any = None
        self._messages: collections.deque[bytes] = collections.deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------- handle protocol (core)

    def push(self, message: bytes) -> None:
        self._messages.append(message)
        self._wake()

    def set_result(self, _result: object) -> None:
        self._done = True
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        if not self._done:
            self._done = True
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------- AsyncStream

    async def _open(self) -> tuple[_AsyncConnection, Any]:
        if self._stream is None:
            if self._done:
                raise self._error or CancelledError("the stream is closed")
            conn = await self._transport._connection(None)
            try:
                stream = conn.core.start(self, self._method, None, None, self._metadata, False)
            except ValueError as exc:
                raise _bad_metadata(exc) from None
            self._conn, self._stream = conn, stream
            conn.schedule_flush()
        assert self._conn is not None
        return self._conn, self._stream

    async def send(self, request: bytes) -> None:
        """Send one request message."""
        conn, stream = await self._open()
        if self._done:
            raise self._error or CancelledError("the stream has ended")
        conn.core.send(stream, request)
        conn.schedule_flush()

    async def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""
        conn, stream = await self._open()
        conn.core.end(stream)
        conn.schedule_flush()

    async def recv(self) -> bytes | None:
        """Wait for the next response; None at a clean end of stream."""
        batch = await self.recv_many(0)  # the first message always comes, alone here
        return None if batch is None else batch[0]

    async def recv_many(self, max_bytes: int) -> list[bytes] | None:
        """Wait for the next response and return it with the ones already received after
        it, as long as they total at most ``max_bytes`` (the first one always comes): what
        one read of the socket brought, for one wake-up. None at a clean end of stream."""
        conn, stream = await self._open()
        while True:
            if self._messages:
                batch, size = _take(self._messages, max_bytes)
                conn.core.consumed(stream, size)
                if conn.core.has_output:
                    conn.schedule_flush()
                return batch
            if self._done:
                if self._error is not None:
                    raise self._error
                return None
            waiter = conn.loop.create_future()
            self._waiter = waiter
            await waiter

    def close(self) -> None:
        """Cancel the stream; a pending ``recv`` raises ``CancelledError``."""
        self._messages.clear()
        if self._done:
            return
        self.set_exception(CancelledError("the stream was cancelled"))
        if self._conn is not None:
            self._conn.core.cancel(self._stream)
            self._conn.call_done()


class NativeAsyncTransport:
    """asyncio transport over one HTTP/2 connection per endpoint, taken in turn (round-robin,
    as grpcio and etcd's Go client spread calls). A lost endpoint is dialled again in the
    background, no sooner than its back-off (0.1 s after a failed dial, doubling to 2 s);
    a connection takes calls once the server's SETTINGS have arrived."""

    def __init__(self, config: TransportConfig) -> None:
        self._h2 = _core()
        self._config = config
        n = len(config.endpoints)
        self._by_endpoint: list[_AsyncConnection | None] = [None] * n
        # connections taking calls, in turn (changed in place: the client's AsyncCaller
        # holds this list)
        self._ready: list[_AsyncConnection] = []
        self._conns: set[_AsyncConnection] = set()  # every open connection (for close)
        self._dialing: set[int] = set()  # endpoints with a dial in progress
        self._retry_at = [0.0] * n  # monotonic time before which endpoint i is not dialled
        self._retry_delay = [0.0] * n
        self._next_redial = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._rr = 0
        self._connecting: asyncio.Future[_AsyncConnection] | None = None
        self._closed = False
        self._ssl = _ssl_context(config)

    @property
    def _conn(self) -> _AsyncConnection | None:
        """A connection taking calls, if any (the next one in turn is not consumed)."""
        return self._ready[0] if self._ready else None

    def _forget(self, conn: _AsyncConnection) -> None:
        if self._by_endpoint[conn.index] is conn:
            self._by_endpoint[conn.index] = None
        if conn in self._ready:
            self._ready[:] = [c for c in self._ready if c is not conn]
        if conn.lost:
            self._conns.discard(conn)

    def _pick(self) -> _AsyncConnection | None:
        """The next ready connection in turn (None if there is none); starts background
        dials of the endpoints that have none, when their back-off allows."""
        ready = self._ready
        if not ready:
            return None  # the caller dials (_connect), in the foreground
        if len(ready) < len(self._by_endpoint) and not self._closed:
            self._redial()
        if len(ready) == 1:
            return ready[0]
        self._rr += 1
        return ready[self._rr % len(ready)]

    def _redial(self) -> None:
        now = time.monotonic()
        if now < self._next_redial:
            return
        self._next_redial = now + _REDIAL_CHECK
        loop = asyncio.get_running_loop()
        for i, conn in enumerate(self._by_endpoint):
            if conn is None and i not in self._dialing and now >= self._retry_at[i]:
                task = loop.create_task(self._background_dial(i))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _background_dial(self, i: int) -> None:
        try:
            await self._dial_one(i)
        except (EtcdError, OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError):
            pass  # the back-off is recorded; the next call will try again after it

    async def _connection(self, timeout: float | None) -> _AsyncConnection:
        conn = self._pick()
        if conn is not None:
            return conn
        if timeout is None:
            return await self._connect()
        try:
            return await asyncio.wait_for(self._connect(), timeout)
        except asyncio.TimeoutError:
            raise _deadline_error() from None

    async def _connect(self) -> _AsyncConnection:
        """A ready connection: dial the endpoints in turn until one answers (one dial at a
        time, shared by every call waiting for it)."""
        while True:
            if self._closed:
                raise CancelledError("the client is closed")
            conn = self._pick()
            if conn is not None:
                return conn
            if self._connecting is not None:
                try:
                    await asyncio.shield(self._connecting)
                except EtcdError as exc:
                    raise _connect_error(self._config.endpoints, exc) from None
                continue
            loop = asyncio.get_running_loop()
            connecting: asyncio.Future[_AsyncConnection] = loop.create_future()
            self._connecting = connecting
            try:
                conn = await self._dial_any()
            except BaseException as exc:
                self._connecting = None
                if isinstance(exc, EtcdError):
                    connecting.set_exception(exc)
                    connecting.exception()  # retrieved: no "never retrieved" warning
                else:
                    connecting.cancel()
                raise
            self._connecting = None
            connecting.set_result(conn)
            return conn

    async def _dial_any(self) -> _AsyncConnection:
        """Dial the endpoints in turn (those out of their back-off first) until one gives a
        ready connection."""
        endpoints = self._config.endpoints
        n = len(endpoints)
        now = time.monotonic()
        start = self._rr
        order = sorted(range(n), key=lambda i: (self._retry_at[i] > now, (i - start) % n))
        last: BaseException | None = None
        for i in order:
            try:
                return await self._dial_one(i)
            except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
                last = exc
        self._rr += 1
        raise _connect_error(endpoints, last)

    async def _dial_one(self, i: int) -> _AsyncConnection:
        """Connect to endpoint ``i`` and wait for the server's SETTINGS; on failure, record
        the endpoint's back-off and raise."""
        self._dialing.add(i)
        try:
            conn = await self._dial(i)
        except BaseException:
            delay = self._retry_delay[i]
            delay = _REDIAL_MIN if delay == 0 else min(delay * 2, _REDIAL_MAX)
            self._retry_delay[i] = delay
            self._retry_at[i] = time.monotonic() + delay
            raise
        finally:
            self._dialing.discard(i)
        if conn.lost or not conn.ok:  # lost (or GOAWAY) as its dial finished
            raise ConnectionError(f"connection to {conn.endpoint.address} lost while opening")
        self._retry_delay[i] = 0.0
        if self._closed:
            conn.close()
            raise CancelledError("the client is closed")
        old = self._by_endpoint[i]
        if old is not None and old is not conn:  # a background dial raced this one
            conn.close()
            return old
        self._by_endpoint[i] = conn
        self._ready.append(conn)
        return conn

    async def _dial(self, i: int) -> _AsyncConnection:
        endpoint = self._config.endpoints[i]
        loop = asyncio.get_running_loop()
        conn = _AsyncConnection(self, endpoint, loop, i)
        try:
            transport, _ = await loop.create_connection(
                lambda: conn,
                endpoint.host,
                endpoint.port,
                ssl=self._ssl,
                server_hostname=endpoint.host if self._ssl is not None else None,
                ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT if self._ssl is not None else None,
            )
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            tls_failed = self._ssl is not None and isinstance(
                exc, (ssl.SSLError, ConnectionResetError, ConnectionAbortedError)
            )
            raise (_tls_error(endpoint, exc) if tls_failed else exc) from None
        self._conns.add(conn)
        try:
            if self._ssl is not None:
                _check_alpn(transport.get_extra_info("ssl_object"), endpoint)
            settled = conn.settled
            if settled is not None:
                wait = min(_SETTINGS_TIMEOUT, self._config.keepalive_timeout)
                try:
                    await asyncio.wait_for(asyncio.shield(settled), wait)
                except asyncio.TimeoutError:
                    raise ConnectionError(
                        f"no HTTP/2 SETTINGS from {endpoint.address} within {wait:g}s"
                    ) from None
        except BaseException:
            transport.abort()
            self._conns.discard(conn)
            raise
        return conn

    async def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``)."""
        conn = self._pick()
        if conn is None or not conn.ok:
            if self._closed:
                raise CancelledError("the client is closed")
            began = time.monotonic()
            conn = await self._connection(timeout)
            if timeout is not None:  # grpc-timeout says what is left of the deadline
                timeout -= time.monotonic() - began
                if timeout <= 0:
                    raise _deadline_error()
        fut: asyncio.Future[bytes] = conn.loop.create_future()
        try:
            stream = conn.core.start(fut, method, request, timeout, metadata, True)
        except ValueError as exc:
            raise _bad_metadata(exc) from None
        conn.schedule_flush()
        timer = None
        if timeout is not None:
            timer = conn.loop.call_later(timeout, _expire, conn, stream, fut)
        try:
            return await fut
        except asyncio.CancelledError:
            conn.core.cancel(stream)
            conn.call_done()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not conn.ok:
                conn.call_done()

    def stream(self, method: str, metadata: Metadata = None) -> NativeAsyncStream:
        """Open a bidirectional stream to ``method`` (from a running loop)."""
        if self._closed:
            raise CancelledError("the client is closed")
        return NativeAsyncStream(self, method, metadata)

    async def close(self) -> None:
        """Close the connections; calls in flight fail with ``CancelledError``."""
        self._closed = True
        conns = list(self._conns)
        self._ready.clear()
        self._by_endpoint = [None] * len(self._by_endpoint)
        for task in list(self._tasks):
            task.cancel()
        for conn in conns:
            conn.core.close()
            conn.close()
        if conns:
            await asyncio.sleep(0)


# ============================================================================ blocking

_monotonic = time.monotonic
#: An endpoint whose connect failed (or whose connection was lost) is skipped by the
#: round-robin pick for this long, doubling (x1.6) per failure up to the maximum: the
#: grpcio transport's reconnect backoff, so a member that comes back is used within 2 s.
_BACKOFF_INITIAL = 0.1
_BACKOFF_MAX = 2.0
#: The receive timeout of the read that takes in what arrived on an idle connection (the
#: socket is known to be readable; a TLS record may still be incomplete).
_PEEK_TIMEOUT = 0.001
#: While the socket takes none of a write, how long to wait for room before trying again.
_WRITE_WAIT = 0.05
#: How long a new connection may take to bring the server's HTTP/2 SETTINGS when the call
#: has no sooner deadline (gRPC's minimum connect timeout; keepalive_timeout if shorter).
#: Until they come the connection takes no call: an endpoint that accepts connections but
#: does not answer (hung, or behind a stalled proxy) is skipped, not written to.
_HANDSHAKE_TIMEOUT = 20.0


def _grpc_timeout(deadline: float) -> float:
    """The ``grpc-timeout`` for a call that must end by ``deadline``: the time left now,
    rounded down to the millisecond, so the server is never promised more time than the
    caller has (and calls with the same budget share the core's cached header literal).
    Raises ``DeadlineExceededError`` when no time is left."""
    left = deadline - _monotonic()
    if left <= 0:
        raise _deadline_error()
    rounded = math.floor(left * 1000.0) / 1000.0
    return rounded if rounded > 0 else left


def _keepalive_loop(
    ref: weakref.ReferenceType[NativeTransport], stop: threading.Event, interval: float
) -> None:
    """Body of a blocking transport's keepalive thread: until the transport is closed (or
    garbage-collected), ping its connections that have been silent for ``interval``."""
    delay = interval
    while not stop.wait(delay):
        transport = ref()
        if transport is None:
            return
        delay = transport._keepalive_round(stop)
        del transport


class _Call:
    """The core's handle for a blocking call (all methods run under the connection lock)."""

    __slots__ = ("conn", "done", "error", "messages", "result", "waiter", "waiting")

    def __init__(self, conn: _SyncConnection, streaming: bool) -> None:
        self.conn = conn
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.messages: collections.deque[bytes] | tuple[()] = (
            collections.deque() if streaming else ()
        )
        self.waiter: Any = None
        self.waiting = False

    def set_result(self, result: object) -> None:
        self.result = result
        self.done = True
        if self.waiting:
            self._wake()

    def set_exception(self, exc: BaseException) -> None:
        if not self.done:
            self.error = exc
            self.done = True
        if self.waiting:
            self._wake()

    def push(self, message: bytes) -> None:
        self.messages.append(message)  # type: ignore[union-attr]
        if self.waiting:
            self._wake()

    def _wake(self) -> None:
        self.waiting = False
        self.waiter.release()


class _SyncConnection:
    """One HTTP/2 connection on a blocking socket, shared by threads.

    ``lock`` guards everything, and the socket is written under it. At most one thread
    reads the socket at a time (``reading``, without the lock): a caller waiting for its
    response reads for everyone and, after each read, hands the role on to another waiting
    caller (or to the keepalive thread, which waits for its PING's ack like a caller)."""

    def __init__(self, owner: NativeTransport, endpoint: Endpoint, sock: socket.socket) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.index = 0  # of the endpoint in the transport's list (set by the transport)
        self.sock = sock
        self.core: Any = owner._h2.H2Connection(
            endpoint.address, endpoint.secure, owner._config.max_recv_bytes
        )
        self.lock = threading.Lock()
        self.reading = False
        self.ok = True
        self.dead = False
        self._timeout: float | None = None
        self._waiters: collections.deque[_Call] = collections.deque()
        self._poll: Any = None
        if hasattr(select, "poll"):  # not on Windows: take_pending() uses select() there
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        #: keepalive: when something was last received, and the PING waiting for its ack
        self.keepalive = owner._config.keepalive_time is not None
        self.last_read = _monotonic()
        self.ping_call: _Call | None = None
        self.ping_base = 0
        with self.lock:
            self.core.initiate()
            self.send_out()

    def send_out(self) -> None:
        """Write the core's output (lock held)."""
        core = self.core
        if core.has_output and not self.dead:
            flushed = core.flushed_max_id
            data = core.data_to_send()
            try:
                try:
                    sent = self.sock.send(data)
                except socket.timeout:  # the reading thread's receive timeout: no room yet
                    sent = 0
                except OSError:
                    # none of it left: the calls it started were not sent (fail_all says so)
                    core.flushed_max_id = flushed
                    raise
                if sent < len(data):
                    self._send_rest(memoryview(data)[sent:])
            except OSError as exc:
                self._lost(f"connection to {self.endpoint.address} lost: {exc}")

    def _send_rest(self, view: memoryview) -> None:
        """Write what the socket did not take at once (lock held). The socket's timeout is
        the reading thread's, so a timeout here only means "no room yet": wait for room and
        go on. With keepalive on, a peer that takes nothing for keepalive_time +
        keepalive_timeout is given up on (raises ``OSError``)."""
        config = self.owner._config
        limit = None
        if config.keepalive_time is not None:
            limit = config.keepalive_time + config.keepalive_timeout
        progress = _monotonic()
        while view:  # each pass writes something, or waits for room (bounded by ``limit``)
            try:
                sent = self.sock.send(view)
            except socket.timeout:
                sent = 0
            if sent:
                view = view[sent:]
                progress = _monotonic()
                continue
            if limit is not None and _monotonic() - progress > limit:
                raise OSError(f"the peer took no data for {limit:g}s")
            select.select([], [self.sock], [], _WRITE_WAIT)

    def _lost(self, message: str) -> None:
        """The connection is gone (lock held): fail its calls, close the socket (a thread
        blocked reading it is woken, and closes it)."""
        self.ok = False
        if not self.dead:
            self.dead = True
            if self.owner._closed:  # close() shut the socket: its calls are cancelled
                self.core.close()
            else:
                self.core.fail_all(message, None)
            self._end_ping(message)
        self.owner._forget(self, True)
        if not self.reading:
            self.sock.close()
        else:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def shutdown(self) -> None:
        """Close the transport (lock held): wakes a thread blocked reading."""
        self.ok = False
        self.dead = True
        self._end_ping("the connection was closed")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not self.reading:
            self.sock.close()

    def _end_ping(self, message: str) -> None:
        """The connection is gone (lock held): the keepalive PING will get no ack."""
        ping = self.ping_call
        if ping is not None:
            self.ping_call = None
            ping.set_exception(UnavailableError(message))

    def _after_receive(self) -> None:
        core = self.core
        ping = self.ping_call
        if ping is not None and core.pings_acked != self.ping_base:
            self.ping_call = None
            ping.set_result(None)
        if core.has_output and core.active:
            # With no call waiting, what the core has to say (a PING ack, say) goes out
            # with the next request instead of costing a write of its own.
            self.send_out()
        if not core.usable:
            self.ok = False
            self.owner._forget(self)
            if core.closed:
                self._lost(str(core.error))
            elif core.active == 0:
                self.shutdown()

    def call_done(self) -> None:
        """After a call ended or was abandoned (lock held)."""
        self.send_out()
        if not self.ok and not self.dead and self.core.active == 0:
            self.shutdown()

    def wait(self, call: _Call, deadline: float | None) -> None:
        """Block until ``call`` has a result or a message, or ``deadline`` passes (or the
        connection is gone)."""
        lock = self.lock
        while True:
            lock.acquire()
            if (
                call.done
                or call.messages
                or self.dead
                or (deadline is not None and _monotonic() >= deadline)
            ):
                if not self.reading and self._waiters:
                    # the reading role may have been handed to this thread just as it
                    # stopped waiting: pass it on, so no other caller waits with nobody
                    # reading for it
                    self._hand_off()
                lock.release()
                return
            if self.reading:
                if call.waiter is None:
                    call.waiter = threading.Lock()
                    call.waiter.acquire()
                call.waiting = True
                self._waiters.append(call)
                lock.release()
                if deadline is None:
                    call.waiter.acquire()
                else:
                    call.waiter.acquire(timeout=max(0.0, deadline - time.monotonic()))
                with lock:
                    call.waiting = False
                continue
            self.reading = True
            lock.release()
            self._read_once(deadline)

    def _read_once(self, deadline: float | None) -> None:
        """Read what the socket has (as the one reading thread) and process it."""
        data, error = self._recv(None if deadline is None else max(0.0001, deadline - _monotonic()))
        with self.lock:
            self.reading = False
            self._process(data, error)
            self._hand_off()

    def _recv(self, timeout: float | None) -> tuple[int | None, str]:
        """One ``recv_into`` the core's read buffer (as the reading thread): how many bytes
        came (None when ``timeout`` passed, 0 at the end of the connection) and what went
        wrong, if anything. Only the reading thread touches that buffer."""
        try:
            if timeout != self._timeout:
                self.sock.settimeout(timeout)
                self._timeout = timeout
            return self.sock.recv_into(self.core.get_buffer(-1)), ""
        except socket.timeout:
            return None, ""
        except OSError as exc:
            return 0, f": {exc}"

    def _process(self, nbytes: int | None, error: str) -> None:
        """Give what ``_recv`` read to the core (lock held, not reading)."""
        if self.dead:
            self.sock.close()
        elif nbytes:
            if self.keepalive:
                self.last_read = _monotonic()
            self.core.buffer_updated(nbytes)
            self._after_receive()
        elif nbytes is not None:
            self._lost(f"connection to {self.endpoint.address} lost{error}")

    def _hand_off(self) -> None:
        """Hand the reading role on to a thread still waiting (lock held)."""
        waiters = self._waiters
        while waiters:
            other = waiters.popleft()
            if other.waiting:
                other._wake()
                break

    def take_pending(self) -> None:
        """Before a call on a connection that nobody is reading (lock held): take in what
        arrived meanwhile, so that the peer closing or resetting the connection, or a
        GOAWAY, is seen before a request is written to it. (Written to a connection already
        gone, a write would fail ambiguously; on a new connection it is provably unsent.)
        Costs one ``poll`` when nothing arrived."""
        if self.reading or self.dead:
            return
        if self._poll is not None:
            if not self._poll.poll(0):
                return
        elif not select.select([self.sock], [], [], 0)[0]:
            return
        data, error = self._recv(_PEEK_TIMEOUT)
        self._process(data, error)

    def handshake(self, deadline: float) -> str | None:
        """Read until the server's SETTINGS arrive (before the connection is given any
        call, so no other thread uses it): None once they did, else why not, the connection
        then closed. ``deadline`` bounds the wait."""
        reason = "no HTTP/2 SETTINGS from the server in time"
        while not self.core.settings_received:  # bounded by the deadline
            timeout = deadline - _monotonic()
            if timeout <= 0:
                break
            data, error = self._recv(timeout)
            if data is None:
                continue
            if not data:
                hint = _TLS_NO_SETTINGS_HINT if self.endpoint.secure else _NO_SETTINGS_HINT
                reason = f"the connection was closed{error}{hint}"
                break
            with self.lock:
                self._process(data, error)
            if not self.ok:
                reason = f"the HTTP/2 handshake failed: {self.core.error or 'GOAWAY'}"
                break
        if self.core.settings_received and self.ok:
            return None
        with self.lock:
            if not self.dead:
                self.shutdown()
        return reason

    def keepalive_ping(self, timeout: float) -> None:
        """Send a PING and wait up to ``timeout`` for its ack, reading the socket meanwhile
        if no caller is (the keepalive thread); drop the connection if no ack comes, which
        fails the calls on it (``UnavailableError``) and wakes their threads."""
        with self.lock:
            if self.dead:
                return
            call = _Call(self, False)
            self.ping_call = call
            self.ping_base = self.core.pings_acked
            self.core.ping()
            self.send_out()
        self.wait(call, _monotonic() + timeout)
        with self.lock:
            if self.ping_call is call:
                self.ping_call = None
            if self.dead:
                return
            if call.done:
                self.send_out()  # what was held back while idle (the ack of a server PING)
                return
            self._lost(f"keepalive ping to {self.endpoint.address} not answered in {timeout:g}s")


class NativeStream:
    """A bidi stream on the native blocking transport."""

    def __init__(self, transport: NativeTransport, method: str, metadata: Metadata) -> None:
        conn = transport._connection(None)
        self._conn = conn
        self._call = _Call(conn, True)
        with conn.lock:
            try:
                self._stream = conn.core.start(self._call, method, None, None, metadata, False)
            except ValueError as exc:
                raise _bad_metadata(exc) from None
            conn.send_out()

    def send(self, request: bytes) -> None:
        """Queue one request message for sending."""
        conn = self._conn
        with conn.lock:
            if self._call.done:
                raise self._call.error or CancelledError("the stream has ended")
            conn.core.send(self._stream, request)
            conn.send_out()

    def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""
        conn = self._conn
        with conn.lock:
            conn.core.end(self._stream)
            conn.send_out()

    def recv(self) -> bytes | None:
        """Block for the next response; None at a clean end of stream."""
        conn, call = self._conn, self._call
        while True:
            conn.wait(call, None)
            with conn.lock:
                messages = call.messages
                while messages and messages[0] is _WAKE:  # an interrupt() meant for recv_many
                    messages.popleft()
                if messages:
                    message: bytes = messages.popleft()
                    conn.core.consumed(self._stream, len(message) + 5)
                    conn.send_out()
                    return message
                if call.done:
                    break
        if call.error is not None:
            raise call.error
        return None

    def recv_many(self, max_bytes: int, deadline: float | None = None) -> list[bytes] | None:
        """Block for the next response and return it with the ones already received after
        it, as long as they total at most ``max_bytes`` (the first one always comes): what
        one read of the socket brought, for one wake-up. The calling thread reads the socket
        itself unless another thread already does. An empty list once ``deadline`` (a
        ``time.monotonic()`` value) has passed or after :meth:`interrupt`; None at a clean
        end of stream."""
        conn, call = self._conn, self._call
        conn.wait(call, deadline)
        with conn.lock:
            messages = call.messages
            if messages and messages[0] is _WAKE:
                while messages and messages[0] is _WAKE:
                    messages.popleft()
                return []
            if messages:
                batch, size = _take(messages, max_bytes)
                conn.core.consumed(self._stream, size)
                conn.send_out()
                return batch
            if not call.done:
                return []  # the deadline passed
        if call.error is not None:
            raise call.error
        return None

    def interrupt(self) -> None:
        """Make a ``recv_many`` blocked in another thread return (an empty list) soon: a
        thread blocked reading the socket for it is woken by the answer to a PING."""
        conn, call = self._conn, self._call
        with conn.lock:
            if call.done:
                return
            call.messages.append(_WAKE)  # type: ignore[union-attr]
            if call.waiting:
                call._wake()
            elif conn.reading and not conn.dead:
                conn.core.ping()
                conn.send_out()

    def close(self) -> None:
        """Cancel the stream; a blocked ``recv`` raises ``CancelledError``."""
        conn, call = self._conn, self._call
        with conn.lock:
            call.messages.clear()  # type: ignore[union-attr]
            if call.done:
                return
            conn.core.cancel(self._stream)
            call.set_exception(CancelledError("the stream was cancelled"))
            if conn.reading and not conn.dead:
                conn.core.ping()  # the answer wakes the thread blocked reading
            conn.call_done()


class NativeTransport:
    """Blocking transport over HTTP/2 connections on blocking sockets (thread-safe).

    One connection per endpoint, opened when first needed; calls take the endpoints in
    turn (round robin, as the grpcio transport and etcd's Go client balance), skipping for
    a while (``_BACKOFF_INITIAL`` doubling to ``_BACKOFF_MAX``) one whose connect failed
    or whose connection was lost. With ``keepalive_time`` set, a daemon thread pings the
    connections that have been silent that long and drops one whose ack does not come
    within ``keepalive_timeout``."""

    def __init__(self, config: TransportConfig) -> None:
        self._h2 = _core()
        self._config = config
        count = len(config.endpoints)
        self._pool: list[_SyncConnection | None] = [None] * count  # by endpoint
        self._retry_at = [0.0] * count  # an endpoint that failed is skipped until then
        self._backoff = [0.0] * count
        self._rr = 0  # the endpoint the next call starts from
        self._conn: _SyncConnection | None = None  # the last connection opened
        self._conns: set[_SyncConnection] = set()
        self._connect_lock = threading.Lock()
        self._next_endpoint = 0
        self._closed = False
        self._ssl = _ssl_context(config)
        self._keepalive_stop: threading.Event | None = None
        self._keepalive_thread: threading.Thread | None = None

    def _forget(self, conn: _SyncConnection, failed: bool = False) -> None:
        """``conn`` takes no new calls (GOAWAY, or gone: ``failed``, its endpoint is then
        skipped for a while)."""
        index = conn.index
        if self._pool[index] is conn:
            self._pool[index] = None
            if failed:
                self._failed(index)
        if self._conn is conn:
            self._conn = None
        if conn.dead:
            self._conns.discard(conn)

    def _failed(self, index: int) -> None:
        backoff = self._backoff[index]
        backoff = _BACKOFF_INITIAL if backoff == 0 else min(_BACKOFF_MAX, backoff * 1.6)
        self._backoff[index] = backoff
        self._retry_at[index] = _monotonic() + backoff

    def _connection(self, deadline: float | None) -> _SyncConnection:
        """The connection for the next call (round robin over the endpoints), opened if
        need be; a connect waits at most until ``deadline`` (a ``time.monotonic()`` value)
        and fails over to the next endpoint. ``UnavailableError`` (``sent=False``) when no
        endpoint could be reached."""
        pool = self._pool
        count = len(pool)
        if count == 1:
            conn = pool[0]
            if conn is not None and conn.ok:
                return conn
            return self._open(0, deadline)
        first = self._rr
        self._rr = first + 1 if first + 1 < count else 0  # racy, harmless: balance only
        tried: list[int] = []
        last: BaseException | None = None
        for k in range(count):
            index = (first + k) % count
            conn = pool[index]
            if conn is None or not conn.ok:
                if self._retry_at[index] > _monotonic():
                    continue  # backing off after a failure
                tried.append(index)
                try:
                    conn = self._open(index, deadline)
                except UnavailableError as exc:
                    last = exc
                    continue
            if k:  # endpoints were skipped: the next call starts after this one
                self._rr = index + 1 if index + 1 < count else 0
            return conn
        if not tried:  # every endpoint is backing off: try the one due first anyway
            return self._open(min(range(count), key=self._retry_at.__getitem__), deadline)
        endpoints = tuple(self._config.endpoints[i] for i in tried)
        reason = str(last).split(": ", 1)[-1]  # what _connect_error wrapped
        raise _connect_error(endpoints, reason)

    def _locked_connection(self, deadline: float | None) -> _SyncConnection:
        """A connection for a new call, usable and with its lock held (the caller starts
        the call and releases it). One that nobody is reading is first checked for what
        arrived while it was idle (the peer closing it, a GOAWAY), so that a request is
        never written to a connection already gone: a new one is taken instead."""
        conn = self._connection(deadline)
        for _ in range(4):  # bounded: connections that fail as soon as they are made
            conn.lock.acquire()
            if not conn.reading and not conn.core.active:
                conn.take_pending()
            if conn.ok:
                return conn
            conn.lock.release()  # gone or draining: the call goes to another connection
            conn = self._connection(deadline)
        raise _connect_error((conn.endpoint,), "the connection closed as soon as it was made")

    def _open(self, index: int, deadline: float | None) -> _SyncConnection:
        """The connection to endpoint ``index``, dialed if there is none (one dial at a
        time; waiting for the dial lock counts against ``deadline``)."""
        lock = self._connect_lock
        if deadline is None:
            lock.acquire()
        elif not lock.acquire(timeout=max(0.0, deadline - _monotonic())):
            raise _deadline_error()
        try:
            if self._closed:
                raise CancelledError("the client is closed")
            conn = self._pool[index]
            if conn is not None and conn.ok:
                return conn
            timeout = None
            if deadline is not None:
                timeout = deadline - _monotonic()
                if timeout <= 0:
                    raise _deadline_error()
            self._next_endpoint = index
            try:
                conn = self._dial(timeout, 1)
            except UnavailableError:
                self._failed(index)
                raise
            conn.index = index
            limit = _HANDSHAKE_TIMEOUT
            if self._config.keepalive_time is not None:
                limit = min(limit, self._config.keepalive_timeout)
            until = _monotonic() + limit
            failed = conn.handshake(until if deadline is None else min(until, deadline))
            if failed is not None:
                if deadline is not None and deadline < until and _monotonic() >= deadline:
                    raise _deadline_error()
                self._failed(index)
                raise _connect_error((conn.endpoint,), failed)
            self._backoff[index] = 0.0
            self._pool[index] = conn
            self._conn = conn
            self._conns.add(conn)
            if conn.keepalive and self._keepalive_thread is None:
                self._start_keepalive()
            return conn
        finally:
            lock.release()

    def _start_keepalive(self) -> None:
        """Start the keepalive thread (connect lock held)."""
        interval = self._config.keepalive_time
        assert interval is not None
        self._keepalive_stop = stop = threading.Event()
        self._keepalive_thread = threading.Thread(
            target=_keepalive_loop,
            args=(weakref.ref(self), stop, interval),
            name="fastetcd-native-keepalive",
            daemon=True,
        )
        self._keepalive_thread.start()

    def _keepalive_round(self, stop: threading.Event) -> float:
        """Ping each connection silent for keepalive_time (in the keepalive thread: each
        ping waits for its ack, up to keepalive_timeout); return the wait until the next
        one is due."""
        config = self._config
        interval = config.keepalive_time
        assert interval is not None
        for conn in list(self._conns):
            if stop.is_set():
                break
            if not conn.dead and _monotonic() - conn.last_read >= interval:
                conn.keepalive_ping(config.keepalive_timeout)
        due = _monotonic() + interval
        for conn in list(self._conns):
            if not conn.dead:
                due = min(due, conn.last_read + interval)
        return max(0.001, due - _monotonic())

    def _dial(self, timeout: float | None, tries: int = 0) -> _SyncConnection:
        """Connect to the endpoints in turn from ``_next_endpoint`` (only the first
        ``tries`` of them if given)."""
        endpoints = self._config.endpoints
        last: BaseException | None = None
        for i in range(tries or len(endpoints)):
            endpoint = endpoints[(self._next_endpoint + i) % len(endpoints)]
            try:
                sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl is not None:
                    if timeout is None:
                        sock.settimeout(_TLS_HANDSHAKE_TIMEOUT)
                    try:
                        sock = self._ssl.wrap_socket(sock, server_hostname=endpoint.host)
                    except socket.timeout:
                        if timeout is not None:
                            raise _tls_deadline_error(endpoint) from None
                        raise _TLSError(
                            f"TLS handshake with {endpoint.address} did not complete in "
                            f"{_TLS_HANDSHAKE_TIMEOUT:g}s"
                        ) from None
                    except OSError as exc:
                        raise _tls_error(endpoint, exc) from None
                    _check_alpn(sock, endpoint)
                sock.settimeout(None)
            except (OSError, ConnectionError) as exc:
                sock.close()
                last = exc
                continue
            except EtcdError:
                sock.close()
                raise
            self._next_endpoint = (self._next_endpoint + i) % len(endpoints)
            return _SyncConnection(self, endpoint, sock)
        self._next_endpoint = (self._next_endpoint + 1) % len(endpoints)
        if isinstance(last, socket.timeout):
            raise _deadline_error()
        raise _connect_error(endpoints, last)

    def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``). The
        request's ``grpc-timeout`` is what is left of ``timeout`` once it is written (a
        wait for a connection counts)."""
        if self._closed:
            raise CancelledError("the client is closed")
        deadline = None if timeout is None else _monotonic() + timeout
        conn = self._locked_connection(deadline)
        call = _Call(conn, False)
        try:
            left = None if deadline is None else _grpc_timeout(deadline)
            stream = conn.core.start(call, method, request, left, metadata, True)
            conn.send_out()
        except ValueError as exc:
            raise _bad_metadata(exc) from None
        finally:
            conn.lock.release()
        if not call.done:
            conn.wait(call, deadline)
        if not call.done:
            with conn.lock:
                if not call.done:
                    conn.core.cancel(stream)
                    call.set_exception(_deadline_error())
                    conn.call_done()
        if call.error is not None:
            raise call.error
        result: bytes = call.result
        return result

    def stream(self, method: str, metadata: Metadata = None) -> NativeStream:
        """Open a bidirectional stream to ``method``."""
        if self._closed:
            raise CancelledError("the client is closed")
        return NativeStream(self, method, metadata)

    def close(self) -> None:
        """Close the connections (and stop the keepalive thread); calls in flight fail
        with ``CancelledError``."""
        with self._connect_lock:
            self._closed = True
            conns = list(self._conns)
            self._conn = None
            self._pool = [None] * len(self._pool)
            stop, thread = self._keepalive_stop, self._keepalive_thread
        if stop is not None:
            stop.set()
        for conn in conns:
            try:  # a thread blocked writing under the lock is woken (its write fails)
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            with conn.lock:
                conn.core.close()
                conn.shutdown()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
