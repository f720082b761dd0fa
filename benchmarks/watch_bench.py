"""Watch consumption benchmark: events/s and client CPU µs per event, fastetcd (compiled and
pure core, blocking and asyncio client, native and grpcio transport) against aetcd,
etcd3aio and python-etcd3, on one etcd, in one run.

Two workloads, each client in a fresh subprocess (so its process CPU time — every thread,
gRPC's included — is its own; etcd and the writer run in other processes):

* ``1000``: responses of 1,000 events. ``--watchers`` watches on one client replay the same
  history of ``--history`` revisions (one 20-byte key, 100-byte value each) from its first
  revision; etcd catches far-behind watchers up with responses of up to 1,000 revisions.
  etcd paces catch-up (about every 100 ms per batch), so events/s is etcd's; CPU µs/event is
  the client's.
* ``1``: responses of 1 event. One watch, in sync with the store, while this script writes
  ``--live`` revisions (64 puts in flight, from this process); events/s is bounded by the
  writer, CPU µs/event is the client's.

Consuming means touching every event's ``kv.mod_revision`` and counting. The asyncio clients
run on uvloop when it is installed. python-etcd3 (``etcd3``) does not import with protobuf 7's
upb runtime; it runs with ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` (pure-Python
protobuf), which is reported. etcd3aio hands out etcd's raw protobuf ``WatchResponse``
messages (upb) from one gRPC stream per watch; its row is skipped (``-``) when it is not
installed. A decode-only row (no network) is printed too.

    python3 benchmarks/watch_bench.py [--history 20000] [--watchers 10] [--live 10000]
                                      [--repeat 5] [--clients a,b] [--scenarios 1000,1]
                                      [--json | --json-out FILE] [--table FILE]

Rows: ``fastetcd-native-{sync,async}`` are the compiled core on the native transport
(``transport="native"``); ``fastetcd-{compiled,pure}-{sync,async}`` are on grpcio
(``transport="grpcio"``; the pure core has no native transport). ``grpcio-floor`` and
``native-floor`` are not clients: a raw blocking stream of that transport whose responses
protobuf parses lazily (no Python object per event), i.e. what receiving the bytes costs
before any client work. ``--clients`` takes a comma-separated subset of the rows (in the
order given).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
import timeit
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VALUE = b"v" * 100
CLIENTS = [
    "fastetcd-native-sync",
    "fastetcd-native-async",
    "fastetcd-compiled-sync",
    "fastetcd-compiled-async",
    "fastetcd-pure-sync",
    "fastetcd-pure-async",
    "aetcd",
    "etcd3aio",
    "etcd3",
    "native-floor",
    "grpcio-floor",
]


def _transport(client: str) -> str:
    """The fastetcd transport a row uses: ``native`` rows (compiled core) or grpcio."""
    return "native" if "native" in client else "grpcio"


def _loop_runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


# --------------------------------------------------------------------------- child side


class Meter:
    """Counts events; measures wall and process CPU time from start() to the last event."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.responses = 0
        self.last = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def add(self, n: int, responses: int, last: int) -> None:
        with self.lock:
            self.count += n
            self.responses += responses
            self.last = max(self.last, last)
            if self.count >= self.expected and not self.done.is_set():
                self.wall = time.perf_counter() - self.t0
                self.cpu = time.process_time() - self.c0
                self.done.set()

    def result(self, **extra: Any) -> dict[str, Any]:
        return {
            "events": self.count,
            "responses": self.responses,
            "events_per_s": self.count / self.wall,
            "cpu_us_per_event": self.cpu / self.count * 1e6,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            **extra,
        }


def _ready() -> None:
    print("READY", flush=True)


def child_fastetcd_sync(a: argparse.Namespace, meter: Meter) -> None:
    import fastetcd

    per = a.expected // a.watchers
    with fastetcd.Client(a.endpoint, timeout=60, transport=_transport(a.client)) as client:
        meter.start()
        watches = [
            client.watch(a.prefix, prefix=True, start_revision=a.start) for _ in range(a.watchers)
        ]
        for w in watches:
            w.wait_created(60)
        if a.scenario == "1":
            _ready()

        def consume(w: Any) -> None:
            n = 0
            for response in w:
                n += _take(response, meter)
                if n >= per:
                    return

        threads = [threading.Thread(target=consume, args=(w,)) for w in watches]
        for t in threads:
            t.start()
        meter.done.wait(600)
        for w in watches:
            w.cancel()
        for t in threads:
            t.join()


def _take(response: Any, meter: Meter) -> int:
    """Consume one response: touch every event's ``kv.mod_revision``, count; its events."""
    events = response.events
    last = 0
    for event in events:
        last = event.kv.mod_revision
    meter.add(len(events), 1, last)
    return len(events)


async def _consume_responses(w: Any, per: int, meter: Meter) -> None:
    """Take ``w``'s responses (an async iterator) until ``per`` events have come."""
    n = 0
    async for response in w:
        n += _take(response, meter)
        if n >= per:
            return


def child_fastetcd_async(a: argparse.Namespace, meter: Meter) -> None:
    import fastetcd

    per = a.expected // a.watchers

    async def body() -> None:
        transport = _transport(a.client)
        async with fastetcd.AsyncClient(a.endpoint, timeout=60, transport=transport) as client:
            meter.start()
            watches = [
                client.watch(a.prefix, prefix=True, start_revision=a.start)
                for _ in range(a.watchers)
            ]
            for w in watches:
                await w.wait_created(60)
            if a.scenario == "1":
                _ready()

            await asyncio.gather(*(_consume_responses(w, per, meter) for w in watches))
            for w in watches:
                w.cancel()

    _loop_runner()(body())


def child_aetcd(a: argparse.Namespace, meter: Meter) -> None:
    import aetcd

    host, port = a.endpoint.rsplit(":", 1)
    per = a.expected // a.watchers

    async def body() -> None:
        async with aetcd.Client(host, int(port), timeout=60) as client:
            await client.status()  # connects (and makes the watcher) before timing
            handle = client._watcher._handle_response

            async def counted(response: Any) -> None:  # to count responses, not just events
                meter.add(0, 1, 0)
                await handle(response)

            client._watcher._handle_response = counted
            meter.start()
            watches = [
                await client.watch_prefix(a.prefix, start_revision=a.start)
                for _ in range(a.watchers)
            ]
            if a.scenario == "1":
                _ready()

            async def consume(w: Any) -> None:
                n = 0
                async for event in w:
                    n += 1
                    meter.add(1, 0, event.kv.mod_revision)
                    if n >= per:
                        return

            await asyncio.gather(*(consume(w) for w in watches))
            for w in watches:
                await w.cancel()

    _loop_runner()(body())


def child_etcd3aio(a: argparse.Namespace, meter: Meter) -> None:
    """etcd3aio's public watch: ``client.watch.watch(key, range_end, start_revision)`` is an
    async generator of raw protobuf ``WatchResponse`` messages (the created response
    included), each watch on its own gRPC stream of one channel. A prefix watch is
    ``range_end=prefix_range_end(prefix)`` (etcd3aio's helper). The stream opens on the first
    ``__anext__``; there is no wait-for-created call, so in the live scenario the first
    response (``created``, no events) is awaited before READY."""
    import etcd3aio

    per = a.expected // a.watchers

    async def body() -> None:
        async with etcd3aio.Etcd3Client([a.endpoint]) as client:
            assert client.watch is not None
            range_end = etcd3aio.prefix_range_end(a.prefix)
            meter.start()
            watches: list[Any] = [  # async generators (typed as AsyncIterator)
                client.watch.watch(a.prefix, range_end=range_end, start_revision=a.start)
                for _ in range(a.watchers)
            ]
            if a.scenario == "1":
                for w in watches:
                    response = await w.__anext__()
                    assert response.created and not response.events, "expected created"
                    meter.add(0, 1, 0)
                _ready()

            await asyncio.gather(*(_consume_responses(w, per, meter) for w in watches))
            for w in watches:
                await w.aclose()  # cancels its gRPC stream

    _loop_runner()(body())


def child_etcd3(a: argparse.Namespace, meter: Meter) -> None:
    import etcd3

    host, port = a.endpoint.rsplit(":", 1)
    per = a.expected // a.watchers
    client = etcd3.client(host, int(port), timeout=60)
    handle = client.watcher._handle_response

    def counted(response: Any) -> None:  # to count responses, not just events
        meter.add(0, 1, 0)
        handle(response)

    client.watcher._handle_response = counted
    meter.start()
    watches = [client.watch_prefix(a.prefix, start_revision=a.start) for _ in range(a.watchers)]
    if a.scenario == "1":
        _ready()

    def consume(events: Any) -> None:
        n = 0
        for event in events:
            n += 1
            meter.add(1, 0, event.mod_revision)
            if n >= per:
                return

    threads = [threading.Thread(target=consume, args=(w[0],)) for w in watches]
    for t in threads:
        t.start()
    meter.done.wait(600)
    for _, cancel in watches:
        cancel()
    client.close()


def child_floor(a: argparse.Namespace, meter: Meter) -> None:
    """Not a client: one raw stream of the transport (grpcio or native, blocking) carrying
    the same watches, each response parsed by protobuf (upb, lazily: no Python object per
    event). What receiving alone costs."""
    from fastetcd._pb import rpc_pb2
    from fastetcd.kv import prefix_range_end

    with fastetcd_client(a.endpoint, _transport(a.client)) as client:
        stream = client._transport.stream("/etcdserverpb.Watch/Watch")
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=a.prefix, range_end=prefix_range_end(a.prefix), start_revision=a.start
            )
        ).SerializeToString()
        meter.start()
        for _ in range(a.watchers):
            stream.send(create)
        created = 0
        while created < a.watchers:  # events may come before the last created response
            response = rpc_pb2.WatchResponse.FromString(stream.recv())
            created += response.created
            if response.events:
                meter.add(len(response.events), 1, 0)
        if a.scenario == "1":
            _ready()
        while not meter.done.is_set():
            data = stream.recv()
            meter.add(len(rpc_pb2.WatchResponse.FromString(data).events), 1, 0)
        stream.close()


def fastetcd_client(endpoint: str, transport: str) -> Any:
    import fastetcd

    return fastetcd.Client(endpoint, timeout=60, transport=transport)


def run_child(a: argparse.Namespace) -> None:
    meter = Meter(a.expected)
    if a.client.startswith("fastetcd"):
        import fastetcd

        want_compiled = "pure" not in a.client
        assert fastetcd.EXTENSIONS_LOADED == want_compiled, "wrong watch core loaded"
        (child_fastetcd_async if a.client.endswith("-async") else child_fastetcd_sync)(a, meter)
    elif a.client == "aetcd":
        child_aetcd(a, meter)
    elif a.client == "etcd3aio":
        child_etcd3aio(a, meter)
    elif a.client == "etcd3":
        child_etcd3(a, meter)
    elif a.client.endswith("-floor"):
        child_floor(a, meter)
    else:
        raise SystemExit(f"unknown client {a.client!r}")
    if not meter.done.is_set():
        raise SystemExit(f"{a.client}: got {meter.count} of {a.expected} events")
    print(json.dumps(meter.result(last=meter.last)), flush=True)


# --------------------------------------------------------------------------- parent side


def _child_env(client: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTETCD_NO_EXTENSIONS", None)
    env.pop("FASTETCD_REQUIRE_EXTENSIONS", None)
    if "pure" in client:
        env["FASTETCD_NO_EXTENSIONS"] = "1"
    elif client.startswith("fastetcd") or client == "native-floor":
        env["FASTETCD_REQUIRE_EXTENSIONS"] = "1"
    if client == "etcd3":
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    return env


async def _write(endpoint: str, keys: list[bytes], concurrency: int = 64) -> list[int]:
    import fastetcd

    revs: list[int] = []
    async with fastetcd.AsyncClient(endpoint, timeout=60) as client:
        it = iter(keys)

        async def writer() -> None:
            for key in it:
                revs.append((await client.put(key, VALUE)).header.revision)

        await asyncio.gather(*(writer() for _ in range(concurrency)))
    return sorted(revs)


def _spawn(client: str, args: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--child", client, *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(client)
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err or out).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def bench_catchup(endpoint: str, client: str, prefix: bytes, start: int, n: int, w: int) -> Any:
    args = [
        "--endpoint", endpoint, "--scenario", "1000", "--prefix", prefix.decode(),
        "--start", str(start), "--expected", str(n * w), "--watchers", str(w),
    ]  # fmt: skip
    return _finish(_spawn(client, args))


def bench_live(endpoint: str, client: str, n: int) -> Any:
    import fastetcd

    prefix = f"/bench-watch/live/{uuid.uuid4().hex[:8]}/".encode()
    with fastetcd.Client(endpoint, timeout=60) as c:
        # Every client watches from the next revision: none can miss the first writes.
        start = c.put(prefix + b"marker", b"").header.revision + 1
    args = [
        "--endpoint", endpoint, "--scenario", "1", "--prefix", prefix.decode(),
        "--start", str(start), "--expected", str(n), "--watchers", "1",
    ]  # fmt: skip
    proc = _spawn(client, args)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        return _finish(proc) if proc.poll() is not None else {"error": f"child said {line!r}"}
    asyncio.run(_write(endpoint, [prefix + b"%08d" % i for i in range(n)]))
    return _finish(proc)


def decode_only() -> dict[str, float]:
    """µs per event to decode a 1,000-event WatchResponse in-process, per implementation."""
    from fastetcd import _watch_py
    from fastetcd._pb import kv_pb2, rpc_pb2

    msg = rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1 << 60, member_id=1 << 61, revision=99999),
        watch_id=1,
    )
    for i in range(1000):
        msg.events.append(
            kv_pb2.Event(
                kv=kv_pb2.KeyValue(
                    key=b"/bench-watch/h/%08d" % i,
                    value=VALUE,
                    create_revision=50000 + i,
                    mod_revision=50000 + i,
                    version=1,
                )
            )
        )
    data = msg.SerializeToString()

    def pb() -> None:
        m = rpc_pb2.WatchResponse.FromString(data)
        for e in m.events:
            kv = e.kv
            _ = (
                e.type,
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
            )

    impls: dict[str, Any] = {"pure": lambda: _watch_py.decode_watch_response(data), "protobuf": pb}
    try:
        from fastetcd import _watch

        impls["compiled"] = lambda: _watch.decode_watch_response(data)
    except ImportError:
        pass
    out = {}
    for name, fn in impls.items():
        number = 20 if name != "pure" else 3
        best = min(timeit.repeat(fn, number=number, repeat=5)) / number
        out[name] = best / 1000 * 1e6
    return out


def _median(runs: list[dict[str, Any]], responses: int = 0) -> dict[str, Any]:
    """The run with the median CPU per event, plus the lowest CPU per event and the highest
    rate seen (all runs failed: the last error). Runs with fewer than ``responses``
    responses (a client that fell behind gets batched responses) are left out."""
    ok = [r for r in runs if "error" not in r and r["responses"] >= responses]
    ok.sort(key=lambda r: r["cpu_us_per_event"])
    if not ok:
        if all("error" in r for r in runs):
            return runs[-1]
        return {"error": "fell behind in every run (got batched responses)"}
    return {
        **ok[len(ok) // 2],
        "runs": len(ok),
        "best_cpu_us_per_event": ok[0]["cpu_us_per_event"],
        "best_events_per_s": max(r["events_per_s"] for r in ok),
    }


def versions(endpoint: str) -> dict[str, str]:
    from fastetcd.testing import etcd_version, find_etcd_binary

    info = {"python": platform.python_version(), "machine": platform.machine()}
    dists = ("fastetcd", "grpcio", "protobuf", "aetcd", "etcd3aio", "etcd3", "uvloop", "Cython")
    for dist in dists:
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "-"
    try:
        info["etcd"] = ".".join(map(str, etcd_version(find_etcd_binary())))
    except Exception:
        info["etcd"] = "?"
    info["cpus"] = str(os.cpu_count())
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=20_000, help="revisions to replay")
    parser.add_argument("--watchers", type=int, default=10, help="watches replaying history")
    parser.add_argument("--live", type=int, default=10_000, help="revisions written live")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument(
        "--scenarios", default="1000,1", help="which workloads: 1000 (catch-up), 1 (live)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median shown)")
    parser.add_argument("--endpoint", help="an existing etcd (default: start one)")
    parser.add_argument("--json", action="store_true", help="print JSON, not the table")
    parser.add_argument("--json-out", help="also write the results as JSON to this file")
    parser.add_argument("--table", help="print the table of a --json-out file and exit")
    # child mode
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.table:
        print_table(json.loads(Path(a.table).read_text()))
        return 0
    if a.child:
        a.client = a.child
        a.prefix = a.prefix.encode()
        run_child(a)
        return 0

    from fastetcd.testing import EtcdServer

    clients = [c.strip() for c in a.clients.split(",") if c.strip()]
    scenarios = [x.strip() for x in a.scenarios.split(",") if x.strip()]
    if not scenarios or any(x not in ("1000", "1") for x in scenarios):
        parser.error("--scenarios takes 1000 and/or 1")
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients {', '.join(unknown)} (known: {', '.join(CLIENTS)})")
    run_clients = list(clients)
    if "etcd3aio" in clients and importlib.util.find_spec("etcd3aio") is None:
        print("etcd3aio is not installed: its row is skipped", file=sys.stderr)
        run_clients.remove("etcd3aio")  # its row prints as "-"
    server = None
    endpoint = a.endpoint
    if endpoint is None:
        args = ["--unsafe-no-fsync", "--quota-backend-bytes=8589934592"]
        server = EtcdServer(args).start()
        endpoint = server.endpoint
    try:
        prefix = f"/bench-watch/{uuid.uuid4().hex[:8]}/h/".encode()
        revs = [0]
        if "1000" in scenarios:
            revs = asyncio.run(_write(endpoint, [prefix + b"%08d" % i for i in range(a.history)]))
            assert revs == list(range(revs[0], revs[0] + a.history)), "history is not contiguous"
        results: dict[str, Any] = {"versions": versions(endpoint), "decode_only": decode_only()}
        results["load_start"] = os.getloadavg()
        runs: dict[str, dict[str, list[Any]]] = {"1000": {}, "1": {}}
        # All catch-up runs first (live runs grow the store, and catch-up reads it), each
        # repetition in a rotated client order, so that load changes hit every client.
        for scenario in [x for x in ("1000", "1") if x in scenarios]:
            for rep in range(a.repeat):
                shift = rep % max(len(run_clients), 1)
                for client in run_clients[shift:] + run_clients[:shift]:
                    if scenario == "1000":
                        r = bench_catchup(endpoint, client, prefix, revs[0], a.history, a.watchers)
                    else:
                        r = bench_live(endpoint, client, a.live)
                    runs[scenario].setdefault(client, []).append(r)
                    print(f"{scenario}-event run {rep + 1}/{a.repeat}: {client}", file=sys.stderr)
        results["runs"] = runs
        results["1000"] = {c: _median(rs) for c, rs in runs["1000"].items()}
        results["1"] = {c: _median(rs, a.live) for c, rs in runs["1"].items()}
        results["load"] = os.getloadavg()
    finally:
        if server is not None:
            server.close()
    results["args"] = {k: getattr(a, k) for k in ("history", "watchers", "live", "repeat")}
    results["clients"] = clients
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=1))
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        print_table(results)
    return 0


def print_table(results: dict[str, Any]) -> None:
    """The Markdown table of a run (``--json`` output or ``--json-out`` file)."""
    v, args = results["versions"], results["args"]
    print(
        f"etcd {v['etcd']}, Python {v['python']}, grpcio {v['grpcio']}, protobuf "
        f"{v['protobuf']}, aetcd {v['aetcd']}, etcd3aio {v.get('etcd3aio', '-')}, "
        f"etcd3 {v['etcd3']}, uvloop {v['uvloop']}, "
        f"{v['cpus']} CPUs"
    )
    print(
        "load average (1, 5, 15 min): at start "
        + ", ".join(f"{x:.2f}" for x in results["load_start"])
        + "; at end "
        + ", ".join(f"{x:.2f}" for x in results["load"])
    )
    print(
        f"\n1,000-event responses: {args['watchers']} watches x {args['history']} revisions "
        f"replayed; 1-event responses: {args['live']} revisions written live; median of "
        f"{args['repeat']} runs (lowest in parentheses)\n"
    )
    print(
        "| client | 1,000-event: events/s | µs CPU/event (best) "
        "| 1-event: events/s | µs CPU/event (best) |"
    )
    print("|---|---:|---:|---:|---:|")
    for client in results["clients"]:
        cells = []
        for scenario in ("1000", "1"):
            r = results[scenario].get(client)
            if r is None:
                cells += ["-", "-"]
            elif "error" in r:
                cells += ["failed", r["error"][:60]]
            else:
                cpu, best = r["cpu_us_per_event"], r["best_cpu_us_per_event"]
                cells += [f"{r['events_per_s']:,.0f}", f"{cpu:.2f} ({best:.2f})"]
        print(f"| {client} | " + " | ".join(cells) + " |")
    d = results["decode_only"]
    print(
        "\ndecode only, 1,000-event WatchResponse, µs/event: "
        + ", ".join(f"{k} {val:.3f}" for k, val in d.items())
    )


if __name__ == "__main__":
    sys.exit(main())
