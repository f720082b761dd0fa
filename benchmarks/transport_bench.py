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
all threads of this process, the etcd server is another process) and operations per second,
and, for the Python rows, the process's read(2)/write(2) system calls (not recv(2)/send(2),
which the blocking client uses: see ``_drive.Measured``) and voluntary context switches
(times a thread blocked: for an asyncio client, the loop's sleeps in ``epoll_wait``) per
1,000 operations: how many operations each wake-up of an asyncio client carries.
Every Python row runs on the same load driver (``benchmarks/_drive.py``: arguments made
before the clock starts, a plain loop per worker), so that a row measures the client and not
its harness. Runs are bounded by count and by time (whichever ends first)::

    python3 benchmarks/transport_bench.py [--ops 20000] [--seconds 8] [--inflight 1,64,256]
                                          [--clients native-async,...] [--json]
                                          [--repeat N] [--baselines go-clientv3,aetcd]

With ``--repeat N`` each (operation, in flight) group runs N rounds, the clients in a
rotated order each round (so that none always runs first or last as the machine's load
drifts), and a second table gives each client's medians over the rounds and, for each
baseline client, the ratios taken round by round: the baseline's CPU per operation over the
client's (how many times less CPU the client spends) and the client's ops/s over the
baseline's. On a shared machine a row's absolute CPU moves by ±20% from minute to minute;
a ratio within one round moves less, and a median over rounds less still.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
from _drive import (  # noqa: E402
    GET_KEY,
    PUT_KEYS,
    VALUE,
    Measured,
    etcd_server,
    run_async,
    run_threads,
)

import fastetcd  # noqa: E402
from fastetcd import _plan  # noqa: E402

try:
    import uvloop
except ImportError:  # pragma: no cover - reported in the output
    uvloop = None  # type: ignore[assignment]

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


#: The rows' arguments, made before any row runs (the raw rows go further and pre-encode
#: whole requests).
PUT_ARGS = [(key, VALUE) for key in PUT_KEYS]
GET_ARGS = [(GET_KEY,)]


class Result:
    def __init__(self, client: str, op: str, inflight: int, measured: Measured):
        self.client, self.op, self.inflight = client, op, inflight
        self.ops, self.wall, self.cpu = measured.ops, measured.wall, measured.cpu
        self.reads, self.writes, self.sleeps = measured.reads, measured.writes, measured.sleeps

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.ops * 1e6

    def _per_kop(self, count: int) -> str:
        return "—" if count < 0 else f"{count * 1000 / self.ops:.0f}"

    def row(self) -> str:
        calls = "/".join(self._per_kop(c) for c in (self.reads, self.writes, self.sleeps))
        return (
            f"| {self.client} | {self.op} | {self.inflight} | {self.ops_per_s:,.0f} | "
            f"{self.cpu_us:.1f} | {calls} | {self.ops} |"
        )


# ------------------------------------------------------------------------------ async drivers


async def _fastetcd_async(endpoint: str, transport: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    async with fastetcd.AsyncClient(endpoint, transport=transport) as client:
        if op == "put":
            return await run_async(client.put, PUT_ARGS, n, max_ops, s)
        return await run_async(client.get, GET_ARGS, n, max_ops, s)


async def _raw_grpcio(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(endpoint) as channel:
        if op == "put":
            method = channel.unary_unary(_plan.KV_PUT)
            requests = [(_plan.put(key, VALUE).request,) for key in PUT_KEYS]
            return await run_async(method, requests, n, max_ops, s)
        method = channel.unary_unary(_plan.KV_RANGE)
        return await run_async(method, [(_plan.get(GET_KEY).request,)], n, max_ops, s)


async def _raw_native(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    from fastetcd._native import NativeAsyncTransport
    from fastetcd._transport import TransportConfig, parse_endpoints

    transport = NativeAsyncTransport(TransportConfig(endpoints=parse_endpoints(endpoint)))
    try:
        if op == "put":
            requests = [(_plan.KV_PUT, _plan.put(key, VALUE).request, None) for key in PUT_KEYS]
            return await run_async(transport.unary, requests, n, max_ops, s)
        request = (_plan.KV_RANGE, _plan.get(GET_KEY).request, None)
        return await run_async(transport.unary, [request], n, max_ops, s)
    finally:
        await transport.close()


async def _aetcd(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    import aetcd

    host, _, port = endpoint.rpartition(":")
    async with aetcd.Client(host, int(port)) as client:
        if op == "put":
            return await run_async(client.put, PUT_ARGS, n, max_ops, s)
        return await run_async(client.get, GET_ARGS, n, max_ops, s)


def _native_sync(endpoint: str, op: str, n: int, max_ops: int, s: float):  # type: ignore[no-untyped-def]
    with fastetcd.Client(endpoint, transport="native") as client:
        if op == "put":
            return run_threads(client.put, PUT_ARGS, n, max_ops, s)
        return run_threads(client.get, GET_ARGS, n, max_ops, s)


_GO_VERSIONS: dict[str, str] = {}


def _go_clientv3(endpoint: str, op: str, n: int, max_ops: int, s: float) -> Measured:
    """The Go program, in its own process: its CPU is its own (getrusage, all threads); its
    system calls are not counted here."""
    cmd = [str(GO_BENCH), "--endpoint", endpoint, "--op", op, "--inflight", str(n)]
    cmd += ["--ops", str(max_ops), "--seconds", str(s)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    _GO_VERSIONS["go-clientv3"] = f"{out['client_version']} ({out['go_version']})"
    ops = out["ops"]
    return Measured(ops, out["wall_s"], out["cpu_us_per_op"] * ops / 1e6, -1, -1, -1)


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
    return Result(client, op, n, out)


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
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="start etcd with --unsafe-no-fsync (not a default etcd: its puts then complete "
        "in batches as large as its gets'; tells the server's batching from the client's cost)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds per group, clients in a rotated order"
    )
    parser.add_argument(
        "--baselines",
        default="go-clientv3,aetcd",
        help="clients the medians table gives ratios against (with --repeat > 1)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    inflights = [int(x) for x in args.inflight.split(",")]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    baselines = [c.strip() for c in args.baselines.split(",") if c.strip()]
    results: list[Result] = []
    rounds: list[dict[str, Result]] = []  # per (op, in flight, round): client -> result
    with etcd_server(args.no_fsync) as server:
        for op in ("put", "get"):
            for n in inflights:
                for r in range(args.repeat):
                    order = clients[r % len(clients) :] + clients[: r % len(clients)]
                    this_round: dict[str, Result] = {}
                    for client in order:
                        max_ops = args.ops_single if n == 1 else args.ops
                        result = run(client, server.endpoint, op, n, max_ops, args.seconds)
                        if result is not None:
                            results.append(result)
                            this_round[client] = result
                            print(result.row(), file=sys.stderr, flush=True)
                    rounds.append(this_round)
    summary = _summary(rounds, clients, baselines) if args.repeat > 1 else []
    if args.json:
        info = {"versions": versions(), "no_fsync": args.no_fsync, "repeat": args.repeat}
        print(json.dumps({**info, "results": [vars(r) for r in results], "summary": summary}))
        return
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    if args.no_fsync:
        print("etcd: --unsafe-no-fsync")
    print()
    print(
        "| client | op | in flight | ops/s | client CPU µs/op "
        "| reads/writes/sleeps per 1000 ops | ops |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    if summary:
        print()
        print(f"Medians over {args.repeat} rounds (ranges in brackets); ratios round by round:")
        print()
        head = "| client | op | in flight | ops/s | client CPU µs/op |"
        for b in baselines:
            head += f" {b} CPU / CPU | ops/s / {b} ops/s |"
        print(head)
        print("|---|---|---|---|---|" + "---|---|" * len(baselines))
        for row in summary:
            line = (
                f"| {row['client']} | {row['op']} | {row['inflight']} | "
                f"{_spread(row['ops_per_s'], '{:,.0f}')} | {_spread(row['cpu_us'], '{:.1f}')} |"
            )
            for b in baselines:
                ratios = row["vs"].get(b)
                if ratios is None:
                    line += " | |"
                else:
                    line += (
                        f" {_spread(ratios['cpu'], '{:.1f}')} |"
                        f" {_spread(ratios['ops_per_s'], '{:.2f}')} |"
                    )
            print(line)


def _spread(values: list[float], fmt: str) -> str:
    """The median of ``values``, with their range in brackets."""
    median = fmt.format(statistics.median(values))
    return f"{median} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _summary(
    rounds: list[dict[str, Result]], clients: list[str], baselines: list[str]
) -> list[dict[str, Any]]:
    """Per (client, op, in flight): its ops/s and CPU per op in each round, and against each
    baseline the ratios within each round (baseline CPU / CPU; ops/s / baseline ops/s)."""
    groups: dict[tuple[str, int], list[dict[str, Result]]] = {}
    for this_round in rounds:
        if this_round:
            first = next(iter(this_round.values()))
            groups.setdefault((first.op, first.inflight), []).append(this_round)
    summary = []
    for (op, n), group in groups.items():
        for client in clients:
            mine = [r[client] for r in group if client in r]
            if not mine:
                continue
            vs: dict[str, dict[str, list[float]]] = {}
            for b in baselines:
                pairs = [(r[client], r[b]) for r in group if client in r and b in r]
                if b != client and pairs:
                    vs[b] = {
                        "cpu": [base.cpu_us / res.cpu_us for res, base in pairs],
                        "ops_per_s": [res.ops_per_s / base.ops_per_s for res, base in pairs],
                    }
            summary.append(
                {
                    "client": client,
                    "op": op,
                    "inflight": n,
                    "ops_per_s": [r.ops_per_s for r in mine],
                    "cpu_us": [r.cpu_us for r in mine],
                    "vs": vs,
                }
            )
    return summary


if __name__ == "__main__":
    main()
