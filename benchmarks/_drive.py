"""The benchmarks' load drivers: N workers (asyncio tasks or threads) call ``fn(*args)``
until a count or a time limit is reached, whichever comes first; and the workload the
transport benchmarks share (its keys and value, and the etcd they run against).

The drivers are the same for every client a benchmark compares, and they spend as little
as they can per operation, so that a row measures the client, not its harness: the
arguments are made before the clock starts, and each worker takes a batch of 64 of them
at a time (one shared counter update and one clock read per batch) and runs a plain
``for`` loop over it (no function of the harness's own called per operation).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

#: the value of every put, and the one key every get reads
VALUE = b"v" * 64
GET_KEY = b"/bench/get"
#: the keys puts cycle through, made before any run: a run measures the client, not the
#: formatting of its keys
PUT_KEYS = [b"/bench/put/%06d" % i for i in range(10_240)]


@contextlib.contextmanager
def etcd_server(no_fsync: bool = False) -> Iterator[Any]:
    """A local etcd for a benchmark (``fastetcd.testing.EtcdServer``: the etcd the tests
    use; an 8 GiB quota; ``--unsafe-no-fsync`` if ``no_fsync``), with ``GET_KEY`` set."""
    import fastetcd
    from fastetcd.testing import EtcdServer

    args = ["--quota-backend-bytes=8589934592"]
    if no_fsync:
        args.append("--unsafe-no-fsync")
    with EtcdServer(args) as server:
        with fastetcd.Client(server.endpoint) as setup:
            setup.put(GET_KEY, VALUE)
        yield server


#: operations a worker takes at a time (the counter and the clock are read once per batch);
#: fewer near the end, so that every worker stays busy until the last operations
BATCH = 64


class Measured(NamedTuple):
    """What a run measured: its operations, wall and process CPU seconds, and what the
    process did at the system's level meanwhile (all threads): read and write system calls
    (``syscr``/``syscw`` of ``/proc/self/io``, -1 where there is none: these count read(2),
    write(2) and their kin, which uvloop uses on sockets, but not recv(2) and send(2), which
    the blocking client uses) and voluntary context switches (``ru_nvcsw``: each time a
    thread blocked, e.g. the loop waiting in ``epoll_wait``)."""

    ops: int
    wall: float
    cpu: float
    reads: int
    writes: int
    sleeps: int


def _counters() -> tuple[float, float, int, int, int]:
    """Wall and CPU clocks, read and write system calls, voluntary context switches."""
    try:
        with open("/proc/self/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
        reads, writes = int(io["syscr"]), int(io["syscw"])
    except (OSError, KeyError, ValueError):
        reads = writes = -1
    sleeps = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    return time.perf_counter(), time.process_time(), reads, writes, sleeps


def _measured(ops: int, start: tuple[float, float, int, int, int]) -> Measured:
    end = _counters()
    missing = start[2] < 0 or end[2] < 0
    return Measured(
        ops,
        end[0] - start[0],
        end[1] - start[1],
        -1 if missing else end[2] - start[2],
        -1 if missing else end[3] - start[3],
        end[4] - start[4],
    )


def _take(taken: int, max_ops: int, workers: int) -> int:
    """Where the batch that starts at ``taken`` ends."""
    return taken + max(1, min(BATCH, (max_ops - taken) // workers))


def _cycle(args: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``args``, repeated to at least two batches (so that a batch wraps around once)."""
    return list(args) * -(-2 * BATCH // len(args))


def _batch(args: list[tuple[Any, ...]], start: int, end: int) -> list[tuple[Any, ...]]:
    """The arguments of operations ``start`` to ``end`` (``args`` taken in a cycle)."""
    first = start % len(args)
    batch = args[first : first + (end - start)]
    if len(batch) < end - start:  # wrapped around the end of ``args``
        batch += args[: end - start - len(batch)]
    return batch


async def run_async(
    fn: Callable[..., Awaitable[Any]],
    args: Sequence[tuple[Any, ...]],
    inflight: int,
    max_ops: int,
    seconds: float,
) -> Measured:
    """``inflight`` tasks await ``fn(*a)`` for ``a`` in ``args`` (cycled) until ``max_ops``
    or ``seconds``; returns what was measured over them (not the warm-up)."""
    args = _cycle(args)
    for a in _batch(args, 0, min(200, max_ops)):  # warm up: connect, fill caches
        await fn(*a)
    taken = done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal taken, done
        while taken < max_ops and time.perf_counter() < stop_at:
            start = taken
            taken = _take(start, max_ops, inflight)
            batch = _batch(args, start, taken)
            for a in batch:
                await fn(*a)
            done += len(batch)

    start = _counters()
    await asyncio.gather(*[worker() for _ in range(inflight)])
    return _measured(done, start)


def run_threads(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    inflight: int,
    max_ops: int,
    seconds: float,
) -> Measured:
    """``inflight`` threads call ``fn(*a)`` for ``a`` in ``args`` (cycled) until
    ``max_ops`` or ``seconds``; returns what was measured over them (not the warm-up)."""
    args = _cycle(args)
    for a in _batch(args, 0, min(200, max_ops)):
        fn(*a)
    lock = threading.Lock()
    taken = [0]
    done = [0]
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                start = taken[0]
                if start >= max_ops:
                    return
                end = taken[0] = _take(start, max_ops, inflight)
            batch = _batch(args, start, end)
            for a in batch:
                fn(*a)
            with lock:
                done[0] += len(batch)

    threads = [threading.Thread(target=worker) for _ in range(inflight)]
    start = _counters()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _measured(done[0], start)
