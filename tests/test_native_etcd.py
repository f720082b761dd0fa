"""The native transport against a real etcd: the transport stream tests of
``test_transport_streams.py`` run on it, Watch and LeaseKeepAlive bidi streams, and failures
injected with ``TcpProxy`` (cut, stall) on both clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import fastetcd
from fastetcd import _native, _plan, errors
from fastetcd._base import ClientBase
from fastetcd._pb import rpc_pb2
from fastetcd._transport import TransportConfig, parse_endpoints
from fastetcd.testing import TcpProxy

from . import test_transport_streams as streams

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs fastetcd._h2")

WATCH = "/etcdserverpb.Watch/Watch"
LEASE_GRANT = "/etcdserverpb.Lease/LeaseGrant"
KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"


def _config(endpoint: str) -> TransportConfig:
    return TransportConfig(endpoints=parse_endpoints(endpoint))


@pytest.fixture
def native_default() -> Iterator[None]:
    """Make ``transport="native"`` the clients' default for the duration of a test."""
    defaults = ClientBase.__init__.__kwdefaults__
    assert defaults is not None
    old = defaults["transport"]
    defaults["transport"] = "native"
    try:
        yield
    finally:
        defaults["transport"] = old


def test_transport_streams_sync_on_native(native_default, etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    streams.test_sync_stream_watch_roundtrip(etcd_server, etcd_prefix)


def test_transport_streams_async_on_native(native_default, etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    streams.test_async_stream_watch_roundtrip(etcd_server, etcd_prefix)


def test_watch_many_events_and_close_from_another_thread(etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    key = etcd_prefix + b"many"
    with fastetcd.Client(etcd_server.endpoint, transport="native") as client:
        stream = client._transport.stream(WATCH)
        stream.send(streams._create(key))
        assert streams._parse(stream.recv()).created
        for i in range(300):
            client.put(key, b"%d" % i)
        seen = []
        while len(seen) < 300:
            seen += [e.kv.value for e in streams._parse(stream.recv()).events]
        assert seen == [b"%d" % i for i in range(300)]
        # a recv blocked (as the reading thread) is woken by close() from another thread
        threading.Timer(0.2, stream.close).start()
        start = time.monotonic()
        with pytest.raises(errors.CancelledError):
            stream.recv()
        assert time.monotonic() - start < 5
        assert client.get(key).value == b"299"  # the connection is still fine


def test_lease_keepalive_stream(etcd_server) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            transport = client._transport
            grant = rpc_pb2.LeaseGrantResponse.FromString(
                await transport.unary(
                    LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=30).SerializeToString(), 5
                )
            )
            stream = transport.stream(KEEPALIVE)
            for _ in range(3):
                await stream.send(rpc_pb2.LeaseKeepAliveRequest(ID=grant.ID).SerializeToString())
                reply = rpc_pb2.LeaseKeepAliveResponse.FromString(await stream.recv())
                assert reply.ID == grant.ID and reply.TTL > 0
            await stream.done_writing()
            assert await stream.recv() is None

    asyncio.run(body())


# ----------------------------------------------------------------------- proxy failures


@pytest.fixture
def proxy(etcd_server) -> Iterator[TcpProxy]:  # type: ignore[no-untyped-def]
    with TcpProxy.for_endpoint(etcd_server.endpoint) as p:
        yield p


def _get_call(key: bytes) -> tuple[str, bytes]:
    call = _plan.get(key)
    return call.method, call.request


# These drive the transports directly: the clients above them retry reads on UNAVAILABLE.


def test_sync_cut_fails_in_flight_then_reconnects(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    transport = _native.NativeTransport(_config(proxy.endpoint))
    method, request = _get_call(etcd_prefix + b"k")
    try:
        transport.unary(method, request, 5)
        proxy.stall()
        results: list[BaseException] = []

        def call() -> None:
            try:
                transport.unary(method, request, 5)
            except errors.EtcdError as exc:
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        proxy.cut()
        proxy.resume()
        for thread in threads:
            thread.join(10)
        assert len(results) == 4
        assert all(isinstance(r, errors.UnavailableError) for r in results), results
        transport.unary(method, request, 5)
        assert proxy.accepted == 2
    finally:
        transport.close()


def test_async_cut_fails_in_flight_then_reconnects(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    method, request = _get_call(etcd_prefix + b"k")

    async def body() -> None:
        transport = _native.NativeAsyncTransport(_config(proxy.endpoint))
        try:
            await transport.unary(method, request, 5)
            proxy.stall()
            calls = [asyncio.ensure_future(transport.unary(method, request, 5)) for _ in range(10)]
            await asyncio.sleep(0.2)
            await asyncio.get_running_loop().run_in_executor(None, proxy.cut)
            proxy.resume()
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(o, errors.UnavailableError) for o in outcomes), outcomes
            await transport.unary(method, request, 5)
            assert proxy.accepted == 2
        finally:
            await transport.close()

    asyncio.run(body())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stall_hits_the_deadline(proxy: TcpProxy, etcd_prefix: bytes, kind: str) -> None:
    if kind == "sync":
        with fastetcd.Client(proxy.endpoint, transport="native", timeout=0.3) as client:
            client.put(etcd_prefix + b"k", b"1")
            proxy.stall()
            with pytest.raises(errors.DeadlineExceededError):
                client.get(etcd_prefix + b"k")
            proxy.resume()
            assert client.get(etcd_prefix + b"k").value == b"1"
        return

    async def body() -> None:
        async with fastetcd.AsyncClient(proxy.endpoint, transport="native", timeout=0.3) as c:
            await c.put(etcd_prefix + b"k", b"1")
            proxy.stall()
            with pytest.raises(errors.DeadlineExceededError):
                await c.get(etcd_prefix + b"k")
            proxy.resume()
            assert (await c.get(etcd_prefix + b"k")).value == b"1"

    asyncio.run(body())


def test_async_caller_cancellation_resets_only_that_call(etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            key = etcd_prefix + b"c"
            await client.put(key, b"v")
            task = asyncio.ensure_future(client.get(key))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            results = await asyncio.gather(*[client.get(key) for _ in range(50)])
            assert all(r.value == b"v" for r in results)

    asyncio.run(body())


def test_concurrent_threads_share_one_connection(etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    with fastetcd.Client(etcd_server.endpoint, transport="native") as client:
        errors_seen: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(50):
                    key = etcd_prefix + b"%d-%d" % (n, i)
                    client.put(key, b"%d" % i)
                    assert client.get(key).value == b"%d" % i
            except BaseException as exc:
                errors_seen.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors_seen
        assert client.get_prefix(etcd_prefix, count_only=True).count == 800
        assert len(client._transport._conns) == 1


def test_closed_client_raises_cancelled(etcd_server) -> None:  # type: ignore[no-untyped-def]
    client = fastetcd.Client(etcd_server.endpoint, transport="native")
    client.put(b"/native-closed", b"1")
    client.close()
    with pytest.raises(errors.CancelledError):
        client.get(b"/native-closed")


def test_server_pings_are_acked_after_a_hold_while_calls_are_open(etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    """etcd's gRPC server sends a PING (its bandwidth-delay estimate) when requests arrive
    after its last PING was answered. The asyncio connection holds the ack while calls are
    open and sends it ``PING_ACK_HOLD`` later, so the server sends at most about one PING
    per hold while puts stream in, not one per write of requests; every PING is answered."""
    from fastetcd import _h2

    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            await client.put(etcd_prefix + b"warm", b"v")
            (conn,) = client._slot.transport._ready
            core = conn.core
            start = time.monotonic()
            received = core.pings_received

            async def writer(n: int) -> None:
                for i in range(40):
                    await client.put(etcd_prefix + b"p/%d/%d" % (n, i), b"v")

            await asyncio.gather(*[writer(n) for n in range(64)])
            elapsed = time.monotonic() - start
            pings = core.pings_received - received
            assert 1 <= pings <= elapsed / _h2.PING_ACK_HOLD + 3, (pings, elapsed)
            # idle again: the held ack goes out within the hold
            await asyncio.sleep(_h2.PING_ACK_HOLD + 0.1)
            assert not core.ping_held
            assert core.ping_acks_sent == core.pings_received
            assert (await client.get_prefix(etcd_prefix + b"p/", count_only=True)).count == 2560

    asyncio.run(body())
