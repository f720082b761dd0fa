"""Watch under faults, against real etcd processes: member restarts (graceful and SIGKILL),
connections cut by a TCP proxy, a stalled connection, compaction during an outage, a member
losing its leader. Each test runs both clients, on each transport under test
(``FASTETCD_TEST_TRANSPORTS``, see conftest.py); the suite runs twice (compiled and pure
watch core). Everything is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import fastetcd
from fastetcd import errors
from fastetcd.testing import EtcdCluster, EtcdServer, TcpProxy

REVISIONS = 10_000
DEADLINE = 120.0  # seconds for the whole sequence test, faults included


def _put_exactly_once(client: fastetcd.Client, key: bytes, value: bytes, stop: float) -> int:
    """Put ``key`` (written by nobody else) and return its revision, across server restarts:
    after a failure whose outcome is unknown, a read says whether the put was applied."""
    error: Exception | None = None
    while time.monotonic() < stop:
        if error is not None:
            try:
                kv = client.get(key)
            except errors.EtcdError:
                time.sleep(0.05)
                continue
            if kv is not None:
                assert kv.value == value and kv.version == 1
                return kv.mod_revision
        try:
            return client.put(key, value).header.revision
        except errors.EtcdError as exc:
            error = exc
            time.sleep(0.02)
    raise AssertionError(f"could not write {key!r} in time (last error: {error})")


class Collector:
    """Revisions a watcher received, with the time it saw the last expected one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.revisions: list[int] = []
        self.keys: list[bytes] = []
        self.error: BaseException | None = None
        self.created = threading.Event()
        self.done = threading.Event()

    def take(self, response: Any, last: Callable[[], int | None]) -> bool:
        """Record a response; True once the last written revision has been seen."""
        for event in response.events:
            self.revisions.append(event.kv.mod_revision)
            self.keys.append(event.kv.key)
        final = last()
        return final is not None and bool(self.revisions) and self.revisions[-1] >= final


def _sync_watcher(
    endpoint: str,
    prefix: bytes,
    start: int,
    out: Collector,
    last: Callable[[], int | None],
    transport: str,
) -> None:
    try:
        with fastetcd.Client(endpoint, timeout=10, transport=transport) as client:
            w = client.watch(prefix, prefix=True, start_revision=start)
            w.wait_created(30)
            out.created.set()
            stop = time.monotonic() + DEADLINE
            while time.monotonic() < stop:
                try:
                    response = w.get(1.0)
                except errors.DeadlineExceededError:
                    response = _EMPTY
                if out.take(response, last):
                    break
            w.cancel()
    except BaseException as exc:  # reported by the test
        out.error = exc
    finally:
        out.created.set()
        out.done.set()


class _Empty:
    events: tuple[Any, ...] = ()


_EMPTY = _Empty()


def _async_watcher(
    endpoint: str,
    prefix: bytes,
    start: int,
    out: Collector,
    last: Callable[[], int | None],
    transport: str,
) -> None:
    async def body() -> None:
        async with fastetcd.AsyncClient(endpoint, timeout=10, transport=transport) as client:
            w = client.watch(prefix, prefix=True, start_revision=start)
            await w.wait_created(30)
            out.created.set()
            stop = time.monotonic() + DEADLINE
            while time.monotonic() < stop:
                try:
                    response = await w.get(1.0)
                except errors.DeadlineExceededError:
                    response = _EMPTY
                if out.take(response, last):
                    break
            w.cancel()

    try:
        asyncio.run(body())
    except BaseException as exc:
        out.error = exc
    finally:
        out.created.set()
        out.done.set()


def test_every_revision_exactly_once_through_restarts_and_cuts(transport: str) -> None:
    """10,000 revisions written while etcd is restarted twice (once gracefully, once killed)
    and the watchers' connections are cut (and stalled) through a TCP proxy: each watcher —
    the blocking and the asyncio client — receives exactly the written revisions, in order."""
    prefix = b"/faults/seq/"
    with (
        EtcdServer(["--unsafe-no-fsync"]) as server,
        TcpProxy.for_endpoint(server.endpoint) as proxy,
    ):
        writer = fastetcd.Client(server.endpoint, timeout=5)
        start = writer.put(b"/faults/start", b"").header.revision + 1
        written: list[int] = []
        final: list[int] = []

        def last() -> int | None:
            return final[0] if final else None

        watchers = [Collector("sync"), Collector("async")]
        threads = [
            threading.Thread(
                target=_sync_watcher,
                args=(proxy.endpoint, prefix, start, watchers[0], last, transport),
            ),
            threading.Thread(
                target=_async_watcher,
                args=(proxy.endpoint, prefix, start, watchers[1], last, transport),
            ),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        for c in watchers:
            assert c.created.wait(30) and c.error is None, (c.name, c.error)

        faults: list[str] = []

        def cut() -> None:
            # Both watchers are connected (one TCP connection per client) before the cut.
            until = time.monotonic() + 20
            while proxy.connections < 2 and time.monotonic() < until:
                time.sleep(0.01)
            faults.append(f"cut {proxy.cut()}")

        def stall() -> None:
            proxy.stall()
            time.sleep(0.3)
            proxy.resume()
            faults.append("stall")

        def restart() -> None:
            server.restart()
            faults.append("restart")

        def crash() -> None:
            server.kill()
            server.start()
            faults.append("kill+start")

        plan: dict[int, Callable[[], None]] = {
            1_000: cut,
            2_500: restart,
            4_000: cut,
            5_000: stall,
            6_000: crash,
            7_500: cut,
            9_000: cut,
        }
        stop = time.monotonic() + DEADLINE
        for i in range(REVISIONS):
            if i in plan:
                plan[i]()
            written.append(_put_exactly_once(writer, prefix + b"%05d" % i, b"%d" % i, stop))
        final.append(written[-1])
        for t in threads:
            t.join(max(1.0, stop - time.monotonic() + 10))
        # The truth, from etcd's own history (read back after the faults, none on this path).
        history = sorted(kv.mod_revision for kv in writer.get_prefix(prefix).kvs)
        writer.close()

    assert faults == ["cut 2", "restart", "cut 2", "stall", "kill+start", "cut 2", "cut 2"]
    assert written == history == list(range(start, start + REVISIONS))
    for c in watchers:
        assert c.error is None, (c.name, c.error)
        assert c.revisions == written, (
            c.name,
            len(c.revisions),
            sorted(set(written) - set(c.revisions))[:10],
            [r for i, r in enumerate(c.revisions) if i and c.revisions[i - 1] >= r][:10],
        )
        assert c.keys == [prefix + b"%05d" % i for i in range(REVISIONS)]


def _outage(proxy: TcpProxy, writer: fastetcd.Client, key: bytes) -> int:
    """Cut the watchers off (no new connections either), write and compact meanwhile, then
    let them reconnect; return the compact revision."""
    proxy.reject()
    proxy.cut()
    for value in (b"b", b"c", b"d"):
        last = writer.put(key, value).header.revision
    writer.compact(last)
    proxy.reject(False)
    return last


def _compacted_sync(
    proxy: TcpProxy, writer: fastetcd.Client, key: bytes, first: int, transport: str
) -> None:
    with fastetcd.Client(proxy.endpoint, timeout=10, transport=transport) as client:
        w = client.watch(key, start_revision=first)
        assert w.get(10).created
        assert [e.kv.mod_revision for e in w.get(10).events] == [first]
        compacted = _outage(proxy, writer, key)
        with pytest.raises(errors.CompactedError) as info:
            w.get(20)
        assert info.value.compact_revision == compacted


async def _compacted_async(
    proxy: TcpProxy, writer: fastetcd.Client, key: bytes, first: int, transport: str
) -> None:
    async with fastetcd.AsyncClient(proxy.endpoint, timeout=10, transport=transport) as client:
        w = client.watch(key, start_revision=first)
        assert (await w.get(10)).created
        assert [e.kv.mod_revision for e in (await w.get(10)).events] == [first]
        loop = asyncio.get_running_loop()
        compacted = await loop.run_in_executor(None, _outage, proxy, writer, key)
        with pytest.raises(errors.CompactedError) as info:
            await w.get(20)
        assert info.value.compact_revision == compacted


def test_resume_point_compacted_during_an_outage(transport: str) -> None:
    """A watch that cannot reconnect while its next revision is compacted away ends with
    CompactedError carrying the compact revision, after every event received before."""
    with EtcdServer() as server, TcpProxy.for_endpoint(server.endpoint) as proxy:
        with fastetcd.Client(server.endpoint, timeout=5) as writer:
            key = b"/faults/compact"
            first = writer.put(key, b"a").header.revision
            _compacted_sync(proxy, writer, key, first, transport)
            first = writer.put(key, b"a").header.revision
            asyncio.run(_compacted_async(proxy, writer, key, first, transport))


@pytest.mark.parametrize("flag_on", ["watch", "client"])
def test_require_leader(transport: str, flag_on: str) -> None:
    """On a member that lost its leader, a require_leader watch ends with NoLeaderError (and a
    new one is refused), while a plain watch waits and goes on once the leader is back.
    ``flag_on="watch"``: the flag is given to the watch; ``"client"``: the client is made with
    require_leader=True, its watches opened without the flag follow it, and the plain one is
    opened with an explicit require_leader=False."""
    args = ["--heartbeat-interval=50", "--election-timeout=500"]
    by_client = flag_on == "client"
    client_kw: dict[str, Any] = {"require_leader": True} if by_client else {}
    leader_kw: dict[str, Any] = {} if by_client else {"require_leader": True}
    plain_kw: dict[str, Any] = {"require_leader": False} if by_client else {}
    with EtcdCluster(3, args) as cluster:
        survivor = 0
        endpoint = cluster.members[survivor].endpoint
        writer = fastetcd.Client(endpoint, timeout=10)
        client = fastetcd.Client(endpoint, timeout=10, transport=transport, **client_kw)
        aclient_box: list[Any] = []
        loop = asyncio.new_event_loop()

        def run(coro: Any) -> Any:
            return loop.run_until_complete(asyncio.wait_for(coro, 30))

        async def make() -> Any:
            aclient_box.append(
                fastetcd.AsyncClient(endpoint, timeout=10, transport=transport, **client_kw)
            )
            ac = aclient_box[0]
            return ac.watch(b"L", **leader_kw), ac.watch(b"P", **plain_kw)

        leader_w = client.watch(b"L", **leader_kw)
        plain_w = client.watch(b"P", **plain_kw)
        aleader_w, aplain_w = run(make())
        for w in (leader_w, plain_w):
            w.wait_created(10)
            assert w.get(10).created
        for aw in (aleader_w, aplain_w):
            run(aw.wait_created(10))
            assert run(aw.get(10)).created

        for i in range(3):
            if i != survivor:
                cluster.kill(i)
        t0 = time.monotonic()
        with pytest.raises(errors.NoLeaderError):
            leader_w.get(30)
        with pytest.raises(errors.NoLeaderError):
            run(aleader_w.get(30))
        assert time.monotonic() - t0 < 30
        with pytest.raises(errors.NoLeaderError):  # refused at creation while leaderless
            with client.watch(b"L2", **leader_kw):
                pass

        async def refused() -> None:
            async with aclient_box[0].watch(b"L2", **leader_kw):
                pass

        with pytest.raises(errors.NoLeaderError):
            run(refused())
        with pytest.raises(errors.DeadlineExceededError):  # the plain watch just waits
            plain_w.get(0.5)
        with pytest.raises(errors.DeadlineExceededError):
            run(aplain_w.get(0.5))

        for i in range(3):
            if i != survivor:
                cluster.start(i)
        cluster.wait_for_leader(30)
        rev = writer.put(b"P", b"back").header.revision
        got = [e.kv.mod_revision for e in plain_w.get(20).events]
        while not got:
            got = [e.kv.mod_revision for e in plain_w.get(20).events]
        assert got == [rev]
        agot: list[int] = []
        while not agot:
            agot = [e.kv.mod_revision for e in run(aplain_w.get(20)).events]
        assert agot == [rev]
        plain_w.cancel()
        aplain_w.cancel()
        run(aclient_box[0].close())
        loop.close()
        client.close()
        writer.close()
