"""``TcpProxy``: a selector-based TCP proxy for failure-injection tests."""

from __future__ import annotations

import collections
import errno
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from ._process import LOOPBACK

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["TcpProxy"]

_T = TypeVar("_T")
_CHUNK = 65536
_CONNECT_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN}
_RST_LINGER = struct.pack("ii", 1, 0)
_WAKE = object()
_LISTENER = object()


class _Result(Generic[_T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: _T | None = None
        self.error: BaseException | None = None


class _Pipe:
    """One direction of a proxied connection: bytes read from ``src`` for ``dst``."""

    __slots__ = ("buf", "dst", "eof", "shut", "size", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.buf: collections.deque[tuple[float, bytes]] = collections.deque()
        self.size = 0
        self.eof = False  # src sent EOF
        self.shut = False  # EOF forwarded to dst (shutdown(SHUT_WR))

    def due(self, now: float) -> bool:
        return bool(self.buf) and self.buf[0][0] <= now


class _Conn:
    __slots__ = ("c2u", "client", "connecting", "masks", "u2c", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket, connecting: bool) -> None:
        self.client = client
        self.upstream = upstream
        self.connecting = connecting
        self.c2u = _Pipe(client, upstream)
        self.u2c = _Pipe(upstream, client)
        self.masks: dict[socket.socket, int] = {client: 0, upstream: 0}

    def pipes_for(self, sock: socket.socket) -> tuple[_Pipe, _Pipe]:
        """``(pipe reading from sock, pipe writing to sock)``."""
        return (self.c2u, self.u2c) if sock is self.client else (self.u2c, self.c2u)


class TcpProxy:
    """A small TCP proxy on a free 127.0.0.1 port forwarding to ``target_host:target_port``.

    Point a client at :attr:`endpoint` instead of the server, then inject failures:

    * :meth:`cut` closes every current connection abruptly (RST to both sides);
    * :meth:`stall` stops forwarding bytes (connections stay open) until :meth:`resume`;
    * :meth:`set_delay` delays every forwarded chunk by some seconds;
    * :meth:`reject` closes the listening socket, so new connections are refused
      (``ECONNREFUSED``), and ``reject(False)`` listens again on the same port.

    One daemon thread runs a selector loop (no busy waiting: sockets are only
    watched for the events that can make progress). The control methods are
    synchronous: when they return, the loop has applied them. :meth:`close` (or
    leaving the ``with`` block) closes all sockets and joins the thread.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = LOOPBACK,
        listen_port: int = 0,
        max_buffer: int = 1 << 20,
    ) -> None:
        self.target_host = target_host
        """Host the proxy connects to."""
        self.target_port = target_port
        """Port the proxy connects to."""
        infos = socket.getaddrinfo(target_host, target_port, type=socket.SOCK_STREAM)
        self._target_family: socket.AddressFamily = infos[0][0]
        self._target_addr = infos[0][4]
        self._max_buffer = max_buffer
        self._listen_host = listen_host
        self._family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
        self._sel = selectors.DefaultSelector()
        self._conns: set[_Conn] = set()
        self._stalled = False
        self._delay = 0.0
        self._stopping = False
        self._closed = False
        self._accepted = 0
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._cmd_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._listener: socket.socket | None = None
        try:
            self._listener = self._listen(listen_port)
            self.port: int = int(self._listener.getsockname()[1])
            """The local port the proxy listens on."""
            self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
            self._sel.register(self._listener, selectors.EVENT_READ, _LISTENER)
        except BaseException:
            self._close_resources()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"fastetcd-TcpProxy-{self.port}", daemon=True
        )
        self._thread.start()

    @classmethod
    def for_endpoint(
        cls,
        endpoint: str,
        *,
        listen_host: str = LOOPBACK,
        listen_port: int = 0,
        max_buffer: int = 1 << 20,
    ) -> TcpProxy:
        """A proxy in front of ``"host:port"`` (e.g. ``TcpProxy.for_endpoint(srv.endpoint)``)."""
        if "://" in endpoint:
            endpoint = endpoint.split("://", 1)[1]
        host, _, port = endpoint.rstrip("/").rpartition(":")
        return cls(
            host.strip("[]"),
            int(port),
            listen_host=listen_host,
            listen_port=listen_port,
            max_buffer=max_buffer,
        )

    # ----------------------------------------------------------------- public API

    @property
    def host(self) -> str:
        """The local address the proxy listens on (127.0.0.1 by default)."""
        return self._listen_host

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:<port>"``: give this to the client instead of the server's."""
        host = f"[{self._listen_host}]" if ":" in self._listen_host else self._listen_host
        return f"{host}:{self.port}"

    @property
    def endpoints(self) -> list[str]:
        """``[self.endpoint]`` (so a proxy can be passed to :func:`etcdctl`)."""
        return [self.endpoint]

    @property
    def target(self) -> str:
        """``"host:port"`` the proxy forwards to."""
        return f"{self.target_host}:{self.target_port}"

    @property
    def connections(self) -> int:
        """Number of currently open proxied connections."""
        return self._call(lambda: len(self._conns))

    @property
    def accepted(self) -> int:
        """Total number of connections accepted so far."""
        return self._accepted

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def cut(self) -> int:
        """Abruptly close (RST) all current connections; return how many were cut."""

        def do() -> int:
            conns = list(self._conns)
            for conn in conns:
                self._abort(conn)
            return len(conns)

        return self._call(do)

    def stall(self) -> None:
        """Stop forwarding bytes in both directions, keeping connections open."""
        self._call(lambda: setattr(self, "_stalled", True))

    def resume(self) -> None:
        """Undo :meth:`stall`: forward buffered and new bytes again."""
        self._call(lambda: setattr(self, "_stalled", False))

    def set_delay(self, seconds: float) -> None:
        """Delay every chunk read from now on by ``seconds`` before forwarding it."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._call(lambda: setattr(self, "_delay", float(seconds)))

    def reject(self, on: bool = True) -> None:
        """``reject(True)``: refuse new connections (stop listening); ``reject(False)``:
        accept again on the same port. Existing connections are not affected."""

        def do() -> None:
            if on and self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None
            elif not on and self._listener is None:
                listener = self._listen(self.port)
                self._sel.register(listener, selectors.EVENT_READ, _LISTENER)
                self._listener = listener

        self._call(do)

    def close(self, timeout: float = 10.0) -> None:
        """Close all connections and the listener and join the proxy thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._cmd_lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("stalled" if self._stalled else "open")
        return f"<TcpProxy {self.endpoint} -> {self.target} {state}>"

    # ----------------------------------------------------------------- control plumbing

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._listen_host, port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already pending, or closed

    def _call(self, fn: Callable[[], _T], timeout: float = 10.0) -> _T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        result: _Result[_T] = _Result()

        def run() -> None:
            try:
                result.value = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                result.error = exc
            finally:
                result.done.set()

        with self._cmd_lock:
            if self._stopping:
                raise RuntimeError(f"{self!r} is closed")
            self._commands.append(run)
        self._wake()
        if not result.done.wait(timeout):
            raise RuntimeError(f"{self!r}: proxy thread did not respond within {timeout}s")
        if result.error is not None:
            raise result.error
        return result.value  # type: ignore[return-value]

    def _run_commands(self) -> None:
        while True:
            with self._cmd_lock:
                if not self._commands:
                    return
                cmd = self._commands.popleft()
            cmd()

    # ----------------------------------------------------------------- event loop

    def _run(self) -> None:
        try:
            while True:
                with self._cmd_lock:
                    if self._stopping:
                        break
                now = time.monotonic()
                for conn in list(self._conns):
                    self._sync_interest(conn, now)
                events = self._sel.select(self._timeout(now))
                for key, mask in events:
                    tag = key.data
                    if tag is _WAKE:
                        self._drain_wake()
                        self._run_commands()
                    elif tag is _LISTENER:
                        self._accept()
                    else:
                        assert isinstance(tag, _Conn)
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        self._handle(tag, sock, mask)
        finally:
            for conn in list(self._conns):
                self._abort(conn)
            self._close_resources()
            with self._cmd_lock:
                self._stopping = True
            self._run_commands()  # release any caller still waiting

    def _close_resources(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _timeout(self, now: float) -> float | None:
        if self._stalled:
            return None
        nearest: float | None = None
        for conn in self._conns:
            for pipe in (conn.c2u, conn.u2c):
                if pipe.buf:
                    due = pipe.buf[0][0]
                    if due > now and (nearest is None or due < nearest):
                        nearest = due
        return None if nearest is None else max(0.0, nearest - now)

    def _sync_interest(self, conn: _Conn, now: float) -> None:
        for sock in (conn.client, conn.upstream):
            mask = 0
            if conn.connecting:
                if sock is conn.upstream:
                    mask = selectors.EVENT_WRITE
            elif not self._stalled:
                out, inp = conn.pipes_for(sock)
                if not out.eof and out.size < self._max_buffer:
                    mask |= selectors.EVENT_READ
                if not inp.shut and inp.due(now):
                    mask |= selectors.EVENT_WRITE
            old = conn.masks[sock]
            if mask == old:
                continue
            if old == 0:
                self._sel.register(sock, mask, conn)
            elif mask == 0:
                self._sel.unregister(sock)
            else:
                self._sel.modify(sock, mask, conn)
            conn.masks[sock] = mask

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(64):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED, EMFILE: try again on the next event
            self._accepted += 1
            upstream = socket.socket(self._target_family, socket.SOCK_STREAM)
            for sock in (client, upstream):
                sock.setblocking(False)
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            err = upstream.connect_ex(self._target_addr)
            conn = _Conn(client, upstream, connecting=err != 0)
            self._conns.add(conn)
            if err not in _CONNECT_IN_PROGRESS:
                self._abort(conn)

    def _handle(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if conn not in self._conns:
            return  # aborted earlier in this batch
        if conn.connecting:
            if sock is conn.upstream and mask & selectors.EVENT_WRITE:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._abort(conn)
                else:
                    conn.connecting = False
            return
        if self._stalled:
            return
        out, inp = conn.pipes_for(sock)
        try:
            if mask & selectors.EVENT_READ and not out.eof:
                data = sock.recv(_CHUNK)
                if data:
                    out.buf.append((time.monotonic() + self._delay, data))
                    out.size += len(data)
                else:
                    out.eof = True
            if mask & selectors.EVENT_WRITE:
                self._flush(inp)
            if out.eof and not out.buf:
                self._flush(out)  # forward the EOF right away when nothing is pending
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._abort(conn)
            return
        if conn.c2u.shut and conn.u2c.shut:
            self._release(conn, abort=False)

    def _flush(self, pipe: _Pipe) -> None:
        now = time.monotonic()
        while pipe.buf and pipe.buf[0][0] <= now:
            due, data = pipe.buf[0]
            try:
                sent = pipe.dst.send(data)
            except (BlockingIOError, InterruptedError):
                return
            pipe.size -= sent
            if sent < len(data):
                pipe.buf[0] = (due, data[sent:])
                return
            pipe.buf.popleft()
        if pipe.eof and not pipe.buf and not pipe.shut:
            pipe.shut = True
            try:
                pipe.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _abort(self, conn: _Conn) -> None:
        self._release(conn, abort=True)

    def _release(self, conn: _Conn, abort: bool) -> None:
        self._conns.discard(conn)
        for sock in (conn.client, conn.upstream):
            if conn.masks[sock]:
                try:
                    self._sel.unregister(sock)
                except (KeyError, ValueError):
                    pass
                conn.masks[sock] = 0
            if abort:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
                except OSError:
                    pass
            sock.close()
