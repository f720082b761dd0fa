"""The benchmarks' load drivers: N workers (asyncio tasks or threads) call ``fn(*args)``
until a count or a time limit is reached, whichever comes first.

The drivers are the same for every client a benchmark compares, and they spend as little
as they can per operation, so that a row measures the client, not its harness: the
arguments are made before the clock starts, and each worker takes a batch of 64 of them
at a time (one shared counter update and one clock read per batch) and runs a plain
``for`` loop over it (no function of the harness's own called per operation).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

#: operations a worker takes at a time (the counter and the clock are read once per batch);
#: fewer near the end, so that every worker stays busy until the last operations
BATCH = 64


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
) -> tuple[int, float, float]:
    """``inflight`` tasks await ``fn(*a)`` for ``a`` in ``args`` (cycled) until ``max_ops``
    or ``seconds``; returns (operations, wall seconds, process CPU seconds)."""
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

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(inflight)])
    return done, time.perf_counter() - wall0, time.process_time() - cpu0


def run_threads(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    inflight: int,
    max_ops: int,
    seconds: float,
) -> tuple[int, float, float]:
    """``inflight`` threads call ``fn(*a)`` for ``a`` in ``args`` (cycled) until
    ``max_ops`` or ``seconds``; returns (operations, wall seconds, process CPU seconds)."""
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
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], time.perf_counter() - wall0, time.process_time() - cpu0
