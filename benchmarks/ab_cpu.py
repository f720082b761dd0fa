"""Client CPU per operation of two source trees, side by side: paired runs in alternating
order against one local etcd, reported as per-pair ratios.

CPU seconds per operation (``process_time``, kernel included) move by ±30% from run to run on a
shared 2-core machine as its load changes, more than most changes save, and the machine drifts
between phases that last minutes. So each pair runs tree A and tree B back to back (A first in
odd pairs, B first in even ones) in child processes, each with the same operations: a pair's
ratio compares two runs seconds apart, and the median ratio over the pairs is the result. Each
run also counts the child's read(2)/write(2) calls and voluntary context switches (its loop's
sleeps) per 1,000 operations (see ``_drive.Measured``), which do not depend on the machine's
speed the way seconds do.

The operation runs with 64 calls in flight (``--inflight``) on ``AsyncClient`` (native
transport, uvloop): ``put`` (a 64-byte value over 10,240 keys) or ``get`` (one existing key).
callgrind_ops.py counts the user-space instructions of the same runs; this counts what they
cost with the kernel's share, which is where wake-ups of the client show.

Example::

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/ab_cpu.py --tree /tmp/base --tree . --ops put,get --pairs 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def _child(endpoint: str, op: str, inflight: int, ops: int) -> None:
    """Run ``ops`` operations with ``inflight`` in flight; print what was measured (JSON)."""

    import uvloop
    from _drive import GET_KEY, PUT_KEYS, VALUE, run_async

    import fastetcd

    async def main() -> None:
        async with fastetcd.AsyncClient(endpoint, transport="native") as client:
            if op == "put":
                args = [(k, VALUE) for k in PUT_KEYS]
                measured = await run_async(client.put, args, inflight, ops, 60.0)
            elif op == "get":
                measured = await run_async(client.get, [(GET_KEY,)], inflight, ops, 60.0)
            else:
                raise SystemExit(f"unknown op {op!r}")
        print(json.dumps(measured._asdict()))

    uvloop.run(main())


def _run(tree: str, endpoint: str, op: str, inflight: int, ops: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", endpoint, op]
    cmd += [str(inflight), str(ops)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    n = m["ops"]
    return {
        "us": m["cpu"] / n * 1e6,
        "ops_s": n / m["wall"],
        "reads": m["reads"] * 1000 / n,
        "sleeps": m["sleeps"] * 1000 / n,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="A, then B")
    parser.add_argument("--ops", default="put,get")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--count", type=int, default=60_000, help="operations per run")
    parser.add_argument("--no-fsync", action="store_true", help="etcd --unsafe-no-fsync")
    args = parser.parse_args()
    if len(args.tree) != 2:
        raise SystemExit("give two trees: --tree A --tree B")
    from _drive import etcd_server

    a, b = args.tree
    with etcd_server(args.no_fsync) as server:
        for op in args.ops.split(","):
            print(f"\n{op}, {args.inflight} in flight, {args.count:,} operations per run")
            print(
                "| pair | A µs/op | B µs/op | B/A | A ops/s | B ops/s "
                "| A reads/sleeps per 1000 | B reads/sleeps per 1000 |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            ratios = []
            for pair in range(1, args.pairs + 1):
                # (by position, so that A and B may be the same tree: an A/A run shows the noise)
                order = (0, 1) if pair % 2 else (1, 0)
                got = {
                    i: _run((a, b)[i], server.endpoint, op, args.inflight, args.count)
                    for i in order
                }
                ra, rb = got[0], got[1]
                ratios.append(rb["us"] / ra["us"])
                calls = " | ".join(f"{r['reads']:.0f}/{r['sleeps']:.0f}" for r in (ra, rb))
                print(
                    f"| {pair} | {ra['us']:.2f} | {rb['us']:.2f} | {ratios[-1]:.3f} "
                    f"| {ra['ops_s']:,.0f} | {rb['ops_s']:,.0f} | {calls} |",
                    flush=True,
                )
            print(
                f"\n{op}: B/A median {statistics.median(ratios):.3f}, "
                f"range {min(ratios):.3f}–{max(ratios):.3f} over {len(ratios)} pairs "
                f"(A = {a}, B = {b})"
            )


if __name__ == "__main__":
    main()
