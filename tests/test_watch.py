"""Watch against a real etcd, through both clients (every test body runs on ``Client`` and on
``AsyncClient``) and, as the whole suite runs twice, on both watch cores.

Every wait is bounded (``WAIT`` seconds at most); the faults (restarts, cuts, compaction
during an outage, lost leader) are in ``test_watch_faults.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fastetcd
from fastetcd import errors, watch
from fastetcd.testing import EtcdServer
from fastetcd.txn import Put
from fastetcd.watch import EventType, WatchFilter

WAIT = 20.0  # seconds: the longest any single wait in these tests may take


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- one interface
# Tests drive both clients through these blocking adapters; the asyncio one runs each call to
# completion on a private loop (the watch's reader task runs while the test waits in a call).


class SyncHandle:
    def __init__(self, w: Any) -> None:
        self.w = w

    def get(self, timeout: float | None = WAIT) -> Any:
        return self.w.get(timeout)

    def wait_created(self, timeout: float = WAIT) -> None:
        self.w.wait_created(timeout)

    def cancel(self) -> None:
        self.w.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.w, name)


class AsyncHandle:
    def __init__(self, run: Callable[[Any], Any], w: Any) -> None:
        self.run = run
        self.w = w

    def get(self, timeout: float | None = WAIT) -> Any:
        return self.run(self.w.get(timeout))

    def wait_created(self, timeout: float = WAIT) -> None:
        self.run(self.w.wait_created(timeout))

    def cancel(self) -> None:
        self.w.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.w, name)


class SyncSide:
    kind = "sync"

    def __init__(self, endpoint: str, **kw: Any) -> None:
        self.client = fastetcd.Client(endpoint, **kw)

    def watch(self, key: Any, **kw: Any) -> SyncHandle:
        return SyncHandle(self.client.watch(key, **kw))

    def call(self, name: str, *args: Any, **kw: Any) -> Any:
        return getattr(self.client, name)(*args, **kw)

    def handle(self, w: Any) -> SyncHandle:
        return SyncHandle(w)

    def close(self) -> None:
        self.client.close()


class AsyncSide:
    kind = "async"

    def __init__(self, endpoint: str, **kw: Any) -> None:
        self.loop = _new_loop()

        async def make() -> fastetcd.AsyncClient:
            return fastetcd.AsyncClient(endpoint, **kw)

        self.client = self.run(make())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, WAIT + 5))

    def watch(self, key: Any, **kw: Any) -> AsyncHandle:
        async def make() -> Any:
            return self.client.watch(key, **kw)

        return AsyncHandle(self.run, self.run(make()))

    def call(self, name: str, *args: Any, **kw: Any) -> Any:
        async def invoke() -> Any:  # on the loop: some methods need it running
            result = getattr(self.client, name)(*args, **kw)
            return (await result) if asyncio.iscoroutine(result) else result

        return self.run(invoke())

    def handle(self, w: Any) -> AsyncHandle:
        return AsyncHandle(self.run, w)

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


Side = Any  # SyncSide | AsyncSide


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest, etcd_server: EtcdServer, transport: str) -> Iterator[Side]:
    """The blocking or the asyncio client, on each transport under test (conftest.py)."""
    cls = SyncSide if request.param == "sync" else AsyncSide
    s: Side = cls(etcd_server.endpoint, timeout=10, transport=transport)
    yield s
    s.close()


@pytest.fixture
def writer(etcd_server: EtcdServer) -> Iterator[fastetcd.Client]:
    with fastetcd.Client(etcd_server.endpoint, timeout=10) as client:
        yield client


def events_of(w: Any, count: int, timeout: float = WAIT, prefix: bytes = b"") -> list[Any]:
    """The next ``count`` events of ``w`` (created and progress responses skipped) on keys
    under ``prefix`` (for a watch reaching past the test's keys: see ``stray_responses``)."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        response = w.get(max(0.01, deadline - time.monotonic()))
        assert response is not None, "the watch ended"
        out += [e for e in response.events if e.kv.key.startswith(prefix)]
    assert len(out) == count, [e.kv.mod_revision for e in out]
    return out


def stray_responses(w: Any, prefix: bytes, wait: float = 0.3) -> list[Any]:
    """What ``w`` delivers within ``wait`` seconds that concerns the test: responses without
    events, the end of the watch (None), or events on keys under ``prefix`` (``b""``: on any
    key). (A watch whose range reaches past the test's prefix also sees the rest of the shared
    server's keyspace, e.g. what other tests' clients still write.)"""
    deadline = time.monotonic() + wait
    seen: list[Any] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            response = w.get(left)
        except errors.DeadlineExceededError:
            break
        if response is None or not response.events:
            seen.append(response)
        elif any(e.kv.key.startswith(prefix) for e in response.events):
            seen.append(response)
    return seen


# --------------------------------------------------------------------------- basics


def test_created_then_events(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"k"
    w = side.watch(key)
    w.wait_created()
    created = w.get()
    assert created.created and not created.events and created.watch_id >= 0
    assert created.header.revision > 0 and created.header.cluster_id != 0
    assert w.next_revision == created.header.revision + 1
    r1 = writer.put(key, b"one").header.revision
    r2 = writer.put(key, b"two").header.revision
    writer.put(etcd_prefix + b"other", b"x")
    r3 = writer.delete(key).header.revision
    evs = events_of(w, 3)
    assert [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in evs] == [
        (EventType.PUT, key, b"one", r1),
        (EventType.PUT, key, b"two", r2),
        (EventType.DELETE, key, b"", r3),
    ]
    assert isinstance(evs[0].type, EventType) and evs[0].type.name == "PUT"
    assert (evs[0].kv.version, evs[1].kv.version, evs[1].kv.create_revision) == (1, 2, r1)
    assert evs[0].prev_kv is None
    assert type(evs[0].kv) is fastetcd.KeyValue  # the same class as get() returns
    assert w.next_revision == r3 + 1
    w.cancel()
    assert w.get() is None and w.done


def test_prefix_range_and_from_key(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    p = etcd_prefix
    by_prefix = side.watch(p + b"a/", prefix=True)
    by_range = side.watch(p + b"b", range_end=p + b"d")
    from_key = side.watch(p + b"c", range_end=b"\x00")
    for w in (by_prefix, by_range, from_key):
        w.wait_created()
    for k in (b"a/1", b"a", b"b", b"bz", b"c", b"d", b"zz"):
        writer.put(p + k, b"v")
    assert [e.kv.key for e in events_of(by_prefix, 1)] == [p + b"a/1"]
    assert [e.kv.key for e in events_of(by_range, 3)] == [p + b"b", p + b"bz", p + b"c"]
    assert [e.kv.key for e in events_of(from_key, 3, prefix=p)] == [p + b"c", p + b"d", p + b"zz"]
    for w in (by_prefix, by_range, from_key):
        assert stray_responses(w, p, 0.2) == []
        w.cancel()


def test_start_revision_replays_history(
    side: Side, writer: fastetcd.Client, etcd_prefix: bytes
) -> None:
    revs = [writer.put(etcd_prefix + b"h%d" % i, b"%d" % i).header.revision for i in range(20)]
    w = side.watch(etcd_prefix, prefix=True, start_revision=revs[5])
    assert w.get().created
    assert w.next_revision == revs[5]  # created from a given revision: the resume point stays
    got = events_of(w, 15)
    assert [e.kv.mod_revision for e in got] == revs[5:]
    assert [e.kv.value for e in got] == [b"%d" % i for i in range(5, 20)]
    w.cancel()


def test_prev_kv(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"p"
    writer.put(key, b"old")
    w = side.watch(key, prev_kv=True)
    w.wait_created()
    writer.put(key, b"new")
    writer.delete(key)
    put, delete = events_of(w, 2)
    assert put.prev_kv.value == b"old" and put.kv.value == b"new"
    assert delete.prev_kv.value == b"new" and delete.type == EventType.DELETE
    w.cancel()


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ([WatchFilter.NOPUT], [EventType.DELETE]),
        (["nodelete"], [EventType.PUT, EventType.PUT]),
        ((0, "NODELETE"), []),
    ],
)
def test_filters(
    side: Side, writer: fastetcd.Client, etcd_prefix: bytes, filters: Any, kept: list[Any]
) -> None:
    key = etcd_prefix + b"f"
    w = side.watch(key, filters=filters)
    assert w.get().created
    writer.put(key, b"1")
    writer.put(key, b"2")
    writer.delete(key)
    if kept:
        assert [e.type for e in events_of(w, len(kept))] == kept
    assert stray_responses(w, b"") == []
    w.cancel()


def test_bad_arguments(side: Side) -> None:
    with pytest.raises(errors.EmptyKeyError):
        side.watch(b"")
    with pytest.raises(errors.InvalidArgumentError):
        side.watch(b"k", prefix=True, range_end=b"z")
    with pytest.raises(errors.InvalidArgumentError):
        side.watch(b"k", start_revision=-1)
    with pytest.raises(errors.ArgumentTypeError):
        side.watch(b"k", start_revision="1")
    for bad in (["noput", "sometimes"], [2], "noput", 5):
        with pytest.raises(errors.InvalidArgumentError):
            side.watch(b"k", filters=bad)
    with pytest.raises(errors.ArgumentTypeError):
        side.watch(12)
    with pytest.raises(errors.InvalidArgumentError):
        side.call("watch_once", b"k", timeout=0)


def test_whole_keyspace_and_str_keys(
    side: Side, writer: fastetcd.Client, etcd_prefix: bytes
) -> None:
    w = side.watch("", prefix=True)  # every key
    w.wait_created()
    key = etcd_prefix.decode() + "é"
    writer.put(key, "v")
    [ev] = events_of(w, 1, prefix=etcd_prefix)
    assert ev.kv.key == key.encode()
    w.cancel()


# --------------------------------------------------------------------------- streams


def test_watches_share_one_stream(
    side: Side, writer: fastetcd.Client, etcd_prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = side.client._transport
    opened: list[Any] = []
    real = transport.stream

    def counting(method: str, metadata: Any = None) -> Any:
        opened.append((method, metadata))
        return real(method, metadata)

    monkeypatch.setattr(transport, "stream", counting)
    ws = [side.watch(etcd_prefix + b"%02d" % i) for i in range(25)]
    leader = side.watch(etcd_prefix + b"L", require_leader=True)
    for w in ws + [leader]:
        w.wait_created()
    assert len({w.watch_id for w in ws}) == 25
    assert sorted(m for _, m in opened if m is None) == [None]  # one plain stream
    assert [m for _, m in opened if m] == [(("hasleader", "true"),)]  # one require-leader stream
    for i in reversed(range(25)):
        writer.put(etcd_prefix + b"%02d" % i, b"%d" % i)
    writer.put(etcd_prefix + b"L", b"l")
    for i, w in enumerate(ws):
        assert [e.kv.value for e in events_of(w, 1)] == [b"%d" % i]
    assert [e.kv.value for e in events_of(leader, 1)] == [b"l"]
    for w in ws + [leader]:
        w.cancel()
    # Both streams are closed when their last watch ends, and opened again for a new one.
    streams = side.client._watch_streams
    deadline = time.monotonic() + WAIT
    while any(s._stream is not None for s in streams.values()):
        assert time.monotonic() < deadline
        if side.kind == "async":
            side.run(asyncio.sleep(0.02))
        else:
            time.sleep(0.02)
    again = side.watch(etcd_prefix + b"again")
    again.wait_created()
    assert len(opened) == 3
    again.cancel()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_client_require_leader_is_the_watches_default(
    kind: str,
    etcd_server: EtcdServer,
    transport: str,
    writer: fastetcd.Client,
    etcd_prefix: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client made with require_leader=True puts a watch opened without the flag on its
    "has leader" stream; an explicit require_leader=False goes on a plain stream (and an
    explicit True on the "has leader" one, shared with the default)."""
    cls = SyncSide if kind == "sync" else AsyncSide
    s: Side = cls(etcd_server.endpoint, timeout=10, transport=transport, require_leader=True)
    try:
        transport_obj = s.client._transport
        opened: list[Any] = []
        real = transport_obj.stream

        def counting(method: str, metadata: Any = None) -> Any:
            opened.append(metadata)
            return real(method, metadata)

        monkeypatch.setattr(transport_obj, "stream", counting)
        default = s.watch(etcd_prefix + b"D")
        default.wait_created()
        assert opened == [(("hasleader", "true"),)]
        explicit = s.watch(etcd_prefix + b"E", require_leader=True)
        plain = s.watch(etcd_prefix + b"P", require_leader=False)
        explicit.wait_created()
        plain.wait_created()
        assert sorted(opened, key=repr) == [(("hasleader", "true"),), None]
        streams = s.client._watch_streams
        assert set(streams) == {False, True}
        assert streams[True]._core.active == 2 and streams[False]._core.active == 1
        for name in (b"D", b"E", b"P"):
            writer.put(etcd_prefix + name, name.lower())
        for w, name in ((default, b"d"), (explicit, b"e"), (plain, b"p")):
            assert [e.kv.value for e in events_of(w, 1)] == [name]
        for w in (default, explicit, plain):
            w.cancel()
        # watch_once follows the client's flag too.
        rev = writer.put(etcd_prefix + b"O", b"0").header.revision
        event = s.call("watch_once", etcd_prefix + b"O", start_revision=rev, timeout=WAIT)
        assert event.kv.mod_revision == rev
        assert all(m == (("hasleader", "true"),) for m in opened[2:])
    finally:
        s.close()
    # A client without the flag keeps every watch on a plain stream unless asked.
    s = cls(etcd_server.endpoint, timeout=10, transport=transport)
    try:
        w = s.watch(etcd_prefix + b"N")
        w.wait_created()
        assert set(s.client._watch_streams) == {False}
        w.cancel()
    finally:
        s.close()


def test_request_progress(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    # b starts in the past, but after anything other tests may have compacted on this server
    start = writer.put(etcd_prefix + b"start", b"1").header.revision
    a = side.watch(etcd_prefix + b"a")
    b = side.watch(etcd_prefix + b"b", start_revision=start)
    a.wait_created()
    b.wait_created()
    a.get()
    b.get()
    side.call("request_progress")
    pa, pb = a.get(), b.get()
    for p in (pa, pb):
        assert p.is_progress_notify and not p.events and p.header.revision > 0
    before = b.next_revision
    assert before <= pb.header.revision  # a stream-wide progress does not move the resume point
    a.cancel()
    b.cancel()
    side.call("request_progress")  # nothing is watched: nothing happens


def test_progress_notify() -> None:
    """With a short progress interval, an idle watch gets progress notifications that move its
    resume point."""
    args = ["--experimental-watch-progress-notify-interval=300ms"]
    with EtcdServer(args) as server:
        for cls in (SyncSide, AsyncSide):
            s = cls(server.endpoint)
            try:
                rev = s.call("put", b"other", b"1")
                rev = rev.header.revision
                w = s.watch(b"idle", progress_notify=True)
                assert w.get().created
                p = w.get(5.0)
                assert p.is_progress_notify and p.header.revision >= rev
                assert w.next_revision == p.header.revision + 1
                w.cancel()
            finally:
                s.close()


def test_compacted_start_revision(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"c"
    first = writer.put(key, b"1").header.revision
    last = writer.put(key, b"2").header.revision
    writer.compact(last)
    w = side.watch(key, start_revision=first)
    with pytest.raises(errors.CompactedError) as info:
        while True:
            w.get()
    assert info.value.compact_revision == last
    assert w.done
    with pytest.raises(errors.CompactedError):  # it stays ended
        w.get()
    ok = side.watch(key, start_revision=last)
    assert [e.kv.value for e in events_of(ok, 1)] == [b"2"]
    ok.cancel()


# --------------------------------------------------------------------------- big responses


def _write_txns(writer: fastetcd.Client, prefix: bytes, count: int) -> list[int]:
    value = bytes(range(256)) * 4  # 1 KiB
    revs = []
    for t in range(count):
        ops = [Put(prefix + b"%04d/%03d" % (t, i), value) for i in range(100)]
        revs.append(writer.txn([], ops, []).header.revision)
    return revs


@pytest.fixture(scope="module")
def txn_history(etcd_server: EtcdServer) -> tuple[bytes, list[int]]:
    """120 revisions, each a txn of 100 keys with 1 KiB values (~12.5 MB of history)."""
    prefix = b"/t/watch-txn-history/"
    with fastetcd.Client(etcd_server.endpoint, timeout=30) as writer:
        return prefix, _write_txns(writer, prefix, 120)


@pytest.mark.parametrize("fragment", [False, True], ids=["whole", "fragments"])
def test_far_behind_watcher_gets_every_event(
    side: Side, txn_history: tuple[bytes, list[int]], fragment: bool
) -> None:
    """A watcher starting far behind is caught up with responses of up to 1,000 revisions:
    here ~12 MB, beyond gRPC's 4 MiB default; with fragment=True etcd splits them at its
    --max-request-bytes (1.5 MiB) and the client joins them."""
    prefix, revs = txn_history
    w = side.watch(prefix, prefix=True, start_revision=revs[0], fragment=fragment)
    assert w.get().created
    got: list[tuple[int, bytes]] = []
    biggest = 0
    deadline = time.monotonic() + 60
    while len(got) < 12_000:
        response = w.get(max(0.01, deadline - time.monotonic()))
        size = sum(len(e.kv.key) + len(e.kv.value) for e in response.events)
        biggest = max(biggest, size)
        got += [(e.kv.mod_revision, e.kv.key) for e in response.events]
    expected = [
        (rev, prefix + b"%04d/%03d" % (t, i)) for t, rev in enumerate(revs) for i in range(100)
    ]
    assert got == expected
    assert biggest > 4 * 1024 * 1024
    assert w.next_revision == revs[-1] + 1
    fragments = w.w._watcher.fragments
    assert (fragments > 2) if fragment else (fragments == 0)
    w.cancel()


# --------------------------------------------------------------------------- consumers


def test_watch_once(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"once"
    rev = writer.put(key, b"before").header.revision
    ev = side.call("watch_once", key, start_revision=rev)
    assert (ev.kv.value, ev.kv.mod_revision) == (b"before", rev)
    threading.Timer(0.3, writer.put, (key, b"later")).start()
    ev = side.call("watch_once", key, timeout=WAIT)
    assert ev.kv.value == b"later"
    t0 = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError):
        side.call("watch_once", etcd_prefix + b"never", timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert all(not s._core.active for s in side.client._watch_streams.values())


def test_context_manager_and_iteration(
    writer: fastetcd.Client, etcd_server: EtcdServer, etcd_prefix: bytes
) -> None:
    key = etcd_prefix + b"cm"
    with fastetcd.Client(etcd_server.endpoint, timeout=10) as client:
        with client.watch(key) as w:
            assert w.watch_id >= 0  # created on entry
            writer.put(key, b"1")
            writer.put(key, b"2")
            values = []
            for response in w:
                values += [e.kv.value for e in response.events]
                if len(values) == 2:
                    break
            assert values == [b"1", b"2"]
            writer.put(key, b"3")
            assert next(w.events()).kv.value == b"3"
            writer.put(key, b"4")
            writer.put(key, b"5")
            events = w.events()
            assert iter(events) is events
            assert [next(events).kv.value for _ in range(2)] == [b"4", b"5"]
        assert w.done and list(w) == [] and list(w.events()) == []

    async def body() -> list[bytes]:
        async with fastetcd.AsyncClient(etcd_server.endpoint, timeout=10) as client:
            async with client.watch(key) as w:
                writer.put(key, b"6")
                got = []
                async for event in w.events():
                    got.append(event.kv.value)
                    break
            assert w.done
            return got

    assert asyncio.run(body()) == [b"6"]


def test_callbacks(side: Side, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"cb"
    seen: list[Any] = []
    ended: list[Any] = []
    done = threading.Event()

    def callback(response: Any) -> None:
        seen.extend(e.kv.value for e in response.events)
        if len(seen) == 3:
            done.set()

    w = side.handle(side.call("add_watch_callback", key, callback, on_error=ended.append))
    t0 = time.monotonic()
    w.wait_created()  # while the callback's consumer waits on the same watch
    assert time.monotonic() - t0 < 5
    for v in (b"a", b"b", b"c"):
        writer.put(key, v)
    if side.kind == "async":  # the callback task runs while the loop does
        side.run(_wait_event_async(done))
    assert done.wait(WAIT)
    assert seen == [b"a", b"b", b"c"] and not ended
    w.cancel()
    # A watch that ends with an error reports it to on_error.
    last = writer.put(key, b"d").header.revision
    writer.compact(last)
    side.call("add_watch_callback", key, callback, start_revision=last - 1, on_error=ended.append)
    deadline = time.monotonic() + WAIT
    while not ended and time.monotonic() < deadline:
        if side.kind == "async":
            side.run(asyncio.sleep(0.02))
        else:
            time.sleep(0.02)
    assert isinstance(ended[0], errors.CompactedError)
    with pytest.raises(errors.InvalidArgumentError):
        side.call("add_watch_callback", key, "not callable")


async def _wait_event_async(event: threading.Event) -> None:
    deadline = time.monotonic() + WAIT
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_slow_consumer_pauses_reading(
    side: Side, writer: fastetcd.Client, etcd_prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a small buffer, a consumer that does not read makes the client stop reading: the
    buffer stays bounded, and every event still arrives, in order, once it reads again."""
    monkeypatch.setattr(watch, "MAX_BUFFERED_BYTES", 64 * 1024)
    side.client.__dict__.pop("_watch_streams", None)
    slow = side.watch(etcd_prefix, prefix=True)
    slow.wait_created()
    core = side.client._watch_streams[False]._core
    revs = _write_txns(writer, etcd_prefix + b"bp/", 8)  # 8 x 100 KiB
    deadline = time.monotonic() + WAIT
    while not core.paused:
        assert time.monotonic() < deadline
        if side.kind == "async":
            side.run(asyncio.sleep(0.02))
        else:
            time.sleep(0.02)
    time.sleep(0.3)
    if side.kind == "async":
        side.run(asyncio.sleep(0.3))
    buffered = slow.w._watcher.buffered_bytes
    assert core.paused and buffered < 64 * 1024 + 300 * 1024  # the limit plus one response
    got = [e.kv.mod_revision for e in events_of(slow, 800)]
    assert got == [r for r in revs for _ in range(100)]
    assert not core.paused
    slow.cancel()


def test_several_threads_consume_one_watch(
    etcd_server: EtcdServer, writer: fastetcd.Client, etcd_prefix: bytes, transport: str
) -> None:
    """Consumers of one Watch in several threads each get their own wake-ups: every response
    goes to exactly one of them."""
    with fastetcd.Client(etcd_server.endpoint, timeout=10, transport=transport) as client:
        w = client.watch(etcd_prefix, prefix=True)
        w.wait_created(WAIT)
        got: list[list[int]] = [[], [], []]

        def consume(out: list[int]) -> None:
            try:
                while True:
                    response = w.get(WAIT)
                    if response is None:
                        return
                    out += [e.kv.mod_revision for e in response.events]
            except errors.DeadlineExceededError:
                out.append(-1)

        threads = [threading.Thread(target=consume, args=(g,)) for g in got]
        for t in threads:
            t.start()
        revs = [writer.put(etcd_prefix + b"%d" % i, b"x").header.revision for i in range(60)]
        deadline = time.monotonic() + WAIT
        while sum(map(len, got)) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        w.cancel()
        for t in threads:
            t.join(WAIT)
        assert sorted(r for g in got for r in g) == revs
        assert all(g == sorted(g) for g in got)


def test_watches_of_one_client_consumed_by_their_own_threads(
    etcd_server: EtcdServer, writer: fastetcd.Client, etcd_prefix: bytes, transport: str
) -> None:
    """Several watches on one stream, each consumed by its own thread (on the native transport
    whichever consumer waits reads the stream for all, and hands reading on when it leaves):
    each gets exactly its own revisions, in order, with no consumer left waiting."""
    with fastetcd.Client(etcd_server.endpoint, timeout=10, transport=transport) as client:
        ws = [client.watch(etcd_prefix + b"%d/" % i, prefix=True) for i in range(5)]
        for w in ws:
            w.wait_created(WAIT)
        got: list[list[int]] = [[] for _ in ws]
        errors_seen: list[BaseException] = []

        def consume(w: Any, out: list[int]) -> None:
            try:
                while len(out) < 40:
                    response = w.get(WAIT)
                    if response is None:
                        return
                    out += [e.kv.mod_revision for e in response.events]
                    time.sleep(0.001 * (len(out) % 3))  # consumers at different paces
            except BaseException as exc:
                errors_seen.append(exc)

        threads = [threading.Thread(target=consume, args=(w, g)) for w, g in zip(ws, got)]
        for t in threads:
            t.start()
        revs: list[list[int]] = [[] for _ in ws]
        for n in range(40):
            for i in range(len(ws)):
                revs[i].append(writer.put(etcd_prefix + b"%d/%d" % (i, n), b"x").header.revision)
        for t in threads:
            t.join(WAIT * 2)
        assert not errors_seen
        assert got == revs
        for w in ws:
            w.cancel()


def test_cancel_from_another_thread_ends_a_waiting_consumer(
    etcd_server: EtcdServer, etcd_prefix: bytes, transport: str
) -> None:
    """A consumer waiting for a quiet watch (reading the stream itself, on the native transport)
    sees the end promptly when another thread cancels its watch, while another watch keeps the
    stream open."""
    with fastetcd.Client(etcd_server.endpoint, timeout=10, transport=transport) as client:
        other = client.watch(etcd_prefix + b"other")
        w = client.watch(etcd_prefix + b"quiet")
        other.wait_created(WAIT)
        w.wait_created(WAIT)
        assert w.get(WAIT).created
        ended: list[Any] = []
        t = threading.Thread(target=lambda: ended.append(w.get(None)))
        t.start()
        time.sleep(0.3)  # the consumer is waiting (or reading) by now
        t0 = time.monotonic()
        w.cancel()
        t.join(WAIT)
        assert ended == [None]
        assert time.monotonic() - t0 < 5
        assert other.get(WAIT).created
        other.cancel()


def test_interrupted_read_resumes_without_loss(
    etcd_server: EtcdServer,
    writer: fastetcd.Client,
    etcd_prefix: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer interrupted (KeyboardInterrupt) while it reads the native stream for its
    watch: what it had taken off the stream is given up with the stream, and the watch
    resumes after what it delivered: every revision still arrives once, in order."""
    from fastetcd import _native

    if not _native.available():
        pytest.skip("needs the native transport")
    real = _native.NativeStream.recv_many
    armed = [False]

    def flaky(self: Any, max_bytes: int, deadline: float | None = None) -> Any:
        batch = real(self, max_bytes, deadline)
        if armed[0] and batch and threading.current_thread() is threading.main_thread():
            armed[0] = False
            raise KeyboardInterrupt  # the batch just read is lost
        return batch

    monkeypatch.setattr(_native.NativeStream, "recv_many", flaky)
    with fastetcd.Client(etcd_server.endpoint, timeout=10, transport="native") as client:
        w = client.watch(etcd_prefix, prefix=True)
        w.wait_created(WAIT)
        assert w.get(WAIT).created
        revs = [writer.put(etcd_prefix + b"%d" % i, b"x").header.revision for i in range(5)]
        got = [e.kv.mod_revision for e in events_of(w, 5)]
        armed[0] = True
        more: list[int] = []

        def write_more() -> None:
            more.extend(writer.put(etcd_prefix + b"%d" % i, b"y").header.revision for i in range(5))

        threading.Timer(0.2, write_more).start()  # while this thread waits in get()
        deadline = time.monotonic() + WAIT
        interrupted = 0
        while len(got) < 10 and time.monotonic() < deadline:
            try:
                response = w.get(WAIT)
            except KeyboardInterrupt:
                interrupted += 1
                continue
            got += [e.kv.mod_revision for e in response.events]
        assert interrupted == 1
        assert got == revs + more
        w.cancel()


def test_abandoned_watch_is_canceled(side: Side, etcd_prefix: bytes) -> None:
    w = side.watch(etcd_prefix + b"gc")
    w.wait_created()
    stream = side.client._watch_streams[False]
    assert stream._core.active == 1
    del w
    gc.collect()
    deadline = time.monotonic() + WAIT
    while stream._core.active:
        assert time.monotonic() < deadline
        if side.kind == "async":
            side.run(asyncio.sleep(0.02))
        else:
            time.sleep(0.02)


def test_closing_the_client_ends_watches(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    client = fastetcd.Client(etcd_server.endpoint, timeout=10)
    w = client.watch(etcd_prefix)
    w.wait_created(WAIT)
    w.get(WAIT)
    client.close()
    with pytest.raises(errors.CancelledError):
        w.get(WAIT)
    late = client.watch(etcd_prefix)  # a watch on a closed client ends at once
    with pytest.raises(errors.CancelledError):
        late.get(WAIT)

    async def body() -> None:
        client = fastetcd.AsyncClient(etcd_server.endpoint, timeout=10)
        w = client.watch(etcd_prefix)
        await w.wait_created(WAIT)
        await client.close()
        with pytest.raises(errors.CancelledError):
            while True:
                await w.get(WAIT)

    asyncio.run(body())


def test_async_watch_needs_a_running_loop(etcd_server: EtcdServer) -> None:
    async def make() -> fastetcd.AsyncClient:
        return fastetcd.AsyncClient(etcd_server.endpoint)

    loop = _new_loop()
    client = loop.run_until_complete(make())
    with pytest.raises(RuntimeError):
        client.watch(b"k")
    loop.run_until_complete(client.close())
    loop.close()


# --------------------------------------------------------------------------- CLI


def test_cli_watch(etcd_server: EtcdServer, writer: fastetcd.Client, etcd_prefix: bytes) -> None:
    start = writer.put(etcd_prefix + b"a", b"1").header.revision
    writer.put(etcd_prefix + b"a", b"2")
    writer.delete(etcd_prefix + b"a")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    base = [sys.executable, "-m", "fastetcd", "--endpoints", etcd_server.endpoint, "watch"]
    prefix = etcd_prefix.decode()
    runs = {
        "json": base + [prefix, "--rev", str(start), "--prev-kv", "--json"],
        "text": base + [prefix, "--rev", str(start)],
    }
    for kind, cmd in runs.items():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline().decode() for _ in range(3)]
        finally:
            proc.terminate()
            proc.wait(WAIT)
        if kind == "json":
            objs = [json.loads(line) for line in lines]
            assert [o["type"] for o in objs] == ["PUT", "PUT", "DELETE"]
            assert [o["kv"]["value"] for o in objs] == ["1", "2", ""]
            assert objs[0]["kv"]["mod_revision"] == start
            assert objs[0]["prev_kv"] is None and objs[1]["prev_kv"]["value"] == "1"
            assert objs[2]["kv"]["key"] == prefix + "a"
        else:
            assert lines[0].split() == ["PUT", prefix + "a", "1", f"rev={start}"]
            assert lines[2].split() == ["DELETE", prefix + "a", f"rev={start + 2}"]
