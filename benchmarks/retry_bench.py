"""Retry-layer overhead: client CPU of a put with fastetcd's retrying driver vs the same client
with the retry layer taken out, in one run, against one local etcd that this script starts
(``fastetcd.testing.EtcdServer``).

"Without" is the driver as it was before retries: ``call.decode(transport.unary(...))``,
nothing else. "With" is the shipped ``Client._call`` / ``AsyncClient._call``: per-call deadline,
transport slot accounting (for auto-sync's swaps), the retry loop and its ``try``. Nothing fails
here, so the retry state itself is never created; the question is what the layer costs a put
when all goes well.

Two measurements:

* **in situ** — puts against the real etcd: sync with 1 put in flight, asyncio with 64 in
  flight, through one client (one channel, one connection) whose driver is switched between
  the two variants batch by batch (ABBA), so a load that comes and goes on the
  machine hits both alike; client CPU is ``time.process_time()`` (the whole client process,
  gRPC's threads included; etcd runs in another process) per put over all batches, and the
  median of the per-pair differences, with ops/s.
* **isolated** — the driver alone over a transport that answers at once (no network, no
  gRPC): the absolute CPU the layer adds per call, which the in-situ ratio can be checked
  against.

    python3 benchmarks/retry_bench.py [--batch 250] [--batches 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

import fastetcd  # noqa: E402
from fastetcd._base import TransportSlot  # noqa: E402
from fastetcd._plan import Call  # noqa: E402
from fastetcd.testing import EtcdServer  # noqa: E402

T = TypeVar("T")
VALUE = b"v" * 64


class BareClient(fastetcd.Client):
    """The blocking client with the retry layer taken out (the pre-retry driver)."""

    def _call(self, call: Call[T]) -> T:
        self._checked(call)
        return call.decode(self._transport.unary(call.method, call.request, self._timeout))


class BareAsyncClient(fastetcd.AsyncClient):
    """The asyncio client with the retry layer taken out (the pre-retry driver)."""

    async def _call(self, call: Call[T]) -> T:
        self._checked(call)
        return call.decode(await self._transport.unary(call.method, call.request, self._timeout))


# ----------------------------------------------------------------------------- in situ


def _sync_round(client: fastetcd.Client, n: int, tag: bytes) -> tuple[float, float]:
    put = client.put
    keys = [b"/bench/retry/%s/%06d" % (tag, i) for i in range(n)]
    cpu, wall = time.process_time(), time.perf_counter()
    for key in keys:
        put(key, VALUE)
    return time.process_time() - cpu, time.perf_counter() - wall


async def _async_round(client: fastetcd.AsyncClient, n: int, tag: bytes) -> tuple[float, float]:
    keys = iter([b"/bench/retry/%s/%06d" % (tag, i) for i in range(n)])

    async def worker() -> None:
        for key in keys:
            await client.put(key, VALUE)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(64)))
    return time.process_time() - cpu, time.perf_counter() - wall


def _variant(client: Any, name: str) -> None:
    """Switch ``client`` (one object, one channel, one connection) between the shipped
    driver and the bare one, so the two variants differ in nothing but the driver."""
    if name == "with":
        client.__dict__.pop("_call", None)
    else:
        bare = BareClient if isinstance(client, fastetcd.Client) else BareAsyncClient
        client._call = bare._call.__get__(client)


def in_situ(endpoint: str, batch: int, batches: int) -> dict[str, Any]:
    """(cpu s, wall s) per batch of puts, both variants, batches alternating ABBA."""
    results: dict[str, Any] = {}
    client = fastetcd.Client(endpoint)
    samples: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    _sync_round(client, 500, b"warm")
    for r in range(batches):
        for name in ["with", "without"] if r % 2 == 0 else ["without", "with"]:
            _variant(client, name)
            samples[name].append(_sync_round(client, batch, b"s%d%s" % (r, name.encode())))
    client.close()
    results["sync, 1 in flight"] = samples

    async def run_async() -> dict[str, list[tuple[float, float]]]:
        client = fastetcd.AsyncClient(endpoint)
        got: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
        await _async_round(client, 1000, b"awarm")
        for r in range(batches):
            for name in ["with", "without"] if r % 2 == 0 else ["without", "with"]:
                _variant(client, name)
                got[name].append(await _async_round(client, batch, b"a%d%s" % (r, name.encode())))
        await client.close()
        return got

    results["asyncio, 64 in flight"] = _new_loop().run_until_complete(run_async())
    return results


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- isolated


class _Instant:
    """A transport that answers every unary call at once with an empty PutResponse."""

    def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Any = None
    ) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _AsyncInstant:
    async def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Any = None
    ) -> bytes:
        return b""

    async def close(self) -> None:
        pass


def _install(client: Any, transport: Any) -> None:
    client._slot = TransportSlot(transport)
    client._transport = transport


def isolated(n: int, repeat: int) -> dict[str, dict[str, float]]:
    """ns of client CPU per put through the driver, transport answering at once."""
    out: dict[str, dict[str, float]] = {}
    unused = "127.0.0.1:9"  # never connected: the transport is replaced
    call = fastetcd._plan.put(b"/bench/key", VALUE)
    sync = {"with": fastetcd.Client(unused), "without": BareClient(unused)}
    for c in sync.values():
        c._transport.close()
        _install(c, _Instant())

    def time_sync(fn: Callable[[Any], Any]) -> float:
        start = time.process_time()
        for _ in range(n):
            fn(call)
        return time.process_time() - start

    best = {"with": float("inf"), "without": float("inf")}
    for _ in range(repeat):  # the variants alternate, the best of each is kept
        for name, c in sync.items():
            best[name] = min(best[name], time_sync(c._call))
    out["sync"] = {name: t / n * 1e9 for name, t in best.items()}

    async def run() -> dict[str, float]:
        clients = {"with": fastetcd.AsyncClient(unused), "without": BareAsyncClient(unused)}
        for c in clients.values():
            await c._transport.close()
            _install(c, _AsyncInstant())
        got = {"with": float("inf"), "without": float("inf")}
        for _ in range(repeat):
            for name, c in clients.items():
                start = time.process_time()
                for _ in range(n):
                    await c._call(call)
                got[name] = min(got[name], time.process_time() - start)
        return {name: t / n * 1e9 for name, t in got.items()}

    out["asyncio"] = _new_loop().run_until_complete(run())
    return out


# ----------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=250, help="puts per batch")
    parser.add_argument("--batches", type=int, default=60, help="batches per variant")
    parser.add_argument("--json", action="store_true", help="print raw figures as JSON")
    args = parser.parse_args()

    print(
        f"fastetcd retry-layer overhead: Python {platform.python_version()}, grpcio "
        f"{grpc.__version__}, compiled modules: {fastetcd.EXTENSIONS_LOADED}, "
        f"{args.batches} alternating batches of {args.batch} puts per variant"
    )
    with EtcdServer(["--unsafe-no-fsync"]) as server:
        situ = in_situ(server.endpoint, args.batch, args.batches)
    iso = isolated(20_000, 15)

    print()
    print(
        "| workload | client CPU µs/put, with | without | overhead (all batches) "
        "| median of paired batches | ops/s, with | without |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for workload, samples in situ.items():
        n = args.batch * args.batches
        cpu = {k: sum(c for c, _ in v) / n * 1e6 for k, v in samples.items()}
        ops = {k: n / sum(w for _, w in v) for k, v in samples.items()}
        overall = (cpu["with"] - cpu["without"]) / cpu["with"] * 100
        paired = statistics.median(
            (a - b) / a * 100 for (a, _), (b, _) in zip(samples["with"], samples["without"])
        )
        print(
            f"| {workload} | {cpu['with']:.1f} | {cpu['without']:.1f} | {overall:+.1f}% | "
            f"{paired:+.1f}% | {ops['with']:,.0f} | {ops['without']:,.0f} |"
        )
    print()
    print("| driver alone (instant transport) | ns/call, with | without | added |")
    print("|---|---:|---:|---:|")
    for driver, ns in iso.items():
        print(
            f"| {driver} | {ns['with']:,.0f} | {ns['without']:,.0f} | "
            f"{ns['with'] - ns['without']:+,.0f} |"
        )
    if args.json:
        print(json.dumps({"in_situ": situ, "isolated": iso}, indent=1))


if __name__ == "__main__":
    main()
