"""A scripted gRPC server built on the ``h2`` library, the independent HTTP/2 peer the native
transport is tested against (GOAWAY, stream limits, resets, trailers-only responses,
CONTINUATION, flow control, garbage: things a real etcd does not do on demand).

Each connection runs in its own thread over a blocking socket. When a request stream ends
the ``handler(server, conn, stream_id, headers, body)`` is called; it answers with
``conn.respond(...)`` (possibly later, from another thread) or does something else to the
connection. Everything is bounded: sockets time out, threads are daemons and joined on close.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("h2")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hyperframe.frame  # noqa: E402


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_messages(body: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(body):
        length = int.from_bytes(body[pos + 1 : pos + 5], "big")
        out.append(body[pos + 5 : pos + 5 + length])
        pos += 5 + length
    return out


Handler = Callable[["PeerServer", "PeerConnection", int, dict[bytes, bytes], bytes], None]


def echo(server: PeerServer, conn: PeerConnection, sid: int, headers: Any, body: bytes) -> None:
    """Answer every request message reversed."""
    conn.respond(sid, [m[::-1] for m in grpc_messages(body)])


class PeerConnection:
    def __init__(self, server: PeerServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.lock = threading.RLock()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.pending: dict[int, tuple[bytearray, list[tuple[bytes, bytes]] | None]] = {}
        self.events: list[Any] = []
        self.open_streams: set[int] = set()
        self.started: set[int] = set()
        self.max_open = 0
        self.closed = False
        with self.lock:
            self.h2.initiate_connection()
            if server.settings:
                self.h2.update_settings(server.settings)
            self.flush()
        server.connections.append(self)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def run(self) -> None:
        self.sock.settimeout(30)
        try:
            while not self.closed:
                data = self.sock.recv(65536)
                if not data:
                    break
                with self.lock:
                    events = self.h2.receive_data(data)
                    self.events.extend(events)
                    for event in events:
                        self.on_event(event)
                    self.flush()
        except Exception as exc:  # the client did something h2 rejects: record it
            self.server.errors.append(exc)
        finally:
            self.closed = True
            self.sock.close()

    def on_event(self, event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.headers[event.stream_id] = dict(event.headers)
            self.bodies[event.stream_id] = bytearray()
            self.open_streams.add(event.stream_id)
            self.max_open = max(self.max_open, len(self.open_streams))
        elif isinstance(event, h2.events.DataReceived):
            self.bodies[event.stream_id] += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if self.server.stream_handler is not None:
                self.server.stream_handler(self.server, self, event.stream_id, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            sid = event.stream_id
            self.server.handler(self.server, self, sid, self.headers[sid], bytes(self.bodies[sid]))
        elif isinstance(event, h2.events.StreamReset):
            self.open_streams.discard(event.stream_id)
            self.pending.pop(event.stream_id, None)
            self.server.resets.append(event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            for sid in list(self.pending):
                self._push(sid)

    def respond(
        self,
        sid: int,
        messages: list[bytes],
        status: int = 0,
        message: str = "",
        trailers_only: bool = False,
        chunk: int = 0,
        pad: int = 0,
        end: bool = True,
    ) -> None:
        """Send response headers, the messages (in ``chunk``-byte DATA frames if given) and
        the trailers; ``trailers_only`` sends one HEADERS with END_STREAM instead."""
        with self.lock:
            if self.closed:
                return
            trailers = [(b"grpc-status", str(status).encode())]
            if message:
                trailers.append((b"grpc-message", message.encode()))
            if trailers_only:
                self.h2.send_headers(
                    sid,
                    [(b":status", b"200"), (b"content-type", b"application/grpc"), *trailers],
                    end_stream=True,
                )
                self.open_streams.discard(sid)
                self.flush()
                return
            if sid not in self.started:
                self.started.add(sid)
                self.h2.send_headers(
                    sid, [(b":status", b"200"), (b"content-type", b"application/grpc")]
                )
            body = bytearray(b"".join(grpc_frame(m) for m in messages))
            self.pending[sid] = (body, trailers if end else None)
            self._push(sid, chunk, pad)
            self.flush()

    def _push(self, sid: int, chunk: int = 0, pad: int = 0) -> None:
        body, trailers = self.pending[sid]
        while body:
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            size = min(len(body), window - (pad + 1 if pad else 0), chunk or len(body))
            if size <= 0:
                self.flush()
                return
            self.h2.send_data(sid, bytes(body[:size]), pad_length=pad or None)
            del body[:size]
        del self.pending[sid]
        if trailers is not None:
            self.h2.send_headers(sid, trailers, end_stream=True)
            self.open_streams.discard(sid)
        self.flush()


class PeerServer:
    """Listens on 127.0.0.1; ``endpoint`` is what to give the client."""

    def __init__(
        self,
        handler: Handler = echo,
        settings: dict[int, int] | None = None,
        stream_handler: Any = None,
    ) -> None:
        self.handler = handler
        self.stream_handler = stream_handler
        self.settings = settings
        self.connections: list[PeerConnection] = []
        self.errors: list[BaseException] = []
        self.resets: list[int] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                continue
            PeerConnection(self, sock)

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.listener.close()
        for conn in self.connections:
            conn.closed = True
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.thread.join(5)

    def __enter__(self) -> PeerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SETTINGS = h2.settings.SettingCodes


# =============================================================================== the tests

import asyncio  # noqa: E402
import time  # noqa: E402

from fastetcd import _native, errors  # noqa: E402
from fastetcd._transport import TransportConfig, parse_endpoints  # noqa: E402

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs fastetcd._h2")

PATH = "/etcdserverpb.KV/Range"


def _config(endpoint: str, **kw: Any) -> TransportConfig:
    return TransportConfig(endpoints=parse_endpoints(endpoint), **kw)


class Both:
    """Runs a unary call on the blocking or the asyncio native transport."""

    def __init__(self, kind: str, endpoint: str, **kw: Any) -> None:
        self.kind = kind
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        if self.loop is None:
            self.t: Any = _native.NativeTransport(_config(endpoint, **kw))
        else:
            self.t = _native.NativeAsyncTransport(_config(endpoint, **kw))

    def unary(self, request: bytes, timeout: float | None = 5.0, **kw: Any) -> bytes:
        if self.loop is None:
            return self.t.unary(kw.pop("path", PATH), request, timeout, **kw)  # type: ignore[no-any-return]
        return self.loop.run_until_complete(  # type: ignore[no-any-return]
            self.t.unary(kw.pop("path", PATH), request, timeout, **kw)
        )

    def many(self, requests: list[bytes], timeout: float | None = 10.0) -> list[Any]:
        """Run the requests concurrently; results or exceptions in order."""
        if self.loop is None:
            results: list[Any] = [None] * len(requests)

            def run(i: int) -> None:
                try:
                    results[i] = self.t.unary(PATH, requests[i], timeout)
                except Exception as exc:
                    results[i] = exc

            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
            return results

        async def body() -> list[Any]:
            calls = [self.t.unary(PATH, r, timeout) for r in requests]
            return await asyncio.gather(*calls, return_exceptions=True)

        return self.loop.run_until_complete(body())

    def core(self) -> Any:
        return self.t._conn.core

    def close(self) -> None:
        if self.loop is None:
            self.t.close()
        else:
            self.loop.run_until_complete(self.t.close())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def _client(kind: str, server: PeerServer, **kw: Any) -> Both:
    return Both(kind, server.endpoint, **kw)


def test_unary_echo_and_request_headers(kind: str) -> None:
    with PeerServer() as server:
        client = _client(kind, server)
        try:
            assert client.unary(b"hello", timeout=7.5, metadata=[("X-Token", "abc")]) == b"olleh"
            assert client.unary(b"", timeout=None) == b""
        finally:
            client.close()
        headers = server.connections[0].headers[1]
        assert headers[b":method"] == b"POST"
        assert headers[b":scheme"] == b"http"
        assert headers[b":path"] == PATH.encode()
        assert headers[b":authority"] == server.endpoint.encode()
        assert headers[b"te"] == b"trailers"
        assert headers[b"content-type"] == b"application/grpc"
        assert headers[b"x-token"] == b"abc"
        timeout = headers[b"grpc-timeout"]
        assert timeout[-1:] == b"u" and 7_400_000 <= int(timeout[:-1]) <= 7_500_000
        assert b"grpc-timeout" not in server.connections[0].headers[3]
        assert not server.errors


@pytest.mark.parametrize(
    ("status", "message", "cls", "details"),
    [
        (9, "etcdserver: not leader", errors.NotLeaderError, "etcdserver: not leader"),
        (
            11,
            "etcdserver: mvcc: required revision has been compacted",
            errors.CompactedError,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        (14, "caf%C3%A9 100%25 %zz", errors.UnavailableError, "café 100% %zz"),
        (3, "", errors.InvalidRequestError, ""),
        (99, "odd", errors.UnknownError, "odd"),
    ],
)
@pytest.mark.parametrize("trailers_only", [True, False])
def test_error_status_mapping(
    kind: str, status: int, message: str, cls: type, details: str, trailers_only: bool
) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        conn.respond(sid, [], status=status, message=message, trailers_only=trailers_only)

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            with pytest.raises(cls) as info:
                client.unary(b"x")
            assert type(info.value) is cls
            assert info.value.details == details
            assert info.value == info.value  # and the next call still works on the connection
            with pytest.raises(cls):
                client.unary(b"y")
            assert len(server.connections) == 1
        finally:
            client.close()


@pytest.mark.parametrize(("chunk", "pad"), [(1, 0), (7, 0), (0, 0), (100, 20), (3, 255)])
def test_messages_split_across_frames_and_padding(kind: str, chunk: int, pad: int) -> None:
    payload = bytes(range(256)) * 40
    with PeerServer() as server:
        server.handler = lambda s, c, sid, h, b: c.respond(
            sid, [m[::-1] for m in grpc_messages(b)], chunk=chunk, pad=pad
        )
        client = _client(kind, server)
        try:
            assert client.unary(payload) == payload[::-1]
            assert client.unary(b"ab") == b"ba"
        finally:
            client.close()
        assert not server.errors


def test_large_request_and_response_flow_control(kind: str) -> None:
    """A 3 MB request through the server's 64 KiB windows, and a 40 MB response through
    ours (16 MiB per stream: the client must give window back as data arrives)."""
    big_request = bytes(range(251)) * 12_000
    with PeerServer() as server:
        server.handler = lambda s, c, sid, h, b: c.respond(
            sid, [b"r" * 40_000_000 if grpc_messages(b)[0] == b"big" else grpc_messages(b)[0]]
        )
        client = _client(kind, server, max_recv_bytes=2**31 - 1)
        try:
            assert client.unary(big_request, timeout=30) == big_request
            assert client.unary(b"big", timeout=60) == b"r" * 40_000_000
        finally:
            client.close()
        assert not server.errors


def test_max_recv_bytes(kind: str) -> None:
    with PeerServer() as server:
        server.handler = lambda s, c, sid, h, b: c.respond(sid, [b"z" * 5000])
        client = _client(kind, server, max_recv_bytes=4096)
        try:
            with pytest.raises(errors.ResourceExhaustedError):
                client.unary(b"x")
            server.handler = lambda s, c, sid, h, b: c.respond(sid, [b"small"])
            assert client.unary(b"y") == b"small"  # the connection is still usable
        finally:
            client.close()


def test_max_concurrent_streams_respected(kind: str) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        msg = grpc_messages(body)[0]
        threading.Timer(0.02, conn.respond, args=(sid, [msg])).start()

    with PeerServer(handler, settings={SETTINGS.MAX_CONCURRENT_STREAMS: 2}) as server:
        client = _client(kind, server)
        try:
            client.unary(b"warm")  # the server's SETTINGS have arrived
            requests = [b"%d" % i for i in range(12)]
            assert client.many(requests) == requests
        finally:
            client.close()
        assert not server.errors
        assert server.connections[0].max_open <= 2


def test_goaway_lets_lower_streams_finish_fails_higher_then_reconnects(kind: str) -> None:
    held: list[tuple[PeerConnection, int]] = []

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        msg = grpc_messages(body)[0]
        if msg == b"fresh":
            conn.respond(sid, [msg])
            return
        held.append((conn, sid))
        if len(held) == 3:  # three in flight: keep the lower two, refuse the highest
            ids = sorted(s for _, s in held)
            goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=ids[1], error_code=0)
            conn.send_raw(goaway.serialize())
            for c, s in held:
                if s <= ids[1]:
                    c.respond(s, [b"done%d" % s])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            client.unary(b"fresh")  # stream 1
            results = client.many([b"a", b"b", b"c"])
            ok = sorted(r for r in results if isinstance(r, bytes))
            failed = [r for r in results if isinstance(r, Exception)]
            assert ok == [b"done3", b"done5"], results
            assert len(failed) == 1 and isinstance(failed[0], errors.UnavailableError)
            assert failed[0].sent is False
            assert client.unary(b"fresh") == b"fresh"  # on a new connection
            assert len(server.connections) == 2
        finally:
            client.close()


@pytest.mark.parametrize(
    ("code", "cls", "sent"),
    [
        (7, errors.UnavailableError, False),
        (8, errors.CancelledError, None),
        (2, errors.InternalError, None),
        (11, errors.ResourceExhaustedError, None),
    ],
)
def test_rst_stream_from_server(kind: str, code: int, cls: type, sent: bool | None) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        if grpc_messages(body)[0] == b"ok":
            conn.respond(sid, [b"ok"])
            return
        with conn.lock:
            conn.h2.reset_stream(sid, error_code=code)
            conn.flush()

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            with pytest.raises(cls) as info:
                client.unary(b"x")
            assert type(info.value) is cls
            if cls is errors.UnavailableError:
                assert info.value.sent is sent
            assert client.unary(b"ok") == b"ok"
        finally:
            client.close()


def test_deadline_resets_the_stream(kind: str) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        if grpc_messages(body)[0] == b"ok":
            conn.respond(sid, [b"ok"])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            start = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                client.unary(b"never", timeout=0.2)
            assert 0.15 < time.monotonic() - start < 2
            assert client.unary(b"ok") == b"ok"
            deadline = time.monotonic() + 2
            while 8 not in server.resets and time.monotonic() < deadline:
                time.sleep(0.01)
            assert 8 in server.resets  # RST_STREAM(CANCEL) reached the server
        finally:
            client.close()


def test_garbage_from_server_fails_calls_and_reconnects(kind: str) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        msg = grpc_messages(body)[0]
        if msg == b"garbage":
            conn.send_raw(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # WU of 0
        else:
            conn.respond(sid, [msg])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            with pytest.raises(errors.InternalError, match="PROTOCOL_ERROR"):
                client.unary(b"garbage")
            assert client.unary(b"again") == b"again"
            assert len(server.connections) == 2
        finally:
            client.close()


def test_server_closes_connection_mid_call(kind: str) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        msg = grpc_messages(body)[0]
        if msg == b"die":
            conn.sock.shutdown(socket.SHUT_RDWR)
        else:
            conn.respond(sid, [msg])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            with pytest.raises(errors.UnavailableError):
                client.unary(b"die")
            assert client.unary(b"back") == b"back"
        finally:
            client.close()


def test_connection_refused_is_unavailable_not_sent(kind: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = Both(kind, f"127.0.0.1:{port}")
    try:
        with pytest.raises(errors.UnavailableError) as info:
            client.unary(b"x")
        assert info.value.sent is False
    finally:
        client.close()


def test_huge_trailers_use_continuation_and_dynamic_table(kind: str) -> None:
    long_message = "etcdserver: " + "x" * 40_000

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        msg = grpc_messages(body)[0]
        if msg == b"long":
            conn.respond(sid, [], status=13, message=long_message)
        else:
            conn.respond(sid, [msg])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        try:
            for i in range(20):
                assert client.unary(b"m%d" % i) == b"m%d" % i
            core = client.core()
            assert core.memo_hits >= 15  # indexed-only blocks once the table is warm
            with pytest.raises(errors.InternalError) as info:
                client.unary(b"long")
            assert info.value.details == long_message
            assert client.unary(b"after") == b"after"
        finally:
            client.close()
        assert not server.errors


def test_server_ping_is_acked_and_close_cancels(kind: str) -> None:
    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        with conn.lock:
            conn.h2.ping(b"12345678")
            conn.flush()
        if grpc_messages(body)[0] == b"ok":
            conn.respond(sid, [b"ok"])

    with PeerServer(handler) as server:
        client = _client(kind, server)
        assert client.unary(b"ok") == b"ok"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not any(
            isinstance(e, h2.events.PingAckReceived) for e in server.connections[0].events
        ):
            client.unary(b"ok")
            time.sleep(0.01)
        assert any(isinstance(e, h2.events.PingAckReceived) for e in server.connections[0].events)
        if client.loop is None:
            client.close()
            with pytest.raises(errors.CancelledError):
                client.unary(b"x")
        else:
            loop = client.loop
            loop.run_until_complete(client.t.close())
            with pytest.raises(errors.CancelledError):
                loop.run_until_complete(client.t.unary(PATH, b"x", 1.0))
            loop.close()


def test_bidi_stream_on_peer(kind: str) -> None:
    def on_data(server: PeerServer, conn: PeerConnection, sid: int, data: bytes) -> None:
        body = conn.bodies[sid]
        msgs = grpc_messages(bytes(body))
        if msgs and len(bytes(body)) == sum(5 + len(m) for m in msgs):
            body.clear()
            conn.respond(sid, [m.upper() for m in msgs], end=False)

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        with conn.lock:
            conn.h2.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
            conn.flush()

    with PeerServer(handler, stream_handler=on_data) as server:
        if kind == "sync":
            t = _native.NativeTransport(_config(server.endpoint))
            s = t.stream("/x.Y/Z")
            for word in (b"one", b"two", b"three"):
                s.send(word)
                assert s.recv() == word.upper()
            s.done_writing()
            assert s.recv() is None
            t.close()
        else:

            async def body() -> None:
                t = _native.NativeAsyncTransport(_config(server.endpoint))
                s = t.stream("/x.Y/Z")
                for word in (b"one", b"two", b"three"):
                    await s.send(word)
                    assert await s.recv() == word.upper()
                await s.done_writing()
                assert await s.recv() is None
                await t.close()

            asyncio.run(body())
        assert not server.errors


def test_async_keepalive_detects_a_dead_peer() -> None:
    from fastetcd.testing import TcpProxy

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        if grpc_messages(body)[0] == b"ok":
            conn.respond(sid, [b"ok"])

    with PeerServer(handler) as server, TcpProxy.for_endpoint(server.endpoint) as proxy:

        async def body() -> None:
            config = _config(proxy.endpoint, keepalive_time=0.1, keepalive_timeout=0.3)
            t = _native.NativeAsyncTransport(config)
            try:
                assert await t.unary(PATH, b"ok", None) == b"ok"
                await asyncio.sleep(0.8)  # pings answered: the connection stays
                assert t._conn is not None and t._conn.core.pings_acked >= 1
                assert await t.unary(PATH, b"ok", None) == b"ok"
                proxy.stall()
                start = time.monotonic()
                with pytest.raises(errors.UnavailableError, match="keepalive"):
                    await t.unary(PATH, b"hang", None)  # no deadline: keepalive ends it
                assert time.monotonic() - start < 3
            finally:
                proxy.resume()
                await t.close()

        asyncio.run(body())


def test_stream_recv_many_batches_deadline_and_interrupt(kind: str) -> None:
    """``recv_many`` returns what has arrived in order (the first message always, the others
    while they fit in ``max_bytes``); the blocking one also returns ``[]`` at its deadline
    and when ``interrupt()`` is called from another thread."""

    def on_data(server: PeerServer, conn: PeerConnection, sid: int, data: bytes) -> None:
        body = conn.bodies[sid]
        msgs = grpc_messages(bytes(body))
        if msgs and len(bytes(body)) == sum(5 + len(m) for m in msgs):
            body.clear()
            conn.respond(sid, [m + b"%d" % i for m in msgs for i in range(3)], end=False)

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        with conn.lock:
            conn.h2.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
            conn.flush()

    with PeerServer(handler, stream_handler=on_data) as server:
        if kind == "sync":
            t = _native.NativeTransport(_config(server.endpoint))
            s = t.stream("/x.Y/Z")
            s.send(b"a")
            got: list[bytes] = []
            while len(got) < 3:
                batch = s.recv_many(1 << 20, time.monotonic() + 10)
                assert batch
                got += batch
            assert got == [b"a0", b"a1", b"a2"]
            s.send(b"b")
            time.sleep(0.3)  # all three have arrived
            assert s.recv_many(1) == [b"b0"]  # the first, even over max_bytes
            assert s.recv_many(1 << 20) == [b"b1", b"b2"]
            t0 = time.monotonic()
            assert s.recv_many(1 << 20, time.monotonic() + 0.2) == []
            assert 0.15 < time.monotonic() - t0 < 5
            out: list[Any] = []
            reader = threading.Thread(target=lambda: out.append(s.recv_many(1 << 20)))
            reader.start()
            time.sleep(0.2)
            t0 = time.monotonic()
            s.interrupt()
            reader.join(10)
            assert out == [[]] and time.monotonic() - t0 < 5
            s.send(b"c")
            assert s.recv() == b"c0"  # an interrupt mark is never delivered
            s.done_writing()
            rest = []
            while True:
                batch = s.recv_many(1 << 20)
                if batch is None:
                    break
                rest += batch
            assert rest == [b"c1", b"c2"]
            t.close()
        else:

            async def body() -> None:
                t = _native.NativeAsyncTransport(_config(server.endpoint))
                s = t.stream("/x.Y/Z")
                await s.send(b"a")
                got: list[bytes] = []
                while len(got) < 3:
                    batch = await s.recv_many(1 << 20)
                    assert batch
                    got += batch
                assert got == [b"a0", b"a1", b"a2"]
                await s.send(b"b")
                await asyncio.sleep(0.3)
                assert await s.recv_many(1) == [b"b0"]
                assert await s.recv_many(1 << 20) == [b"b1", b"b2"]
                await s.done_writing()
                assert await s.recv_many(1 << 20) is None
                await t.close()

            asyncio.run(body())
        assert not server.errors


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_async_client_responses_parsed_where_they_arrive(loop_kind: str) -> None:
    """The AsyncClient's get and put parse their response in the read buffer (no bytes
    object for it): a whole message, one split across DATA frames (copied, then decoded as
    before), a malformed one (the codec's DecodeError, as decode_get_response raises), and
    a malformed one whose trailers report an error (the status wins: the message is not the
    call's result)."""
    from fastetcd import _codec
    from fastetcd._pb import rpc_pb2

    kv = rpc_pb2.RangeResponse()
    kv.header.revision = 7
    kv.kvs.add(key=b"k", value=b"v" * 300, mod_revision=7, create_revision=5, version=3)
    good = kv.SerializeToString()
    put = rpc_pb2.PutResponse()
    put.header.revision = 8
    bad = b"\x0a\x05\x08"
    with pytest.raises(errors.DecodeError) as expected:
        _codec.decode_get_response(bad)
    plan: dict[bytes, tuple[bytes, int, int]] = {}

    def handler(server: PeerServer, conn: PeerConnection, sid: int, h: Any, body: bytes) -> None:
        if h[b":path"] == b"/etcdserverpb.KV/Put":
            conn.respond(sid, [put.SerializeToString()])
            return
        key = rpc_pb2.RangeRequest.FromString(grpc_messages(body)[0]).key
        message, status, chunk = plan[key]
        conn.respond(sid, [message], status=status, message="no" if status else "", chunk=chunk)

    plan[b"whole"] = (good, 0, 0)
    plan[b"split"] = (good, 0, 7)
    plan[b"bad"] = (bad, 0, 0)
    plan[b"bad-then-error"] = (bad, 3, 0)  # INVALID_ARGUMENT: not retried

    async def body() -> None:
        import fastetcd

        async with fastetcd.AsyncClient(server.endpoint, transport="native") as client:
            await client.put(b"p", b"1")  # connects: the calls below are AsyncCalls
            for key in (b"whole", b"split"):
                call = client.get(key)
                assert type(call).__name__ == "AsyncCall"
                got = await call
                assert got is not None and got.key == b"k" and got.value == b"v" * 300
                assert (got.mod_revision, got.create_revision, got.version) == (7, 5, 3)
            result = await client.put(b"p", b"2")
            assert result.header.revision == 8
            with pytest.raises(errors.DecodeError) as info:
                await client.get(b"bad")
            assert str(info.value) == str(expected.value)
            with pytest.raises(errors.InvalidRequestError, match="no"):
                await client.get(b"bad-then-error")
            assert await client.get(b"whole") is not None  # the connection is still good

    with PeerServer(handler) as server:
        if loop_kind == "uvloop":
            pytest.importorskip("uvloop").run(body())
        else:
            asyncio.run(body())
    assert not server.errors
