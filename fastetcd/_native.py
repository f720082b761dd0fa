"""The native transport: gRPC over HTTP/2 spoken by fastetcd itself.

The protocol work (frames, HPACK, flow control, gRPC framing, status mapping) is the
sans-I/O core ``fastetcd._h2`` (compiled from ``src/_h2.pyx``); this module only moves its
bytes:

* :class:`NativeAsyncTransport` runs one connection as an ``asyncio.Protocol`` on the
  running loop (uvloop when that is the loop). Any number of calls share it; what they
  queue is written once per loop iteration, so N calls in flight cost one ``write``.
* :class:`NativeTransport` (blocking client) uses a blocking socket and no thread of its
  own: the calling thread writes its request and reads the socket until its response has
  arrived; when several threads wait, one reads for all and hands the role on. No
  cross-thread hand-off happens on the common path, so a call costs one ``send`` and one
  ``recv``.

Both fail over to the next endpoint only when connecting (retries belong to the retry
layer). The native transport needs the compiled core: with ``FASTETCD_NO_EXTENSIONS=1``
(or without a compiler) asking for it raises ``InvalidArgumentError``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import ssl
import threading
import time
from typing import Any

from ._transport import Endpoint, Metadata, TransportConfig
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

_READ_SIZE = 262144
_DEADLINE_MESSAGE = "Deadline Exceeded"


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


def _deadline_error() -> EtcdError:
    return from_status(4, _DEADLINE_MESSAGE)


def _connect_error(endpoints: tuple[Endpoint, ...], last: BaseException | None) -> UnavailableError:
    addresses = ", ".join(ep.address for ep in endpoints)
    exc = UnavailableError(f"cannot connect to {addresses}: {last}")
    exc.sent = False
    return exc


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def _check_alpn(sslobj: Any) -> None:
    if sslobj is not None and sslobj.selected_alpn_protocol() != "h2":
        raise ConnectionError("the server did not agree to HTTP/2 (ALPN h2)")


def _bad_metadata(exc: ValueError) -> InvalidArgumentError:
    return InvalidArgumentError(f"bad metadata: {exc}")


# ============================================================================ asyncio


class _AsyncConnection(asyncio.Protocol):
    """One HTTP/2 connection on an event loop."""

    def __init__(
        self, owner: NativeAsyncTransport, endpoint: Endpoint, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.loop = loop
        self.core: Any = owner._h2.H2Connection(
            endpoint.address, endpoint.secure, owner._config.max_recv_bytes
        )
        self.transport: Any = None  # an asyncio or uvloop transport
        self.ok = False  # new calls may start here
        self.lost = False
        self._flush_pending = False
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

    def data_received(self, data: bytes) -> None:
        core = self.core
        core.receive(data)
        if core.has_output:
            self.schedule_flush()
        if not core.usable:
            self._draining()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost fails what is left

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.ok = False
        if self._keepalive is not None:
            self._keepalive.cancel()
        reason = f": {exc}" if exc else ""
        self.core.fail_all(f"connection to {self.endpoint.address} lost{reason}", None)
        self.owner._forget(self)

    # ---------------------------------------------------------------- writing

    def schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        core = self.core
        if core.has_output and not self.lost and self.transport is not None:
            self.transport.write(core.data_to_send())

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

    def call_done(self) -> None:
        """A call finished or was abandoned: flush its RST_STREAM, close if draining."""
        if self.core.has_output:
            self.schedule_flush()
        if not self.ok and not self.lost and self.core.active == 0:
            self.close()

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
        conn, stream = await self._open()
        while True:
            if self._messages:
                message = self._messages.popleft()
                conn.core.consumed(stream, len(message) + 5)
                if conn.core.has_output:
                    conn.schedule_flush()
                return message
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
    """asyncio transport over one HTTP/2 connection (reconnects after a GOAWAY or a lost
    connection, trying the endpoints in turn)."""

    def __init__(self, config: TransportConfig) -> None:
        self._h2 = _core()
        self._config = config
        self._conn: _AsyncConnection | None = None
        self._conns: set[_AsyncConnection] = set()
        self._connecting: asyncio.Future[_AsyncConnection] | None = None
        self._next_endpoint = 0
        self._closed = False
        self._ssl = _ssl_context() if config.endpoints[0].secure else None

    def _forget(self, conn: _AsyncConnection) -> None:
        if self._conn is conn:
            self._conn = None
        if conn.lost:
            self._conns.discard(conn)

    async def _connection(self, timeout: float | None) -> _AsyncConnection:
        conn = self._conn
        if conn is not None and conn.ok:
            return conn
        if timeout is None:
            return await self._connect()
        try:
            return await asyncio.wait_for(self._connect(), timeout)
        except asyncio.TimeoutError:
            raise _deadline_error() from None

    async def _connect(self) -> _AsyncConnection:
        while True:
            if self._closed:
                raise CancelledError("the client is closed")
            conn = self._conn
            if conn is not None and conn.ok:
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
                conn = await self._dial(loop)
            except BaseException as exc:
                self._connecting = None
                if isinstance(exc, EtcdError):
                    connecting.set_exception(exc)
                    connecting.exception()  # retrieved: no "never retrieved" warning
                else:
                    connecting.cancel()
                raise
            self._connecting = None
            self._conn = conn
            self._conns.add(conn)
            connecting.set_result(conn)
            return conn

    async def _dial(self, loop: asyncio.AbstractEventLoop) -> _AsyncConnection:
        endpoints = self._config.endpoints
        last: BaseException | None = None
        for i in range(len(endpoints)):
            endpoint = endpoints[(self._next_endpoint + i) % len(endpoints)]
            conn = _AsyncConnection(self, endpoint, loop)
            try:
                transport, _ = await loop.create_connection(
                    lambda conn=conn: conn,
                    endpoint.host,
                    endpoint.port,
                    ssl=self._ssl,
                    server_hostname=endpoint.host if self._ssl is not None else None,
                )
                if self._ssl is not None:
                    _check_alpn(transport.get_extra_info("ssl_object"))
            except (OSError, ssl.SSLError, ConnectionError) as exc:
                last = exc
                continue
            self._next_endpoint = (self._next_endpoint + i) % len(endpoints)
            if self._closed:
                transport.close()
                raise CancelledError("the client is closed")
            return conn
        self._next_endpoint = (self._next_endpoint + 1) % len(endpoints)
        raise _connect_error(endpoints, last)

    async def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``)."""
        conn = self._conn
        if conn is None or not conn.ok:
            if self._closed:
                raise CancelledError("the client is closed")
            conn = await self._connection(timeout)
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
        self._conn = None
        for conn in conns:
            conn.core.close()
            conn.close()
        if conns:
            await asyncio.sleep(0)


# ============================================================================ blocking


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
    """One HTTP/2 connection on a blocking socket, shared by threads."""

    def __init__(self, owner: NativeTransport, endpoint: Endpoint, sock: socket.socket) -> None:
        self.owner = owner
        self.endpoint = endpoint
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
        with self.lock:
            self.core.initiate()
            self.send_out()

    def send_out(self) -> None:
        """Write the core's output (lock held)."""
        core = self.core
        if core.has_output and not self.dead:
            try:
                self.sock.sendall(core.data_to_send())
            except OSError as exc:
                self._lost(f"connection to {self.endpoint.address} lost: {exc}")

    def _lost(self, message: str) -> None:
        """The connection is gone (lock held): fail its calls, close the socket."""
        self.ok = False
        if not self.dead:
            self.dead = True
            self.core.fail_all(message, None)
        self.owner._forget(self)
        if not self.reading:
            self.sock.close()

    def shutdown(self) -> None:
        """Close the transport (lock held): wakes a thread blocked reading."""
        self.ok = False
        self.dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not self.reading:
            self.sock.close()

    def _after_receive(self) -> None:
        core = self.core
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
        """Block until ``call`` has a result or a message, or ``deadline`` passes."""
        lock = self.lock
        while True:
            lock.acquire()
            if call.done or call.messages:
                lock.release()
                return
            if deadline is not None and time.monotonic() >= deadline:
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
        sock = self.sock
        data: bytes | None
        error = ""
        try:
            timeout = None if deadline is None else max(0.0001, deadline - time.monotonic())
            if timeout != self._timeout:
                sock.settimeout(timeout)
                self._timeout = timeout
            data = sock.recv(_READ_SIZE)
        except socket.timeout:
            data = None
        except OSError as exc:
            data, error = b"", f": {exc}"
        with self.lock:
            self.reading = False
            if self.dead:
                self.sock.close()
            elif data:
                self.core.receive(data)
                self._after_receive()
            elif data is not None:
                self._lost(f"connection to {self.endpoint.address} lost{error}")
            # hand the reading role on to a thread still waiting
            waiters = self._waiters
            while waiters:
                other = waiters.popleft()
                if other.waiting:
                    other._wake()
                    break


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
        conn.wait(call, None)
        with conn.lock:
            if call.messages:
                message: bytes = call.messages.popleft()
                conn.core.consumed(self._stream, len(message) + 5)
                conn.send_out()
                return message
        if call.error is not None:
            raise call.error
        return None

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
    """Blocking transport over one HTTP/2 connection on a blocking socket (thread-safe)."""

    def __init__(self, config: TransportConfig) -> None:
        self._h2 = _core()
        self._config = config
        self._conn: _SyncConnection | None = None
        self._conns: set[_SyncConnection] = set()
        self._connect_lock = threading.Lock()
        self._next_endpoint = 0
        self._closed = False
        self._ssl = _ssl_context() if config.endpoints[0].secure else None

    def _forget(self, conn: _SyncConnection) -> None:
        if self._conn is conn:
            self._conn = None
        if conn.dead:
            self._conns.discard(conn)

    def _connection(self, timeout: float | None) -> _SyncConnection:
        conn = self._conn
        if conn is not None and conn.ok:
            return conn
        with self._connect_lock:
            if self._closed:
                raise CancelledError("the client is closed")
            conn = self._conn
            if conn is not None and conn.ok:
                return conn
            conn = self._dial(timeout)
            self._conn = conn
            self._conns.add(conn)
            return conn

    def _dial(self, timeout: float | None) -> _SyncConnection:
        endpoints = self._config.endpoints
        last: BaseException | None = None
        for i in range(len(endpoints)):
            endpoint = endpoints[(self._next_endpoint + i) % len(endpoints)]
            try:
                sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl is not None:
                    sock = self._ssl.wrap_socket(sock, server_hostname=endpoint.host)
                    _check_alpn(sock)
                sock.settimeout(None)
            except (OSError, ConnectionError) as exc:
                sock.close()
                last = exc
                continue
            self._next_endpoint = (self._next_endpoint + i) % len(endpoints)
            return _SyncConnection(self, endpoint, sock)
        self._next_endpoint = (self._next_endpoint + 1) % len(endpoints)
        if isinstance(last, socket.timeout):
            raise _deadline_error()
        raise _connect_error(endpoints, last)

    def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``)."""
        if self._closed:
            raise CancelledError("the client is closed")
        conn = self._connection(timeout)
        call = _Call(conn, False)
        deadline = None if timeout is None else time.monotonic() + timeout
        with conn.lock:
            try:
                stream = conn.core.start(call, method, request, timeout, metadata, True)
            except ValueError as exc:
                raise _bad_metadata(exc) from None
            conn.send_out()
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
        """Close the connections; calls in flight fail with ``CancelledError``."""
        with self._connect_lock:
            self._closed = True
            conns = list(self._conns)
            self._conn = None
        for conn in conns:
            with conn.lock:
                conn.core.close()
                conn.shutdown()

