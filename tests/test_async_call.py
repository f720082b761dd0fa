"""The AsyncClient's unary calls on the native transport are ``AsyncCall`` objects: the
call's HTTP/2 stream, an asyncio future and a coroutine in one, started when the method is
called. These tests hold them to what asyncio expects of futures and coroutines (await,
tasks, gather, wait_for, shield, done-callbacks with their contexts, cancellation), against
a real etcd, on asyncio's own loop and on uvloop, with calls held in flight by a stalled
proxy where a test needs them pending."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import fastetcd
from fastetcd import _native, errors
from fastetcd.testing import TcpProxy

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs fastetcd._h2")

LOOPS = ["asyncio", "uvloop"]


def _run(loop_kind: str, body: Callable[[], Awaitable[Any]]) -> Any:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(body())
    return asyncio.run(body())  # type: ignore[arg-type]


@pytest.fixture
def proxy(etcd_server) -> Iterator[TcpProxy]:  # type: ignore[no-untyped-def]
    with TcpProxy.for_endpoint(etcd_server.endpoint) as p:
        yield p


async def _idle(client: fastetcd.AsyncClient) -> bool:
    """No call is left on any connection of the client's transport (within 2 s: a call
    not awaited may still be on its way back)."""
    for _ in range(200):
        if all(conn.core.active == 0 for conn in client._slot.transport._conns):
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_call_is_a_started_future_and_coroutine(etcd_server, etcd_prefix, loop_kind) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            key = etcd_prefix + b"k"
            await client.put(key, b"v")
            call = client.get(key)
            assert type(call).__name__ == "AsyncCall"
            assert asyncio.isfuture(call) and asyncio.iscoroutine(call)
            assert not call.done() and call.get_loop() is asyncio.get_running_loop()
            with pytest.raises(asyncio.InvalidStateError):
                call.result()
            got = await call
            assert got is not None and got.value == b"v"
            assert call.done() and not call.cancelled() and call.exception() is None
            assert call.result() is got
            assert await call is got  # awaiting a done call again gives its result
            assert call.get_loop() is asyncio.get_running_loop()  # once done too

            # what a Task reads and sets on the future it awaits (answered by the call's
            # own attribute look-up first; every other name goes the generic way)
            pending = client.get(key)
            assert pending._asyncio_future_blocking is False
            pending._asyncio_future_blocking = True
            assert pending._asyncio_future_blocking is True
            pending._asyncio_future_blocking = False
            with pytest.raises(AttributeError):
                pending.no_such_attribute  # noqa: B018
            with pytest.raises(AttributeError):
                pending.no_such_attribute = 1
            assert pending.get_loop() is asyncio.get_running_loop()
            assert (await pending).value == b"v"

            # started at once: a put that is never awaited still happens
            # (a read started after it need not see it: the write is not done yet)
            client.put(etcd_prefix + b"unawaited", b"1")
            for _ in range(100):
                if await client.get(etcd_prefix + b"unawaited") is not None:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the put that was not awaited never happened")
            assert await _idle(client)

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_tasks_gather_wait_for_and_shield(etcd_server, etcd_prefix, loop_kind) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            keys = [etcd_prefix + b"%04d" % i for i in range(300)]
            puts = await asyncio.gather(*[client.put(k, k[-4:]) for k in keys])
            revisions = [p.header.revision for p in puts]
            assert len(set(revisions)) == len(keys)
            gets = await asyncio.gather(*[client.get(k) for k in keys])
            assert [g.value for g in gets] == [k[-4:] for k in keys]  # type: ignore[union-attr]
            task = asyncio.create_task(client.get(keys[0]))
            assert (await task).value == b"0000"  # type: ignore[union-attr]
            assert (await asyncio.wait_for(client.get(keys[1]), 5)).value == b"0001"  # type: ignore[union-attr]
            assert (await asyncio.shield(client.get(keys[2]))).value == b"0002"  # type: ignore[union-attr]
            # asyncio.wait() takes tasks, not coroutines (as for any coroutine)
            refused = client.get(keys[3])
            with pytest.raises(TypeError):
                await asyncio.wait([refused])
            assert (await refused).value == b"0003"  # type: ignore[union-attr]
            tasks = [asyncio.create_task(client.get(k)) for k in keys[3:5]]
            done, _ = await asyncio.wait(tasks)
            assert sorted(t.result().value for t in done) == [b"0003", b"0004"]  # type: ignore[union-attr]
            with pytest.raises(errors.EmptyKeyError):  # refused before any call starts
                client.get(b"")
            assert await _idle(client)

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_server_errors_reach_the_awaiting_task(etcd_server, etcd_prefix, loop_kind) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            head = (await client.put(etcd_prefix + b"k", b"v")).header.revision
            call = client.compact(head + 1000)  # a future revision: etcd refuses it
            with pytest.raises(errors.FutureRevisionError):
                await call
            assert isinstance(call.exception(), errors.FutureRevisionError)
            with pytest.raises(errors.FutureRevisionError):
                call.result()

            async def in_a_task() -> None:
                await client.get(etcd_prefix + b"k", revision=head + 1000)

            with pytest.raises(errors.FutureRevisionError):
                await asyncio.create_task(in_a_task())
            # the same failure, awaited directly by a task of its own
            with pytest.raises(errors.FutureRevisionError):
                await asyncio.create_task(client.compact(head + 1000))
            assert await _idle(client)

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_done_callbacks_get_the_call_in_their_context(etcd_server, etcd_prefix, loop_kind) -> None:  # type: ignore[no-untyped-def]
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            await client.put(etcd_prefix + b"k", b"v")
            seen: list[tuple[str, object, str]] = []
            call = client.get(etcd_prefix + b"k")
            context = contextvars.copy_context()
            context.run(var.set, "theirs")
            call.add_done_callback(lambda c: seen.append(("first", c, var.get())))
            call.add_done_callback(lambda c: seen.append(("second", c, var.get())), context=context)

            def removed(c: object) -> None:
                seen.append(("removed", c, var.get()))

            call.add_done_callback(removed)
            assert call.remove_done_callback(removed) == 1
            # misuse is refused as the method's signature says (fn, *, context=None)
            with pytest.raises(TypeError):
                call.add_done_callback()  # type: ignore[call-arg]
            with pytest.raises(TypeError):
                call.add_done_callback(removed, context)  # type: ignore[misc]
            with pytest.raises(TypeError):
                call.add_done_callback(removed, ctx=context)  # type: ignore[call-arg]
            add = call.add_done_callback  # the attribute is a callable bound to the call
            add(removed, context=None)
            assert call.remove_done_callback(removed) == 1
            value = await call
            await asyncio.sleep(0)
            assert [(name, who is call, v) for name, who, v in seen] == [
                ("first", True, "unset"),
                ("second", True, "theirs"),
            ]
            assert value is not None
            late: list[object] = []
            call.add_done_callback(late.append)  # on a done call: soon, from the loop
            assert late == []
            await asyncio.sleep(0)
            assert late == [call]

            failing = client.compact(10**12)
            errors_seen: list[BaseException | None] = []
            failing.add_done_callback(lambda c: errors_seen.append(c.exception()))
            with pytest.raises(errors.FutureRevisionError):
                await failing
            await asyncio.sleep(0)
            assert len(errors_seen) == 1 and isinstance(errors_seen[0], errors.FutureRevisionError)

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_failure_nobody_reads_is_reported(etcd_server, etcd_prefix, loop_kind) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            await client.get(etcd_prefix + b"k")  # connected: calls are AsyncCalls from now
            read = client.compact(10**12)  # fails, and is read below
            unread = client.compact(10**12)  # fails, and is never read
            for call in (read, unread):
                while not call.done():
                    await asyncio.sleep(0.01)
            assert isinstance(read.exception(), errors.FutureRevisionError)
            del read, call
            gc.collect()
            assert reported == []
            del unread
            gc.collect()
            assert len(reported) == 1
            assert isinstance(reported[0]["exception"], errors.FutureRevisionError)
            assert "exception was never retrieved" in reported[0]["message"]
            ok = client.get(etcd_prefix + b"k")  # a success nobody reads: nothing to report
            await asyncio.sleep(0.1)
            del ok
            gc.collect()
            assert len(reported) == 1

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_closed_clients_connections_go_without_the_gc(
    etcd_server, etcd_prefix, loop_kind
) -> None:  # type: ignore[no-untyped-def]
    """A connection looks up some bound methods once (the loop's call_soon, its own wake
    and flush, the transport's write): it drops them when it is lost, so that a closed
    client's connections, and their buffers, go with their last reference instead of
    waiting in a reference cycle for the garbage collector."""
    connections: list[weakref.ref[Any]] = []

    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint, transport="native") as client:
            key = etcd_prefix + b"k"
            await client.put(key, b"v")
            await asyncio.gather(*[client.get(key) for _ in range(20)])
            ready = client._slot.transport._ready
            assert ready
            connections.extend(weakref.ref(conn) for conn in ready)

    gc.collect()
    gc.disable()
    try:
        _run(loop_kind, body)
        assert len(connections) == 1
        assert [ref() for ref in connections] == [None]
    finally:
        gc.enable()


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_cancelling_calls_in_flight(proxy: TcpProxy, etcd_prefix: bytes, loop_kind: str) -> None:
    async def body() -> None:
        async with fastetcd.AsyncClient(proxy.endpoint, transport="native") as client:
            key = etcd_prefix + b"k"
            await client.put(key, b"v")
            proxy.stall()
            # cancelled directly
            call = client.get(key)
            await asyncio.sleep(0.05)
            assert call.cancel("stop") and call.cancelled() and call.done()
            assert not call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            with pytest.raises(asyncio.CancelledError):
                call.result()
            # a task awaiting it is cancelled
            task = asyncio.create_task(client.get(key))
            awaiting = asyncio.create_task(_await(client.get(key)))
            await asyncio.sleep(0.05)
            task.cancel()
            awaiting.cancel()
            for t in (task, awaiting):
                with pytest.raises(asyncio.CancelledError):
                    await t
            # gather with a cancelled child: its CancelledError, as a result or raised
            kept, dropped = client.get(key), client.get(key)
            both = asyncio.gather(kept, dropped, return_exceptions=True)
            await asyncio.sleep(0.05)
            dropped.cancel("dropped")
            with pytest.raises(asyncio.CancelledError):
                gathered = asyncio.gather(client.get(key), _cancelled_soon(client.get(key)))
                await asyncio.wait_for(gathered, 5)
            # wait_for gives up on it
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get(key), 0.05)
            # calls not cancelled finish once the proxy resumes
            survivor = client.get(key)
            await asyncio.sleep(0.05)
            proxy.resume()
            assert (await survivor).value == b"v"  # type: ignore[union-attr]
            first, second = await asyncio.wait_for(both, 5)
            assert first.value == b"v"  # type: ignore[union-attr]
            assert isinstance(second, asyncio.CancelledError) and second.args == ("dropped",)
            await asyncio.sleep(0.05)
            assert await _idle(client)

    _run(loop_kind, body)


async def _await(call: Awaitable[Any]) -> Any:
    return await call


def _cancelled_soon(call: Any) -> Any:
    asyncio.get_running_loop().call_later(0.05, call.cancel)
    return call


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_deadline_and_retry_after_a_failed_first_attempt(
    proxy: TcpProxy, etcd_prefix: bytes, loop_kind: str
) -> None:
    async def body() -> None:
        async with fastetcd.AsyncClient(proxy.endpoint, transport="native", timeout=5) as client:
            key = etcd_prefix + b"k"
            await client.put(key, b"v")
            proxy.stall()
            call = client.get(key, timeout=0.2)
            with pytest.raises(errors.DeadlineExceededError):
                await call
            # a read whose connection is cut is retried on a new connection
            read = client.get(key)
            await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(None, proxy.cut)
            proxy.resume()
            assert (await read).value == b"v"  # type: ignore[union-attr]
            assert proxy.accepted == 2
            # a write that may have left is not repeated: it fails
            proxy.stall()
            write = client.put(key, b"w")
            await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(None, proxy.cut)
            proxy.resume()
            with pytest.raises(errors.UnavailableError):
                await write

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_deadlines_of_calls_on_one_connection(
    proxy: TcpProxy, etcd_prefix: bytes, loop_kind: str
) -> None:
    """One timer per connection serves the deadlines of its calls: each call still fails
    at its own deadline (not before it, not much after), a shorter timeout started after a
    longer one included, and calls that end in time do not hold the others back."""

    async def body() -> None:
        async with fastetcd.AsyncClient(proxy.endpoint, transport="native", timeout=0.4) as client:
            key = etcd_prefix + b"k"
            await client.put(key, b"v")
            proxy.stall()
            loop = asyncio.get_running_loop()
            calls = [(loop.time(), 1.5, client.get(key, timeout=1.5))]  # the latest, first
            for _ in range(12):  # the client's timeout, started 20 ms apart: earlier ones
                calls.append((loop.time(), 0.4, client.get(key)))
                await asyncio.sleep(0.02)
            calls.append((loop.time(), 0.1, client.get(key, timeout=0.1)))  # the earliest
            ended: list[float] = [0.0] * len(calls)

            async def wait(i: int) -> None:
                with pytest.raises(errors.DeadlineExceededError):
                    await calls[i][2]
                ended[i] = loop.time()

            await asyncio.gather(*[wait(i) for i in range(len(calls))])
            for (started, timeout, _), end in zip(calls, ended):
                assert timeout - 0.01 <= end - started < timeout + 0.5
            proxy.resume()
            assert (await client.get(key)).value == b"v"  # type: ignore[union-attr]
            # calls that end in time, then a stalled one: it still fails at its deadline
            for _ in range(3):
                await asyncio.gather(*[client.get(key) for _ in range(10)])
            proxy.stall()
            started = loop.time()
            with pytest.raises(errors.DeadlineExceededError):
                await client.get(key, timeout=0.3)
            assert 0.29 <= loop.time() - started < 0.8

    _run(loop_kind, body)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_gets_and_puts_written_straight_to_the_connection(
    proxy: TcpProxy, etcd_prefix: bytes, loop_kind: str
) -> None:
    """A connected client's get and put write their requests straight into the
    connection's output (no planned Call): their arguments are checked at the call as the
    planner checks them, a request larger than a frame goes the planned way, and a retried
    one is planned from the checked arguments (coerced key and value, flags, revision)."""
    from fastetcd import _plan

    async def body() -> None:
        async with fastetcd.AsyncClient(proxy.endpoint, transport="native", timeout=5) as client:
            key = etcd_prefix + b"k"
            first = await client.put(key, b"v1")
            call = client.get(key)
            assert type(call).__name__ == "AsyncCall"  # connected: written out at once
            await call
            # the planner's checks and messages
            for bad_call, planned in [
                (lambda: client.put(b"", b"v"), lambda: _plan.put(b"", b"v")),
                (lambda: client.put(key, 5), lambda: _plan.put(key, 5)),  # type: ignore[arg-type]
                (
                    lambda: client.put(key, b"v", lease=-(2**63) - 1),
                    lambda: _plan.put(key, b"v", lease=-(2**63) - 1),
                ),
                (lambda: client.put(key, b"v", timeout=0), lambda: _plan.put(key, b"v", timeout=0)),
                (lambda: client.get(key, revision=-1), lambda: _plan.get(key, revision=-1)),
                (lambda: client.get(1.5), lambda: _plan.get(1.5)),  # type: ignore[arg-type]
            ]:
                with pytest.raises(errors.EtcdError) as expected:
                    planned()
                with pytest.raises(
                    type(expected.value),
                    match=str(expected.value).replace("(", ".").replace(")", "."),
                ):
                    bad_call()
            # larger than a frame: planned, then sent as any planned call
            big = bytes(range(256)) * 300
            assert len(big) > 16384
            await client.put(key + b"-big", bytearray(big))
            assert (await client.get(key + b"-big")).value == big  # type: ignore[union-attr]
            # retried after the connection is cut: planned from the checked arguments
            await client.put(key, b"v2")
            proxy.stall()
            write = client.put(key.decode(), bytearray(b"v3"), prev_kv=True, idempotent=True)
            old = client.get(key, revision=first.header.revision, serializable=True)
            await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(None, proxy.cut)
            proxy.resume()
            written = await write
            assert written.prev_kv is not None and written.prev_kv.value == b"v2"
            assert (await old).value == b"v1"  # type: ignore[union-attr]
            assert (await client.get(key)).value == b"v3"  # type: ignore[union-attr]
            assert proxy.accepted == 2

    _run(loop_kind, body)


def test_a_call_made_outside_the_loop_runs_in_it(etcd_server, etcd_prefix) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    try:

        async def make() -> fastetcd.AsyncClient:
            return fastetcd.AsyncClient(etcd_server.endpoint, transport="native")

        client = loop.run_until_complete(make())
        loop.run_until_complete(client.put(etcd_prefix + b"k", b"v"))  # made before it runs
        got = loop.run_until_complete(client.get(etcd_prefix + b"k"))
        assert got is not None and got.value == b"v"
        loop.run_until_complete(client.close())
    finally:
        loop.close()
