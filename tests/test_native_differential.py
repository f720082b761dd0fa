"""Differential test: thousands of random KV/Txn requests through the grpcio transport and
the native one (blocking and asyncio) give identical results.

Each transport drives its own fresh etcd with the same seeded sequence of operations, so
revisions line up exactly; results are compared field by field (the header's cluster and
member ids, which differ between servers, are left out). Errors must match by class and
server message.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

import fastetcd
from fastetcd import _native, errors
from fastetcd.testing import EtcdServer
from fastetcd.txn import (
    CreateRevision,
    Delete,
    Get,
    ModRevision,
    Put,
    Txn,
    Value,
    Version,
)

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs fastetcd._h2")

OPS = int(os.environ.get("FASTETCD_DIFF_OPS", "2500"))
KEYS = [b"a", b"ab", b"abc", b"b", b"b\xff", b"b\xff\xff", b"c", b"\x00", b"zz"]


def normalize(value: Any) -> Any:
    """Result objects as plain tuples, without the server identity in headers."""
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    fields = getattr(value, "_fields", None)
    if fields is None:
        return value
    if type(value).__name__ == "ResponseHeader":
        return ("header", value.revision, value.raft_term)
    return (type(value).__name__, *[normalize(field) for field in fields()])


def _key(rng: random.Random) -> bytes:
    return rng.choice(KEYS) + (b"" if rng.random() < 0.7 else bytes([rng.randrange(256)]))


def _value(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return b""
    if roll < 0.08:
        return rng.randbytes(rng.randrange(20_000, 200_000))
    return rng.randbytes(rng.randrange(1, 64))


def _range_opts(rng: random.Random, revision: int) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if rng.random() < 0.5:
        opts["limit"] = rng.randrange(0, 5)
    if rng.random() < 0.3:
        opts["sort_target"] = rng.choice(["key", "version", "create", "mod", "value"])
        opts["sort_order"] = rng.choice(["none", "ascend", "descend"])
    if rng.random() < 0.2:
        opts["keys_only"] = True
    if rng.random() < 0.1:
        opts["count_only"] = True
    if rng.random() < 0.2:
        opts["revision"] = rng.randrange(0, revision + 3)
    if rng.random() < 0.1:
        opts["min_mod_revision"] = rng.randrange(0, revision + 1)
    if rng.random() < 0.1:
        opts["max_create_revision"] = rng.randrange(0, revision + 1)
    return opts


def _compare(rng: random.Random) -> Any:
    key = _key(rng)
    target = rng.choice(
        [
            lambda: Value(key),
            lambda: Version(key),
            lambda: ModRevision(key),
            lambda: CreateRevision(key),
        ]
    )()
    operand: Any = _value(rng)[:4] if isinstance(target, Value) else rng.randrange(0, 30)
    op = rng.choice(["==", "!=", "<", ">"])
    return {"==": target.__eq__, "!=": target.__ne__, "<": target.__lt__, ">": target.__gt__}[op](
        operand
    )


def _txn_op(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return Put(_key(rng), _value(rng), prev_kv=rng.random() < 0.5)
    if roll < 0.65:
        return Get(_key(rng), prefix=rng.random() < 0.5)
    if roll < 0.85 or depth > 1:
        return Delete(_key(rng), prefix=rng.random() < 0.3, prev_kv=rng.random() < 0.5)
    return Txn(
        [_compare(rng) for _ in range(rng.randrange(0, 3))],
        [_txn_op(rng, depth + 1) for _ in range(rng.randrange(0, 3))],
        [_txn_op(rng, depth + 1) for _ in range(rng.randrange(0, 3))],
    )


Operation = Callable[[Any], Any]


def operations(seed: int, count: int) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """A deterministic random sequence of client calls: (method, args, kwargs)."""
    rng = random.Random(seed)
    ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    revision = 1
    for _ in range(count):
        roll = rng.random()
        if roll < 0.30:
            ops.append(("put", (_key(rng), _value(rng)), {"prev_kv": rng.random() < 0.3}))
            revision += 1
        elif roll < 0.45:
            ops.append(("get", (_key(rng),), {"revision": rng.choice([0, 0, revision + 5])}))
        elif roll < 0.65:
            opts = _range_opts(rng, revision)
            opts = {k: v for k, v in opts.items() if not k.startswith(("min_", "max_"))}
            ops.append(("get_prefix", (_key(rng)[:1],), opts))
        elif roll < 0.72:
            end = rng.choice([None, b"\x00", _key(rng)])
            ops.append(("range", (_key(rng), end), _range_opts(rng, revision)))
        elif roll < 0.80:
            ops.append(("delete", (_key(rng),), {"prefix": rng.random() < 0.3, "prev_kv": True}))
            revision += 1
        elif roll < 0.995:
            compare = [_compare(rng) for _ in range(rng.randrange(0, 3))]
            success = [_txn_op(rng, 0) for _ in range(rng.randrange(0, 4))]
            failure = [_txn_op(rng, 0) for _ in range(rng.randrange(0, 4))]
            ops.append(("txn", (compare, success, failure), {}))
            revision += 1
        else:
            ops.append(("compact", (max(1, revision - rng.randrange(0, 20)),), {}))
    return ops


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return normalize(call())
    except errors.EtcdError as exc:
        return ("error", type(exc).__name__, exc.code, exc.details)


def _run_sync(endpoint: str, transport: str, ops: list[Any]) -> list[Any]:
    with fastetcd.Client(endpoint, transport=transport, timeout=30) as client:
        return [_outcome(partial(getattr(client, m), *a, **kw)) for m, a, kw in ops]


def _run_async(endpoint: str, transport: str, ops: list[Any]) -> list[Any]:
    async def body() -> list[Any]:
        out = []
        async with fastetcd.AsyncClient(endpoint, transport=transport, timeout=30) as client:
            for method, args, kwargs in ops:
                try:
                    out.append(normalize(await getattr(client, method)(*args, **kwargs)))
                except errors.EtcdError as exc:
                    out.append(("error", type(exc).__name__, exc.code, exc.details))
        return out

    return asyncio.run(body())


@pytest.mark.skipif(bool(os.environ.get("FASTETCD_TEST_ENDPOINT")), reason="needs own servers")
def test_random_kv_and_txn_identical_on_grpcio_and_native() -> None:
    ops = operations(seed=20240611, count=OPS)
    runs = [("grpcio", _run_sync), ("native", _run_sync), ("native", _run_async)]
    results = []
    for transport, run in runs:
        with EtcdServer() as server:
            results.append(run(server.endpoint, transport, ops))
    reference = results[0]
    assert len(reference) == len(ops)
    kinds = {r[0] for r in reference if isinstance(r, tuple)}
    assert "error" in kinds and "TxnResult" in kinds and "PutResult" in kinds  # it explored
    for (transport, run), result in zip(runs[1:], results[1:]):
        for i, (want, got) in enumerate(zip(reference, result)):
            assert got == want, (transport, run.__name__, i, ops[i][0])
