"""The blocking native transport under faults, against a real etcd through ``TcpProxy``:
keepalive pings (an idle connection is pinged and stays up; a stalled one is dropped within
keepalive_time + keepalive_timeout, and the next call fails over instead of hanging; a
stream with no deadline on a stalled connection ends), its thread (none when keepalive is
off, stopped by ``close()``), a connection reset while idle (the next write goes to a new
connection: nothing ambiguous), and the ``grpc-timeout`` sent (what is left of the deadline
once the request is written, after any connect wait), read off the wire by a loopback
listener that records the bytes.

Bounded: every wait polls with a time limit; only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fastetcd
from fastetcd import _native, errors
from fastetcd._transport import TransportConfig, parse_endpoints
from fastetcd.testing import TcpProxy

from . import test_transport_streams as streams

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs fastetcd._h2")

PATH = "/etcdserverpb.KV/Range"
SLACK = 1.0  # scheduling slack on a busy 2-core machine
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def _nt(client: fastetcd.Client) -> _native.NativeTransport:
    transport = client._transport
    assert isinstance(transport, _native.NativeTransport)
    return transport


def _value(kv: fastetcd.KeyValue | None) -> bytes:
    assert kv is not None
    return kv.value


def _config(endpoints: str | list[str], **kw: Any) -> TransportConfig:
    return TransportConfig(endpoints=parse_endpoints(endpoints), **kw)


def _until(predicate: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll ``predicate`` every 10 ms for at most ``limit`` seconds."""
    stop = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > stop:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def proxy(etcd_server: Any) -> Iterator[TcpProxy]:
    with TcpProxy.for_endpoint(etcd_server.endpoint) as p:
        yield p


# ----------------------------------------------------------------------------- keepalive


def test_idle_connection_is_pinged_and_stays_up(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    with fastetcd.Client(
        proxy.endpoint, transport="native", keepalive_time=0.3, keepalive_timeout=2.0
    ) as client:
        client.put(etcd_prefix + b"k", b"1")
        conn = _nt(client)._pool[0]
        assert conn is not None and conn.core.pings_acked == 0
        seen: list[tuple[int, bool]] = []

        def acked() -> bool:
            seen.append((conn.core.pings_acked, conn.ok))
            return seen[-1][0] >= 2

        assert _until(acked), seen  # pinged while idle, and the pings were answered
        count, ok = seen[-1]
        # etcd (Go gRPC's policy) sends GOAWAY "too_many_pings" on the 4th ping to a
        # connection without calls; until then the connection stays up.
        assert ok or count > 3, seen
        assert _nt(client)._pool[0] is conn or count > 3
        assert _value(client.get(etcd_prefix + b"k")) == b"1"
        assert proxy.accepted == 1 or count > 3


def test_stalled_idle_connection_is_dropped_in_time(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    kt, kto = 0.3, 0.5
    with fastetcd.Client(
        proxy.endpoint, transport="native", keepalive_time=kt, keepalive_timeout=kto
    ) as client:
        client.put(etcd_prefix + b"k", b"1")
        conn = _nt(client)._pool[0]
        assert conn is not None
        proxy.stall()
        start = time.monotonic()
        try:
            assert _until(lambda: conn.dead)
            took = time.monotonic() - start
            assert took <= kt + kto + SLACK, took
            assert _nt(client)._pool[0] is None  # the next call makes a new one
        finally:
            proxy.resume()
        assert _value(client.get(etcd_prefix + b"k")) == b"1"
        assert proxy.accepted == 2


def test_after_a_stall_calls_fail_over_to_another_endpoint(
    proxy: TcpProxy, etcd_server: Any, etcd_prefix: bytes
) -> None:
    """Two endpoints (the same etcd, one through the proxy): once the stalled one is dropped,
    calls go to the other without hanging or failing — a reconnect to the stalled endpoint
    is made but given no call, since the server's SETTINGS never come through it."""
    kto = 0.5
    with fastetcd.Client(
        [proxy.endpoint, etcd_server.endpoint],
        transport="native",
        keepalive_time=0.3,
        keepalive_timeout=kto,
        max_retries=0,
    ) as client:
        for i in range(4):  # round robin: both connections are made
            client.put(etcd_prefix + b"%d" % i, b"1")
        pool = _nt(client)._pool
        stalled = pool[0]
        assert stalled is not None and pool[1] is not None
        proxy.stall()
        try:
            assert _until(lambda: stalled.dead)
            slowest = 0.0
            for i in range(20):  # no deadline, no retry: each must simply work
                start = time.monotonic()
                client.put(etcd_prefix + b"after-%d" % i, b"2")
                slowest = max(slowest, time.monotonic() - start)
            assert slowest <= kto + SLACK, slowest
        finally:
            proxy.resume()
        assert client.get_prefix(etcd_prefix + b"after-", count_only=True).count == 20


def test_stream_without_deadline_ends_on_a_stalled_connection(
    proxy: TcpProxy, etcd_prefix: bytes
) -> None:
    kt, kto = 0.3, 0.5
    transport = _native.NativeTransport(
        _config(proxy.endpoint, keepalive_time=kt, keepalive_timeout=kto)
    )
    try:
        stream = transport.stream(streams.WATCH)
        stream.send(streams._create(etcd_prefix + b"w"))
        assert streams._parse(stream.recv()).created
        proxy.stall()
        start = time.monotonic()
        with pytest.raises(errors.UnavailableError, match="keepalive") as info:
            stream.recv()  # blocks reading the socket: keepalive must wake it
        assert time.monotonic() - start <= kt + kto + SLACK
        assert info.value.sent is None
    finally:
        proxy.resume()
        transport.close()


def test_keepalive_thread_only_when_asked_and_stopped_by_close(etcd_server: Any) -> None:
    with fastetcd.Client(etcd_server.endpoint, transport="native") as client:
        client.get(b"/native-faults/x")
        assert _nt(client)._keepalive_thread is None
    client = fastetcd.Client(etcd_server.endpoint, transport="native", keepalive_time=30)
    client.get(b"/native-faults/x")
    thread = _nt(client)._keepalive_thread
    assert thread is not None and thread.is_alive() and thread.daemon
    client.close()
    assert not thread.is_alive()


def test_threads_share_a_connection_with_keepalive_pings(
    etcd_server: Any, etcd_prefix: bytes
) -> None:
    """Calls from several threads, with idle gaps in which the keepalive thread pings (and
    reads the socket, handing the role to callers): every call completes."""
    with fastetcd.Client(
        etcd_server.endpoint, transport="native", keepalive_time=0.02, keepalive_timeout=5.0
    ) as client:
        client.put(etcd_prefix + b"k", b"v")
        failures: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    assert client.get(etcd_prefix + b"k", timeout=10 if n % 2 else None)
                    time.sleep(0.005 * ((n + i) % 7))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert not failures, failures


def test_close_cancels_a_call_blocked_reading(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    transport = _native.NativeTransport(_config(proxy.endpoint))
    method, request = PATH, b"\n" + bytes([len(etcd_prefix)]) + etcd_prefix  # a Range
    transport.unary(method, request, 5)
    proxy.stall()
    outcome: list[BaseException] = []
    reading = threading.Event()

    def call() -> None:
        reading.set()
        try:
            transport.unary(method, request, None)  # no deadline: only close() ends it
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        assert reading.wait(5)
        conn = transport._pool[0]
        assert conn is not None
        assert _until(lambda: conn.reading)  # blocked in recv
        transport.close()
        thread.join(5)
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], errors.CancelledError), outcome
    finally:
        proxy.resume()
        transport.close()


# ------------------------------------------------------------------ reset while idle


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_write_after_an_idle_reset_is_not_ambiguous(
    proxy: TcpProxy, etcd_prefix: bytes, kind: str
) -> None:
    """The proxy resets the connection while the client is idle, then a put (no retries):
    the blocking client sees the reset before writing and uses a new connection; the asyncio
    one may only fail it as provably unsent (its write fails at once)."""
    key = etcd_prefix + b"k"
    if kind == "sync":
        with fastetcd.Client(proxy.endpoint, transport="native", max_retries=0) as client:
            client.put(key, b"1")
            proxy.cut()
            client.put(key, b"2")
            assert _value(client.get(key)) == b"2" and proxy.accepted == 2
        return

    async def make() -> fastetcd.AsyncClient:
        return fastetcd.AsyncClient(proxy.endpoint, transport="native", max_retries=0)

    async def put_again(client: fastetcd.AsyncClient) -> None:
        try:
            await client.put(key, b"2")
        except errors.UnavailableError as exc:
            assert exc.sent is False, exc
            assert _value(await client.get(key)) == b"1"
        else:
            assert _value(await client.get(key)) == b"2"

    for loop in (asyncio.new_event_loop(), _uvloop()):
        if loop is None:
            continue
        try:
            client = loop.run_until_complete(make())
            loop.run_until_complete(client.put(key, b"1"))
            proxy.cut()  # while the loop is not running: the reset is not read before the put
            loop.run_until_complete(put_again(client))
            loop.run_until_complete(client.close())
        finally:
            loop.close()


def _uvloop() -> asyncio.AbstractEventLoop | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


# ------------------------------------------------------------------ grpc-timeout on the wire


class Capture:
    """A loopback listener: answers each connection with an empty SETTINGS frame (nothing
    else, ever) and records the bytes each one sends."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.received: list[bytearray] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                continue
            buf = bytearray()
            self.received.append(buf)
            thread = threading.Thread(target=self._read, args=(sock, buf), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, sock: socket.socket, buf: bytearray) -> None:
        with sock:
            sock.sendall(EMPTY_SETTINGS)
            sock.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data

    def request_headers(self) -> list[dict[bytes, bytes]]:
        """The header blocks of the requests received, decoded."""
        from fastetcd import _h2

        found = []
        for received in list(self.received):
            data = bytes(received)
            if len(data) < len(PREFACE):
                continue  # still arriving
            assert data.startswith(PREFACE)
            pos, decoder = len(PREFACE), _h2.HpackDecoder()
            while pos + 9 <= len(data):
                length = int.from_bytes(data[pos : pos + 3], "big")
                if pos + 9 + length > len(data):
                    break
                if data[pos + 3] == 1:  # HEADERS (ours: END_HEADERS, no padding)
                    found.append(dict(decoder.decode(data[pos + 9 : pos + 9 + length])))
                pos += 9 + length
        return found

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.listener.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seconds(value: bytes) -> float:
    return int(value[:-1]) * UNITS[value[-1:]]


def _sent_timeout(capture: Capture) -> bytes | None:
    assert _until(lambda: len(capture.request_headers()) == 1, 5)
    (headers,) = capture.request_headers()
    return headers.get(b"grpc-timeout")


def _hung_listener() -> socket.socket:
    """Accepts connections (in the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_grpc_timeout_is_the_timeout_when_connected_at_once() -> None:
    with Capture() as capture:
        transport = _native.NativeTransport(_config(capture.endpoint))
        try:
            with pytest.raises(errors.DeadlineExceededError):
                transport.unary(PATH, b"x", 0.75)
        finally:
            transport.close()
        value = _sent_timeout(capture)
        assert value is not None and 0.6 <= _seconds(value) <= 0.75, value


def test_no_grpc_timeout_without_a_deadline() -> None:
    with Capture() as capture:
        transport = _native.NativeTransport(_config(capture.endpoint))
        done = threading.Event()

        def call() -> None:
            try:
                transport.unary(PATH, b"x", None)
            except errors.CancelledError:
                done.set()

        thread = threading.Thread(target=call)
        thread.start()
        try:
            assert _until(lambda: len(capture.request_headers()) == 1, 5)
        finally:
            transport.close()  # ends the call, which has no deadline
            thread.join(5)
        assert done.is_set()
        assert b"grpc-timeout" not in capture.request_headers()[0]


def test_grpc_timeout_is_what_is_left_after_a_failed_over_connect() -> None:
    """The first endpoint accepts but never answers: after keepalive_timeout (the handshake
    limit) the call fails over to the second, and sends what is left of its deadline."""
    hung = _hung_listener()
    with hung, Capture() as capture:
        endpoints = [f"127.0.0.1:{hung.getsockname()[1]}", capture.endpoint]
        transport = _native.NativeTransport(
            _config(endpoints, keepalive_time=60.0, keepalive_timeout=0.4)
        )
        try:
            start = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                transport.unary(PATH, b"x", 2.0)
            took = time.monotonic() - start
        finally:
            transport.close()
        assert took <= 2.0 + SLACK  # the connect wait counted against the deadline
        value = _sent_timeout(capture)
        assert value is not None and 1.0 <= _seconds(value) <= 2.0 - 0.4, value


def test_grpc_timeout_is_what_is_left_after_waiting_for_another_dial() -> None:
    """A call that waits for another thread's dial (the dial lock) sends what is left."""
    hold = 0.4
    with Capture() as capture:
        transport = _native.NativeTransport(_config(capture.endpoint))
        waiting = threading.Event()
        outcome: list[BaseException] = []

        def call() -> None:
            waiting.set()
            try:
                transport.unary(PATH, b"x", 1.5)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=call)
        with transport._connect_lock:  # as if another thread were dialing
            thread.start()
            assert waiting.wait(5)
            time.sleep(hold)  # how long the dial takes (not a synchronisation)
        thread.join(10)
        transport.close()
        assert len(outcome) == 1 and isinstance(outcome[0], errors.DeadlineExceededError)
        value = _sent_timeout(capture)
        assert value is not None and 0.5 <= _seconds(value) <= 1.5 - hold, value


def test_connect_wait_is_bounded_by_the_deadline() -> None:
    """An endpoint that accepts and never answers: the call ends at its deadline (not the
    20 s handshake limit), with DEADLINE_EXCEEDED; without a deadline, the handshake limit
    (keepalive_timeout here) ends it with UNAVAILABLE, marked as never sent."""
    hung = _hung_listener()
    with hung:
        endpoint = f"127.0.0.1:{hung.getsockname()[1]}"
        transport = _native.NativeTransport(_config(endpoint))
        try:
            start = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                transport.unary(PATH, b"x", 0.5)
            assert time.monotonic() - start <= 0.5 + SLACK
        finally:
            transport.close()
        transport = _native.NativeTransport(
            _config(endpoint, keepalive_time=60.0, keepalive_timeout=0.3)
        )
        try:
            start = time.monotonic()
            with pytest.raises(errors.UnavailableError, match="SETTINGS") as info:
                transport.unary(PATH, b"x", None)
            assert info.value.sent is False
            assert time.monotonic() - start <= 0.3 + SLACK
        finally:
            transport.close()
