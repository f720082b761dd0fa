"""Transport benchmark: put and single-key get with 1, 64 and 256 requests in flight, against
one local etcd started with ``fastetcd.testing``, for

* fastetcd-native (asyncio on uvloop, and the blocking client: N threads for N in flight),
* fastetcd-grpcio (asyncio client on grpc.aio),
* raw grpcio (grpc.aio, pre-encoded request bytes, responses not decoded: the floor of any
  client built on grpcio) and raw native (the same through fastetcd's native asyncio
  transport: the transport's own cost, without the client layers above it),
* aetcd (installed separately; skipped if missing),
* etcd's own Go client, clientv3 (``benchmarks/go_client``: a Go program built by its
  ``build.sh`` from Debian's Go and etcd 3.4 sources; skipped if not built): what the
  issue's "a sixth of etcd's Go client" is measured against, on the same machine.

Each row reports client CPU microseconds per operation (``time.process_time`` delta / ops:
all threads of this process, the etcd server is another process) and operations per second.
Runs are bounded by count and by time (whichever ends first)::

    python3 benchmarks/transport_bench.py [--ops 20000] [--seconds 8] [--inflight 1,64,256]
                                          [--clients native-async,...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402

import fastetcd  # noqa: E402
from fastetcd import _plan  # noqa: E402
from fastetcd.testing import EtcdServer  # noqa: E402

try:
    import uvloop
except ImportError:  # pragma: no cover - reported in the output
    uvloop = None  # type: ignore[assignment]

VALUE = b"v" * 64
GET_KEY = b"/bench/get"
CLIENTS = [
    "native-async",
    "native-sync",
    "raw-native",
    "grpcio-async",
    "raw-grpcio",
    "aetcd",
    "go-clientv3",
]
GO_BENCH = Path(__file__).resolve().parent / "go_client" / "go-bench"


def _key(i: int) -> bytes:
    return b"/bench/put/%06d" % (i % 10_000)


#: The put rows' keys, made before any row runs: a row measures the client, not the
#: formatting of its keys (the raw rows go further and pre-encode whole requests).
KEYS = [_key(i) for i in range(10_000)]


class Result:
    def __init__(self, client: str, op: str, inflight: int, ops: int, wall: float, cpu: float):
        self.client, self.op, self.inflight = client, op, inflight
        self.ops, self.wall, self.cpu = ops, wall, cpu

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.ops * 1e6

    def row(self) -> str:
        return (
            f"| {self.client} | {self.op} | {self.inflight} | {self.ops_per_s:,.0f} | "
            f"{self.cpu_us:.1f} | {self.ops} |"
        )


# ------------------------------------------------------------------------------ async drivers


async def _run_async(
    op: Callable[[int], Awaitable[Any]], inflight: int, max_ops: int, seconds: float
) -> tuple[int, float, float]:
    """``inflight`` workers call ``op(i)`` until max_ops or the time limit; (ops, wall, cpu)."""
    for i in range(min(200, max_ops)):  # warm up: connect, fill caches
        await op(i)
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal counter
        while counter < max_ops:
            i = counter
            counter += 1
            await op(i)
            if (i & 63) == 0 and time.perf_counter() > stop_at:
                return

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(inflight)])
    return counter, time.perf_counter() - wall0, time.process_time() - cpu0


def _run_threads(
    op: Callable[[int], Any], inflight: int, max_ops: int, seconds: float
) -> tuple[int, float, float]:
    for i in range(min(200, max_ops)):
        op(i)
    lock = threading.Lock()
    counter = [0]
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        while True:
            with lock:
                i = counter[0]
                if i >= max_ops:
                    return
                counter[0] += 1
            op(i)
            if (i & 63) == 0 and time.perf_counter() > stop_at:
                return

    threads = [threading.Thread(target=worker) for _ in range(inflight)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counter[0], time.perf_counter() - wall0, time.process_time() - cpu0


async def _fastetcd_async(endpoint: str, transport: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    async with fastetcd.AsyncClient(endpoint, transport=transport) as client:
        if op == "put":
            return await _run_async(lambda i: client.put(KEYS[i % 10_000], VALUE), n, max_ops, s)
        return await _run_async(lambda i: client.get(GET_KEY), n, max_ops, s)


async def _raw_grpcio(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(endpoint) as channel:
        if op == "put":
            method = channel.unary_unary(_plan.KV_PUT)
            requests = [_plan.put(_key(i), VALUE).request for i in range(10_000)]
            return await _run_async(lambda i: method(requests[i % 10_000]), n, max_ops, s)
        method = channel.unary_unary(_plan.KV_RANGE)
        request = _plan.get(GET_KEY).request
        return await _run_async(lambda i: method(request), n, max_ops, s)


async def _raw_native(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    from fastetcd._native import NativeAsyncTransport
    from fastetcd._transport import TransportConfig, parse_endpoints

    transport = NativeAsyncTransport(TransportConfig(endpoints=parse_endpoints(endpoint)))
    try:
        if op == "put":
            requests = [_plan.put(_key(i), VALUE).request for i in range(10_000)]
            return await _run_async(
                lambda i: transport.unary(_plan.KV_PUT, requests[i % 10_000], None), n, max_ops, s
            )
        request = _plan.get(GET_KEY).request
        return await _run_async(
            lambda i: transport.unary(_plan.KV_RANGE, request, None), n, max_ops, s
        )
    finally:
        await transport.close()


async def _aetcd(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    import aetcd

    host, _, port = endpoint.rpartition(":")
    async with aetcd.Client(host, int(port)) as client:
        if op == "put":
            return await _run_async(lambda i: client.put(KEYS[i % 10_000], VALUE), n, max_ops, s)
        return await _run_async(lambda i: client.get(GET_KEY), n, max_ops, s)


def _native_sync(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    with fastetcd.Client(endpoint, transport="native") as client:
        if op == "put":
            return _run_threads(lambda i: client.put(KEYS[i % 10_000], VALUE), n, max_ops, s)
        return _run_threads(lambda i: client.get(GET_KEY), n, max_ops, s)


_GO_VERSIONS: dict[str, str] = {}


def _go_clientv3(
    endpoint: str, op: str, n: int, max_ops: int, s: float
) -> tuple[int, float, float]:
    """The Go program, in its own process: its CPU is its own (getrusage, all threads)."""
    cmd = [str(GO_BENCH), "--endpoint", endpoint, "--op", op, "--inflight", str(n)]
    cmd += ["--ops", str(max_ops), "--seconds", str(s)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    _GO_VERSIONS["go-clientv3"] = f"{out['client_version']} ({out['go_version']})"
    ops = out["ops"]
    return ops, out["wall_s"], out["cpu_us_per_op"] * ops / 1e6


def _run_loop(coro_factory: Callable[[], Awaitable[Any]]) -> Any:
    if uvloop is not None:
        return uvloop.run(coro_factory())  # type: ignore[arg-type]
    return asyncio.run(coro_factory())  # type: ignore[arg-type]


def run(client: str, endpoint: str, op: str, n: int, max_ops: int, s: float) -> Result | None:
    if client == "native-async":
        out = _run_loop(lambda: _fastetcd_async(endpoint, "native", op, n, max_ops, s))
    elif client == "grpcio-async":
        out = _run_loop(lambda: _fastetcd_async(endpoint, "grpcio", op, n, max_ops, s))
    elif client == "raw-native":
        out = _run_loop(lambda: _raw_native(endpoint, op, n, max_ops, s))
    elif client == "raw-grpcio":
        out = _run_loop(lambda: _raw_grpcio(endpoint, op, n, max_ops, s))
    elif client == "aetcd":
        try:
            import aetcd  # noqa: F401
        except ImportError:
            return None
        out = _run_loop(lambda: _aetcd(endpoint, op, n, max_ops, s))
    elif client == "native-sync":
        out = _native_sync(endpoint, op, n, max_ops, s)
    elif client == "go-clientv3":
        if not GO_BENCH.exists():
            return None
        out = _go_clientv3(endpoint, op, n, max_ops, s)
    else:
        raise SystemExit(f"unknown client {client!r}")
    ops, wall, cpu = out
    return Result(client, op, n, ops, wall, cpu)


def versions() -> dict[str, str]:
    info = {
        "python": platform.python_version(),
        "fastetcd": fastetcd.__version__,
        "grpcio": grpc.__version__,
        "uvloop": getattr(uvloop, "__version__", "absent"),
        "codec": "compiled" if fastetcd.EXTENSIONS_LOADED else "pure",
        "machine": f"{platform.machine()}, {platform.system()}",
    }
    try:
        import aetcd

        info["aetcd"] = getattr(aetcd, "__version__", "installed")
    except ImportError:
        info["aetcd"] = "absent"
    info.update(_GO_VERSIONS)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=20_000, help="max operations per row")
    parser.add_argument("--seconds", type=float, default=8.0, help="max seconds per row")
    parser.add_argument("--inflight", default="1,64,256")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--ops-single", type=int, default=5_000, help="max ops with 1 in flight")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    inflights = [int(x) for x in args.inflight.split(",")]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    results: list[Result] = []
    with EtcdServer(["--quota-backend-bytes=8589934592"]) as server:
        with fastetcd.Client(server.endpoint) as setup:
            setup.put(GET_KEY, VALUE)
        for op in ("put", "get"):
            for n in inflights:
                for client in clients:
                    max_ops = args.ops_single if n == 1 else args.ops
                    result = run(client, server.endpoint, op, n, max_ops, args.seconds)
                    if result is not None:
                        results.append(result)
                        print(result.row(), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"versions": versions(), "results": [vars(r) for r in results]}))
        return
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print()
    print("| client | op | in flight | ops/s | client CPU µs/op | ops |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
