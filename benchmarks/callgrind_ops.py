"""Client instructions per operation, counted by valgrind's callgrind: deterministic where
CPU seconds are not (on a shared 2-core machine, ``process_time`` per op moves by ±30% from
run to run with the load; an instruction count of the same code and inputs moves by < 1%).

For each source tree given (``--tree``, default: the installed ``fastetcd``) and each
operation, one local etcd 3.5 serves a child process that runs the operation with 64 calls
in flight on ``AsyncClient`` (native transport, uvloop) under callgrind, twice: ``--ops1``
and ``--ops2`` operations after the same warm-up. The difference of the two totals divided
by the difference of the counts is the cost of one operation in the client process (start-up,
imports and warm-up cancel out), kernel excluded. Comparing trees (e.g. a worktree of an
older commit, built with ``python setup.py build_ext --inplace``) shows what a change saved,
as a ratio, in one run against one etcd.

Operations: ``get`` (``client.get`` of one existing key), ``put`` (``client.put`` of a
64-byte value over 10,240 keys), ``raw-get`` / ``raw-put`` (the transport's ``unary`` with
pre-encoded requests, responses not decoded: the transport alone). ``--client-timeout S``
gives the client a timeout (a deadline on every call); without it, calls have none.

Example::

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/callgrind_ops.py --tree /tmp/base --tree .
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

VALUE = b"v" * 64
GET_KEY = b"bench/get"
INFLIGHT = 64


def _child(endpoint: str, op: str, ops: int, timeout: float | None) -> None:
    """Run ``ops`` operations (after a 200-op warm-up) with 64 in flight, on a client with
    ``timeout`` (seconds per call)."""

    import uvloop
    from _drive import run_async

    import fastetcd
    from fastetcd import _plan

    async def main() -> None:
        async with fastetcd.AsyncClient(endpoint, transport="native", timeout=timeout) as client:
            await client.put(GET_KEY, VALUE)
            transport = client._slot.transport
            # arguments made before: measure the client only
            keys = [b"bench/%05d" % i for i in range(10_240)]
            if op == "get":
                fn, args = client.get, [(GET_KEY,)]
            elif op == "put":
                fn, args = client.put, [(k, VALUE) for k in keys]
            elif op == "raw-get":
                fn, args = transport.unary, [(_plan.KV_RANGE, _plan.get(GET_KEY).request, None)]
            elif op == "raw-put":
                fn = transport.unary
                args = [(_plan.KV_PUT, _plan.put(k, VALUE).request, None) for k in keys]
            else:
                raise SystemExit(f"unknown op {op!r}")
            # (the warm-up's 200 operations are in both counts and cancel out)
            await run_async(fn, args, INFLIGHT, ops, 3600.0)

    uvloop.run(main())


def _total(path: str) -> int:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def _count(
    tree: str | None, endpoint: str, op: str, ops: int, timeout: float | None, workdir: str
) -> int:
    out = os.path.join(workdir, f"cg.{abs(hash((tree, op, ops)))}")
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.path.abspath(tree)
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        endpoint,
        op,
        str(ops),
        str(timeout),
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _total(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        timeout = None if sys.argv[5] == "None" else float(sys.argv[5])
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), timeout)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="source tree to import fastetcd from")
    parser.add_argument("--ops", default="get,put,raw-get,raw-put")
    parser.add_argument("--ops1", type=int, default=2000)
    parser.add_argument("--ops2", type=int, default=12000)
    parser.add_argument(
        "--client-timeout", type=float, default=None, help="the client's timeout (s per call)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (Debian: apt-get install valgrind)")
    from fastetcd.testing import EtcdServer

    trees: list[str | None] = list(args.tree or [None])
    rows: dict[str, list[float]] = {}
    with EtcdServer(["--unsafe-no-fsync"]) as server, tempfile.TemporaryDirectory() as tmp:
        for op in args.ops.split(","):
            for tree in trees:
                low = _count(tree, server.endpoint, op, args.ops1, args.client_timeout, tmp)
                high = _count(tree, server.endpoint, op, args.ops2, args.client_timeout, tmp)
                rows.setdefault(op, []).append((high - low) / (args.ops2 - args.ops1))
    names = [re.sub(r"^$", "installed", t or "") for t in trees]
    print("| op | " + " | ".join(f"{n} instr/op" for n in names) + " | ratio (last/first) |")
    print("|---|" + "---:|" * len(names) + "---:|")
    for op, values in rows.items():
        cells = " | ".join(f"{v:,.0f}" for v in values)
        print(f"| {op} | {cells} | {values[-1] / values[0]:.3f} |")


if __name__ == "__main__":
    main()
