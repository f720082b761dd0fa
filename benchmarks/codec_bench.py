"""Codec micro-benchmark: ns per message for fastetcd's compiled codec, its pure-Python twin
and protobuf's own runtime (upb), side by side in one process.

Rows: encoding a PutRequest, a RangeRequest and a TxnRequest of 100 puts (protobuf: build the
message objects + SerializeToString), and decoding a RangeResponse of 1 and of 1,000 key-values
(protobuf: ParseFromString + reading every field into Python values, which is what a client
must do to hand results to its caller; ParseFromString alone is shown for reference).

    python3 benchmarks/codec_bench.py [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import google.protobuf  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

from fastetcd import _codec_py  # noqa: E402
from fastetcd._pb import kv_pb2, rpc_pb2  # noqa: E402

try:
    from fastetcd import _codec as _compiled
except ImportError:  # pragma: no cover - reported in the output
    _compiled = None

KEY = b"/bench/key/00001234"
VALUE = b"v" * 64


def _range_response(n: int) -> bytes:
    msg = rpc_pb2.RangeResponse(
        header=rpc_pb2.ResponseHeader(
            cluster_id=14841639068965178418,
            member_id=10276657743932975437,
            revision=123456,
            raft_term=7,
        ),
        count=n,
    )
    for i in range(n):
        msg.kvs.append(
            kv_pb2.KeyValue(
                key=b"/bench/key/%08d" % i,
                value=VALUE,
                create_revision=1000 + i,
                mod_revision=2000 + i,
                version=3,
            )
        )
    return msg.SerializeToString()


RESP_1 = _range_response(1)
RESP_1000 = _range_response(1000)


def codec_rows(codec: ModuleType) -> dict[str, Callable[[], object]]:
    put_op = codec.OP_PUT

    def put() -> bytes:
        return codec.encode_put_request(KEY, VALUE, 0, False, False, False)

    def range_() -> bytes:
        return codec.encode_range_request(KEY, b"", 0, 0, 0, 0, False, False, False, 0, 0, 0, 0)

    def txn100() -> bytes:
        enc, op = codec.encode_put_request, codec.encode_request_op
        return codec.encode_txn_request(
            [],
            [op(put_op, enc(KEY + b"%d" % i, VALUE, 0, False, False, False)) for i in range(100)],
            [],
        )

    def dec1() -> object:
        return codec.decode_range_response(RESP_1)

    def dec1000() -> object:
        return codec.decode_range_response(RESP_1000)

    return {"put": put, "range": range_, "txn100": txn100, "dec1": dec1, "dec1000": dec1000}


def _read_all(msg: rpc_pb2.RangeResponse) -> list[tuple[bytes, bytes, int, int, int, int]]:
    h = msg.header
    _ = (h.cluster_id, h.member_id, h.revision, h.raft_term, msg.count, msg.more)
    return [
        (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
        for kv in msg.kvs
    ]


def protobuf_rows() -> dict[str, Callable[[], object]]:
    PutRequest, RangeRequest = rpc_pb2.PutRequest, rpc_pb2.RangeRequest
    TxnRequest, RequestOp, RangeResponse = (
        rpc_pb2.TxnRequest,
        rpc_pb2.RequestOp,
        rpc_pb2.RangeResponse,
    )

    def put() -> bytes:
        return PutRequest(key=KEY, value=VALUE).SerializeToString()

    def range_() -> bytes:
        return RangeRequest(key=KEY).SerializeToString()

    def txn100() -> bytes:
        return TxnRequest(
            success=[
                RequestOp(request_put=PutRequest(key=KEY + b"%d" % i, value=VALUE))
                for i in range(100)
            ]
        ).SerializeToString()

    def dec1() -> object:
        msg = RangeResponse()
        msg.ParseFromString(RESP_1)
        return _read_all(msg)

    def dec1000() -> object:
        msg = RangeResponse()
        msg.ParseFromString(RESP_1000)
        return _read_all(msg)

    def parse_only1000() -> object:
        msg = RangeResponse()
        msg.ParseFromString(RESP_1000)
        return msg

    return {
        "put": put,
        "range": range_,
        "txn100": txn100,
        "dec1": dec1,
        "dec1000": dec1000,
        "parse_only1000": parse_only1000,
    }


LABELS = {
    "put": "encode PutRequest (19 B key, 64 B value)",
    "range": "encode RangeRequest (single key)",
    "txn100": "encode TxnRequest of 100 puts",
    "dec1": "decode RangeResponse, 1 kv",
    "dec1000": "decode RangeResponse, 1,000 kvs",
    "parse_only1000": "protobuf ParseFromString only, 1,000 kvs (no field reads)",
}


def measure(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` ns per call, each repeat running for about 0.2 s."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, number)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    impls: dict[str, dict[str, Callable[[], object]]] = {}
    if _compiled is not None:
        impls["compiled"] = codec_rows(_compiled)
    impls["pure"] = codec_rows(_codec_py)
    impls["protobuf"] = protobuf_rows()

    # All implementations must produce the same bytes / values before being timed.
    for name in ("put", "range", "txn100"):
        outputs = {impl: rows[name]() for impl, rows in impls.items()}
        assert len(set(outputs.values())) == 1, f"{name}: implementations disagree"

    results: dict[str, dict[str, float]] = {}
    for row in LABELS:
        results[row] = {}
        for impl, rows in impls.items():
            if row in rows:
                results[row][impl] = measure(rows[row], args.repeat)

    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "protobuf": google.protobuf.__version__,
        "protobuf_impl": api_implementation.Type(),
        "compiled_available": _compiled is not None,
    }
    if args.json:
        print(json.dumps({"meta": meta, "ns_per_op": results}, indent=2))
        return
    print(
        f"python {meta['python']} ({meta['machine']}), protobuf {meta['protobuf']} "
        f"({meta['protobuf_impl']}); ns per message, best of {args.repeat}"
    )
    print()
    print("| row | compiled | pure | protobuf | protobuf / compiled |")
    print("|---|---:|---:|---:|---:|")
    for row, label in LABELS.items():
        r = results[row]
        cells = [f"{r[k]:,.0f}" if k in r else "–" for k in ("compiled", "pure", "protobuf")]
        ratio = (
            f"{r['protobuf'] / r['compiled']:.1f}x" if "compiled" in r and "protobuf" in r else "–"
        )
        print(f"| {label} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
