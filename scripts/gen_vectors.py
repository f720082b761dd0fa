#!/usr/bin/env python3
"""Generate the codec's golden vectors (``tests/vectors/*.json``) with protobuf as the oracle.

Every expected byte string and every expected decoded value here comes from the protobuf
runtime and the generated ``fastetcd._pb`` modules, never from fastetcd's own codecs:

* encoder cases: ``{"name", "args", "hex"}`` where ``hex`` is ``SerializeToString()`` of the
  protobuf message equivalent to calling the encoder with ``args`` (positional, in the
  order of ``fastetcd/_codec.pyi``);
* decoder cases: ``{"name", "hex", "expected"}`` where ``hex`` is a serialized message, often
  with hand-made additions (unknown fields, explicit defaults, repeated scalars), and
  ``expected`` is protobuf's own parse of those bytes, converted to the codec's result shape;
* ``malformed.json``: inputs the spec says every decoder must reject with DecodeError
  (hand-written, since protobuf itself accepts some of them, e.g. groups).

JSON conventions: a string is always hex-encoded bytes (no encoder takes a str), a result
object is ``{"type": ClassName, field: value, ...}``, ``null`` is None. Output is sorted and
indented, so running this again gives no diff.

Usage: python3 scripts/gen_vectors.py [--check]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastetcd._pb import kv_pb2, rpc_pb2  # noqa: E402

OUT_DIR = ROOT / "tests" / "vectors"

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

BIN_KEY = b"\x00k\xff\x00\xff"  # binary key with NUL and 0xff bytes
BIG_LEASE = 7587862072907260512  # a realistic etcd lease id (> 2**62)

# Numeric enum values, spelled as in the stub (fastetcd._codec.pyi).
TARGET_VERSION, TARGET_CREATE, TARGET_MOD, TARGET_VALUE, TARGET_LEASE = 0, 1, 2, 3, 4
OP_RANGE, OP_PUT, OP_DELETE_RANGE, OP_TXN = 1, 2, 3, 4

COMPARE_UNION = {
    TARGET_VERSION: "version",
    TARGET_CREATE: "create_revision",
    TARGET_MOD: "mod_revision",
    TARGET_VALUE: "value",
    TARGET_LEASE: "lease",
}
REQUEST_OP_FIELD = {
    OP_RANGE: ("request_range", rpc_pb2.RangeRequest),
    OP_PUT: ("request_put", rpc_pb2.PutRequest),
    OP_DELETE_RANGE: ("request_delete_range", rpc_pb2.DeleteRangeRequest),
    OP_TXN: ("request_txn", rpc_pb2.TxnRequest),
}

# --------------------------------------------------------------------------- raw wire helpers
# Only used to add hand-made fields (unknown fields, explicit defaults, repeats) to bytes
# protobuf produced; the decoded expectations still come from protobuf's parser.


def varint(value: int) -> bytes:
    value &= UINT64_MAX
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def field_bytes(field: int, data: bytes) -> bytes:
    return varint((field << 3) | 2) + varint(len(data)) + data


def field_fixed64(field: int, data: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08") -> bytes:
    return varint((field << 3) | 1) + data


def field_fixed32(field: int, data: bytes = b"\xaa\xbb\xcc\xdd") -> bytes:
    return varint((field << 3) | 5) + data


def unknown_fields(base: int = 90) -> bytes:
    """One unknown field of each skippable wire type (0, 1, 2, 5), incl. a multi-byte tag."""
    return (
        field_varint(base, UINT64_MAX)
        + field_fixed64(base + 1)
        + field_bytes(base + 2, b"\x08\x01unknown")
        + field_fixed32(base + 3)
        + field_varint(100000, 1)  # tag needs 3 bytes
        + field_bytes(536870911, b"")  # the largest field number
    )


# --------------------------------------------------------------------------- JSON helpers


def enc_arg(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [enc_arg(v) for v in value]
    return value


def header_json(h: rpc_pb2.ResponseHeader | None) -> dict[str, Any]:
    h = h if h is not None else rpc_pb2.ResponseHeader()
    return {
        "type": "ResponseHeader",
        "cluster_id": h.cluster_id,
        "member_id": h.member_id,
        "revision": h.revision,
        "raft_term": h.raft_term,
    }


def kv_json(kv: kv_pb2.KeyValue) -> dict[str, Any]:
    return {
        "type": "KeyValue",
        "key": kv.key.hex(),
        "value": kv.value.hex(),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


def range_json(m: rpc_pb2.RangeResponse) -> dict[str, Any]:
    return {
        "type": "RangeResult",
        "header": header_json(m.header),
        "kvs": [kv_json(kv) for kv in m.kvs],
        "more": m.more,
        "count": m.count,
    }


def put_json(m: rpc_pb2.PutResponse) -> dict[str, Any]:
    return {
        "type": "PutResult",
        "header": header_json(m.header),
        "prev_kv": kv_json(m.prev_kv) if m.HasField("prev_kv") else None,
    }


def delete_json(m: rpc_pb2.DeleteRangeResponse) -> dict[str, Any]:
    return {
        "type": "DeleteResult",
        "header": header_json(m.header),
        "deleted": m.deleted,
        "prev_kvs": [kv_json(kv) for kv in m.prev_kvs],
    }


def op_json(op: rpc_pb2.ResponseOp) -> dict[str, Any]:
    which = op.WhichOneof("response")
    if which == "response_range":
        return range_json(op.response_range)
    if which == "response_put":
        return put_json(op.response_put)
    if which == "response_delete_range":
        return delete_json(op.response_delete_range)
    if which == "response_txn":
        return txn_json(op.response_txn)
    raise ValueError("ResponseOp with no response cannot be a valid vector")


def txn_json(m: rpc_pb2.TxnResponse) -> dict[str, Any]:
    return {
        "type": "TxnResult",
        "header": header_json(m.header),
        "succeeded": m.succeeded,
        "responses": [op_json(op) for op in m.responses],
    }


def compact_json(m: rpc_pb2.CompactionResponse) -> dict[str, Any]:
    return {"type": "CompactResult", "header": header_json(m.header)}


# --------------------------------------------------------------------------- encoder oracles


def pb_range_request(
    key: bytes,
    range_end: bytes,
    limit: int,
    revision: int,
    sort_order: int,
    sort_target: int,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: int,
    max_mod_revision: int,
    min_create_revision: int,
    max_create_revision: int,
) -> bytes:
    return rpc_pb2.RangeRequest(
        key=key,
        range_end=range_end,
        limit=limit,
        revision=revision,
        sort_order=sort_order,
        sort_target=sort_target,
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
        min_mod_revision=min_mod_revision,
        max_mod_revision=max_mod_revision,
        min_create_revision=min_create_revision,
        max_create_revision=max_create_revision,
    ).SerializeToString()


def pb_put_request(
    key: bytes, value: bytes, lease: int, prev_kv: bool, ignore_value: bool, ignore_lease: bool
) -> bytes:
    return rpc_pb2.PutRequest(
        key=key,
        value=value,
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    ).SerializeToString()


def pb_delete_range_request(key: bytes, range_end: bytes, prev_kv: bool) -> bytes:
    return rpc_pb2.DeleteRangeRequest(
        key=key, range_end=range_end, prev_kv=prev_kv
    ).SerializeToString()


def pb_compare(result: int, target: int, key: bytes, range_end: bytes, value: int | bytes) -> bytes:
    kwargs = {COMPARE_UNION[target]: value}
    return rpc_pb2.Compare(
        result=result, target=target, key=key, range_end=range_end, **kwargs
    ).SerializeToString()


def pb_request_op(kind: int, request: bytes) -> bytes:
    name, cls = REQUEST_OP_FIELD[kind]
    return rpc_pb2.RequestOp(**{name: cls.FromString(request)}).SerializeToString()


def pb_txn_request(compare: list[bytes], success: list[bytes], failure: list[bytes]) -> bytes:
    return rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare.FromString(c) for c in compare],
        success=[rpc_pb2.RequestOp.FromString(op) for op in success],
        failure=[rpc_pb2.RequestOp.FromString(op) for op in failure],
    ).SerializeToString()


def pb_compaction_request(revision: int, physical: bool) -> bytes:
    return rpc_pb2.CompactionRequest(revision=revision, physical=physical).SerializeToString()


def oracle_prefix_range_end(prefix: bytes) -> bytes:
    """etcd's clientv3.GetPrefixRangeEnd, transcribed independently of the codecs."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


# --------------------------------------------------------------------------- encoder cases

Case = dict[str, Any]


def enc_case(name: str, oracle: Callable[..., bytes], *args: Any) -> Case:
    return {"name": name, "args": enc_arg(list(args)), "hex": oracle(*args).hex()}


def range_args(**kw: Any) -> list[Any]:
    defaults: dict[str, Any] = {
        "key": b"",
        "range_end": b"",
        "limit": 0,
        "revision": 0,
        "sort_order": 0,
        "sort_target": 0,
        "serializable": False,
        "keys_only": False,
        "count_only": False,
        "min_mod_revision": 0,
        "max_mod_revision": 0,
        "min_create_revision": 0,
        "max_create_revision": 0,
    }
    unknown = set(kw) - set(defaults)
    assert not unknown, unknown
    defaults.update(kw)
    return list(defaults.values())


def range_cases() -> list[Case]:
    cases: list[tuple[str, list[Any]]] = [
        ("all defaults", range_args()),
        ("single key", range_args(key=b"foo")),
        ("prefix", range_args(key=b"foo/", range_end=b"foo0")),
        ("from key to end", range_args(key=b"a", range_end=b"\x00")),
        ("whole keyspace", range_args(key=b"\x00", range_end=b"\x00")),
        ("binary key", range_args(key=BIN_KEY, range_end=b"\xff\xff")),
        ("limit and revision", range_args(key=b"k", limit=10, revision=42)),
        ("revision -1", range_args(key=b"k", revision=-1)),
        ("int64 max", range_args(key=b"k", limit=INT64_MAX, revision=INT64_MAX)),
        ("int64 min", range_args(key=b"k", limit=INT64_MIN, revision=INT64_MIN)),
        (
            "sort descend by mod",
            range_args(key=b"k", range_end=b"l", sort_order=2, sort_target=3),
        ),
        ("sort ascend by value", range_args(key=b"k", sort_order=1, sort_target=4)),
        ("sort target only", range_args(key=b"k", sort_target=1)),
        ("enum int32 max", range_args(sort_order=INT32_MAX, sort_target=INT32_MAX)),
        ("enum negative", range_args(sort_order=-1, sort_target=INT32_MIN)),
        ("serializable", range_args(key=b"k", serializable=True)),
        ("keys only", range_args(key=b"k", keys_only=True)),
        ("count only", range_args(key=b"k", count_only=True)),
        (
            "revision filters",
            range_args(
                key=b"k",
                min_mod_revision=1,
                max_mod_revision=2,
                min_create_revision=3,
                max_create_revision=4,
            ),
        ),
        (
            "negative filters",
            range_args(
                min_mod_revision=-1,
                max_mod_revision=INT64_MIN,
                min_create_revision=-300,
                max_create_revision=INT64_MAX,
            ),
        ),
        (
            "everything set",
            range_args(
                key=b"key",
                range_end=b"kez",
                limit=1000,
                revision=123456789,
                sort_order=2,
                sort_target=2,
                serializable=True,
                keys_only=True,
                count_only=True,
                min_mod_revision=5,
                max_mod_revision=500,
                min_create_revision=6,
                max_create_revision=600,
            ),
        ),
        ("long key", range_args(key=b"x" * 200)),
        ("varint boundaries", range_args(limit=127, revision=128, min_mod_revision=16383)),
        ("varint boundaries 2", range_args(limit=16384, revision=(1 << 56) - 1)),
    ]
    return [enc_case(name, pb_range_request, *args) for name, args in cases]


def put_cases() -> list[Case]:
    f = pb_put_request
    return [
        enc_case("all defaults", f, b"", b"", 0, False, False, False),
        enc_case("key and value", f, b"foo", b"bar", 0, False, False, False),
        enc_case("empty value", f, b"foo", b"", 0, False, False, False),
        enc_case("binary key and value", f, BIN_KEY, b"\xff\x00\x80", 0, False, False, False),
        enc_case("lease", f, b"k", b"v", 1, False, False, False),
        enc_case("large lease", f, b"k", b"v", BIG_LEASE, False, False, False),
        enc_case("lease int64 max", f, b"k", b"v", INT64_MAX, False, False, False),
        enc_case("lease -1", f, b"k", b"v", -1, False, False, False),
        enc_case("lease int64 min", f, b"k", b"v", INT64_MIN, False, False, False),
        enc_case("prev_kv", f, b"k", b"v", 0, True, False, False),
        enc_case("ignore_value", f, b"k", b"", 0, False, True, False),
        enc_case("ignore_lease", f, b"k", b"v", 0, False, False, True),
        enc_case("all flags", f, b"k", b"v", 7, True, True, True),
        enc_case("127-byte value", f, b"k", b"v" * 127, 0, False, False, False),
        enc_case("128-byte value", f, b"k", b"v" * 128, 0, False, False, False),
        enc_case("16384-byte value", f, b"k", bytes(range(256)) * 64, 0, False, False, False),
    ]


def pb_get(key: bytes, revision: int, serializable: bool) -> bytes:
    return pb_range_request(key, b"", 0, revision, 0, 0, serializable, False, False, 0, 0, 0, 0)


def get_cases() -> list[Case]:
    """``encode_get``: the user-argument entry point for a one-key get."""
    f = pb_get
    return [
        enc_case("key", f, b"foo", 0, False),
        enc_case("binary key", f, BIN_KEY, 0, False),
        enc_case("revision", f, b"k", 7, False),
        enc_case("revision int64 max", f, b"k", INT64_MAX, False),
        enc_case("serializable", f, b"k", 0, True),
        enc_case("revision and serializable", f, b"k", 300, True),
        enc_case("128-byte key", f, b"k" * 128, 0, False),
    ]


def put_user_cases() -> list[Case]:
    """``encode_put``: the user-argument entry point (keys must not be empty)."""
    return [c for c in put_cases() if c["args"][0] != ""]


def delete_cases() -> list[Case]:
    f = pb_delete_range_request
    return [
        enc_case("all defaults", f, b"", b"", False),
        enc_case("single key", f, b"foo", b"", False),
        enc_case("range", f, b"a", b"b", False),
        enc_case("prefix of all-0xff", f, b"\xff\xff", b"\x00", False),
        enc_case("prev_kv", f, b"foo", b"", True),
        enc_case("binary range prev_kv", f, BIN_KEY, b"\x00k\xff\x01", True),
    ]


def compare_cases() -> list[Case]:
    f = pb_compare
    cases = []
    names = {0: "version", 1: "create", 2: "mod", 3: "value", 4: "lease"}
    for target, tname in names.items():
        default: int | bytes = b"" if target == TARGET_VALUE else 0
        cases.append(enc_case(f"{tname} default operand", f, 0, target, b"k", b"", default))
        cases.append(enc_case(f"{tname} all defaults", f, 0, target, b"", b"", default))
    for result in range(4):
        cases.append(enc_case(f"result {result} version 5", f, result, 0, b"k", b"", 5))
    cases += [
        enc_case("create -1", f, 2, TARGET_CREATE, b"k", b"", -1),
        enc_case("mod int64 max", f, 1, TARGET_MOD, b"k", b"", INT64_MAX),
        enc_case("mod int64 min", f, 1, TARGET_MOD, b"k", b"", INT64_MIN),
        enc_case("value bytes", f, 3, TARGET_VALUE, b"k", b"", b"v\x00\xff"),
        enc_case("lease large", f, 0, TARGET_LEASE, b"k", b"", BIG_LEASE),
        enc_case("range_end field 64", f, 0, TARGET_VERSION, b"a", b"b", 0),
        enc_case("range_end with value", f, 3, TARGET_VALUE, b"a", b"\x00", b"x"),
        enc_case("binary key", f, 0, TARGET_MOD, BIN_KEY, b"\xff\xff", 9),
        enc_case("negative result enum", f, -1, TARGET_VERSION, b"k", b"", 1),
        enc_case("long value", f, 0, TARGET_VALUE, b"k", b"", b"z" * 300),
    ]
    return cases


def request_op_cases() -> list[Case]:
    f = pb_request_op
    put = pb_put_request(b"k", b"v", 0, False, False, False)
    rng = pb_range_request(*range_args(key=b"k", range_end=b"l"))
    dele = pb_delete_range_request(b"k", b"", True)
    inner_txn = pb_txn_request([pb_compare(0, 0, b"k", b"", 0)], [f(OP_PUT, put)], [])
    return [
        enc_case("empty range", f, OP_RANGE, b""),
        enc_case("empty put", f, OP_PUT, b""),
        enc_case("empty delete", f, OP_DELETE_RANGE, b""),
        enc_case("empty txn", f, OP_TXN, b""),
        enc_case("range", f, OP_RANGE, rng),
        enc_case("put", f, OP_PUT, put),
        enc_case("delete", f, OP_DELETE_RANGE, dele),
        enc_case("txn", f, OP_TXN, inner_txn),
        enc_case("large put", f, OP_PUT, pb_put_request(b"k", b"v" * 200, 0, False, False, False)),
    ]


def txn_cases() -> list[Case]:
    f = pb_txn_request
    cmp_v = pb_compare(0, TARGET_VERSION, b"k", b"", 0)
    cmp_val = pb_compare(3, TARGET_VALUE, b"k", b"", b"old")
    put = pb_request_op(OP_PUT, pb_put_request(b"k", b"new", 0, False, False, False))
    get = pb_request_op(OP_RANGE, pb_range_request(*range_args(key=b"k")))
    dele = pb_request_op(OP_DELETE_RANGE, pb_delete_range_request(b"k", b"", False))
    empty_put = pb_request_op(OP_PUT, b"")
    level3 = f([cmp_v], [get], [])
    level2 = f([], [pb_request_op(OP_TXN, level3)], [put])
    nested = pb_request_op(OP_TXN, level2)
    return [
        enc_case("empty", f, [], [], []),
        enc_case("compare only", f, [cmp_v], [], []),
        enc_case("empty compare element", f, [b""], [], []),
        enc_case("cas", f, [cmp_val], [put], [get]),
        enc_case("several ops", f, [cmp_v, cmp_val], [put, get, dele], [dele, get]),
        enc_case("empty RequestOp inner", f, [], [empty_put], [pb_request_op(OP_RANGE, b"")]),
        enc_case("failure only", f, [], [], [put]),
        enc_case("nested txn depth 3", f, [cmp_v], [nested], [get]),
    ]


def compaction_cases() -> list[Case]:
    f = pb_compaction_request
    return [
        enc_case("all defaults", f, 0, False),
        enc_case("revision", f, 100, False),
        enc_case("physical", f, 100, True),
        enc_case("physical only", f, 0, True),
        enc_case("revision -1", f, -1, False),
        enc_case("int64 max", f, INT64_MAX, True),
        enc_case("int64 min", f, INT64_MIN, False),
    ]


def prefix_cases() -> list[Case]:
    f = oracle_prefix_range_end
    return [
        enc_case(name, f, prefix)
        for name, prefix in [
            ("a", b"a"),
            ("a ff", b"a\xff"),
            ("ff ff", b"\xff\xff"),
            ("empty", b""),
            ("a ff 00", b"a\xff\x00"),
            ("foo/", b"foo/"),
            ("single ff", b"\xff"),
            ("single 00", b"\x00"),
            ("fe", b"\xfe"),
            ("ab ff ff", b"ab\xff\xff"),
            ("binary", b"\x00\xff\x00\xff"),
        ]
    ]


# --------------------------------------------------------------------------- decoder cases


def dec_case(name: str, data: bytes, parse: Callable[[bytes], dict[str, Any]]) -> Case:
    return {"name": name, "hex": data.hex(), "expected": parse(data)}


def pb_header(**kw: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(**kw)


HEADER = pb_header(
    cluster_id=14841639068965178418, member_id=10276657743932975437, revision=7, raft_term=2
)


def header_parse(data: bytes) -> dict[str, Any]:
    return header_json(rpc_pb2.ResponseHeader.FromString(data))


def kv_parse(data: bytes) -> dict[str, Any]:
    return kv_json(kv_pb2.KeyValue.FromString(data))


def range_parse(data: bytes) -> dict[str, Any]:
    return range_json(rpc_pb2.RangeResponse.FromString(data))


def put_parse(data: bytes) -> dict[str, Any]:
    return put_json(rpc_pb2.PutResponse.FromString(data))


def delete_parse(data: bytes) -> dict[str, Any]:
    return delete_json(rpc_pb2.DeleteRangeResponse.FromString(data))


def txn_parse(data: bytes) -> dict[str, Any]:
    return txn_json(rpc_pb2.TxnResponse.FromString(data))


def compact_parse(data: bytes) -> dict[str, Any]:
    return compact_json(rpc_pb2.CompactionResponse.FromString(data))


def ser(msg: Any) -> bytes:
    data: bytes = msg.SerializeToString()
    return data


def kv(key: bytes = b"k", value: bytes = b"v", rev: int = 5, **kw: int) -> kv_pb2.KeyValue:
    fields = {"create_revision": rev, "mod_revision": rev, "version": 1}
    fields.update(kw)
    return kv_pb2.KeyValue(key=key, value=value, **fields)


def kv_with_unknown() -> kv_pb2.KeyValue:
    """A KeyValue carrying unknown fields, which protobuf keeps and writes back out."""
    return kv_pb2.KeyValue.FromString(ser(kv(b"u", b"w")) + unknown_fields())


def header_cases() -> list[Case]:
    p = header_parse
    return [
        dec_case("empty", b"", p),
        dec_case("typical", ser(HEADER), p),
        dec_case(
            "uint64 max ids",
            ser(pb_header(cluster_id=UINT64_MAX, member_id=UINT64_MAX, raft_term=UINT64_MAX)),
            p,
        ),
        dec_case("revision -1", ser(pb_header(revision=-1)), p),
        dec_case("revision int64 min", ser(pb_header(revision=INT64_MIN)), p),
        dec_case("revision int64 max", ser(pb_header(revision=INT64_MAX)), p),
        dec_case("unknown fields", ser(HEADER) + unknown_fields(), p),
        dec_case("unknown fields first", unknown_fields() + ser(HEADER), p),
        dec_case("explicit zeros", field_varint(1, 0) + field_varint(3, 0), p),
        dec_case("last value wins", ser(HEADER) + field_varint(3, 99) + field_varint(1, 1), p),
        dec_case("fields out of order", field_varint(4, 3) + field_varint(3, 2), p),
        dec_case("non-canonical varint", b"\x18\x85\x80\x80\x00", p),
        dec_case("10-byte varint with top bit", b"\x08" + b"\xff" * 9 + b"\x01", p),
    ]


def kv_cases() -> list[Case]:
    p = kv_parse
    full = kv(b"key", b"value", 3, mod_revision=9, version=4, lease=BIG_LEASE)
    return [
        dec_case("empty", b"", p),
        dec_case("typical", ser(full), p),
        dec_case("absent value", ser(kv_pb2.KeyValue(key=b"k", create_revision=1)), p),
        dec_case("explicit empty value", ser(kv_pb2.KeyValue(key=b"k")) + field_bytes(5, b""), p),
        dec_case("explicit empty key", field_bytes(1, b"") + field_bytes(5, b"v"), p),
        dec_case("binary key and value", ser(kv(BIN_KEY, b"\xff\x00\xfe")), p),
        dec_case(
            "negative revisions",
            ser(kv(b"k", b"v", -1, mod_revision=INT64_MIN, version=-2, lease=-1)),
            p,
        ),
        dec_case(
            "int64 max",
            ser(
                kv(
                    b"k",
                    b"v",
                    INT64_MAX,
                    mod_revision=INT64_MAX,
                    version=INT64_MAX,
                    lease=INT64_MAX,
                )
            ),
            p,
        ),
        dec_case("large lease", ser(kv_pb2.KeyValue(key=b"k", lease=BIG_LEASE)), p),
        dec_case("unknown fields", ser(full) + unknown_fields(), p),
        dec_case(
            "unknown between fields",
            field_bytes(1, b"k") + unknown_fields() + field_bytes(5, b"v"),
            p,
        ),
        dec_case("last key wins", ser(full) + field_bytes(1, b"second"), p),
        dec_case("large value", ser(kv(b"k", bytes(range(256)) * 9)), p),
    ]


def range_cases_dec() -> list[Case]:
    p = range_parse
    R = rpc_pb2.RangeResponse
    many = R(
        header=HEADER, kvs=[kv(b"key%03d" % i, b"v%d" % i, i + 1) for i in range(50)], count=50
    )
    return [
        dec_case("empty (absent header)", b"", p),
        dec_case("header only", ser(R(header=HEADER)), p),
        dec_case("empty header present", field_bytes(1, b""), p),
        dec_case("one kv", ser(R(header=HEADER, kvs=[kv()], count=1)), p),
        dec_case("many kvs", ser(many), p),
        dec_case("more and count", ser(R(header=HEADER, kvs=[kv()], more=True, count=10)), p),
        dec_case("count -1", ser(R(count=-1)), p),
        dec_case("count int64 min", ser(R(count=INT64_MIN)), p),
        dec_case("empty kv element", field_bytes(2, b""), p),
        dec_case("kv with unknown fields", ser(R(header=HEADER, kvs=[kv_with_unknown(), kv()])), p),
        dec_case("unknown fields", ser(R(header=HEADER, kvs=[kv()])) + unknown_fields(), p),
        dec_case("more as varint 2", field_varint(3, 2), p),
        dec_case("more as 10-byte varint", b"\x18" + b"\x80" * 9 + b"\x01", p),
        dec_case(
            "keys only",
            ser(R(header=HEADER, kvs=[kv_pb2.KeyValue(key=b"a"), kv_pb2.KeyValue(key=b"b")])),
            p,
        ),
        dec_case("header last", ser(R(kvs=[kv()])) + field_bytes(1, ser(HEADER)), p),
    ]


def get_parse(data: bytes) -> dict[str, Any] | None:
    m = rpc_pb2.RangeResponse.FromString(data)
    return kv_json(m.kvs[0]) if m.kvs else None


def get_cases_dec() -> list[Case]:
    """``decode_get_response``: a RangeResponse's first key-value, or None."""
    p = get_parse
    R = rpc_pb2.RangeResponse
    return [
        dec_case("empty", b"", p),
        dec_case("header only (key absent)", ser(R(header=HEADER)), p),
        dec_case("one kv", ser(R(header=HEADER, kvs=[kv()], count=1)), p),
        dec_case("two kvs: the first", ser(R(kvs=[kv(b"a"), kv(b"b")], count=2)), p),
        dec_case("kv with unknown fields", ser(R(kvs=[kv_with_unknown()])), p),
        dec_case("unknown fields", ser(R(header=HEADER, kvs=[kv()])) + unknown_fields(), p),
    ]


def put_cases_dec() -> list[Case]:
    p = put_parse
    P = rpc_pb2.PutResponse
    return [
        dec_case("empty", b"", p),
        dec_case("header only", ser(P(header=HEADER)), p),
        dec_case("prev_kv", ser(P(header=HEADER, prev_kv=kv(b"k", b"old"))), p),
        dec_case("empty prev_kv present", ser(P(header=HEADER)) + field_bytes(2, b""), p),
        dec_case("prev_kv with lease", ser(P(prev_kv=kv(lease=BIG_LEASE))), p),
        dec_case("prev_kv with unknown fields", ser(P(prev_kv=kv_with_unknown())), p),
        dec_case("unknown fields", ser(P(header=HEADER)) + unknown_fields(), p),
    ]


def delete_cases_dec() -> list[Case]:
    p = delete_parse
    D = rpc_pb2.DeleteRangeResponse
    return [
        dec_case("empty", b"", p),
        dec_case("deleted", ser(D(header=HEADER, deleted=3)), p),
        dec_case("deleted -1", ser(D(deleted=-1)), p),
        dec_case("prev_kvs", ser(D(header=HEADER, deleted=2, prev_kvs=[kv(b"a"), kv(b"b")])), p),
        dec_case("empty prev_kv element", field_bytes(3, b"") + field_varint(2, 1), p),
        dec_case("unknown fields", ser(D(deleted=1)) + unknown_fields(), p),
    ]


def txn_cases_dec() -> list[Case]:
    p = txn_parse
    T = rpc_pb2.TxnResponse
    Op = rpc_pb2.ResponseOp
    rng = rpc_pb2.RangeResponse(header=HEADER, kvs=[kv()], count=1)
    put = rpc_pb2.PutResponse(header=HEADER, prev_kv=kv(b"k", b"old"))
    dele = rpc_pb2.DeleteRangeResponse(header=HEADER, deleted=1)
    level3 = T(header=HEADER, succeeded=True, responses=[Op(response_range=rng)])
    level2 = T(header=HEADER, responses=[Op(response_txn=level3), Op(response_put=put)])
    op_unknown = ser(Op(response_put=put)) + unknown_fields()
    return [
        dec_case("empty", b"", p),
        dec_case("succeeded no ops", ser(T(header=HEADER, succeeded=True)), p),
        dec_case(
            "one op of each kind",
            ser(
                T(
                    header=HEADER,
                    succeeded=True,
                    responses=[
                        Op(response_range=rng),
                        Op(response_put=put),
                        Op(response_delete_range=dele),
                        Op(response_txn=T(header=HEADER)),
                    ],
                )
            ),
            p,
        ),
        dec_case(
            "empty inner responses",
            b"".join(field_bytes(3, field_bytes(k, b"")) for k in (1, 2, 3, 4)),
            p,
        ),
        dec_case("nested depth 3", ser(T(header=HEADER, responses=[Op(response_txn=level2)])), p),
        dec_case("ResponseOp with unknown fields", field_bytes(3, op_unknown), p),
        dec_case(
            "ResponseOp last member wins",
            field_bytes(3, field_bytes(1, ser(rng)) + field_bytes(2, ser(put))),
            p,
        ),
        dec_case("unknown fields", ser(T(succeeded=True)) + unknown_fields(), p),
        dec_case("succeeded as varint 7", field_varint(2, 7), p),
    ]


def nested_txn_chain(depth: int) -> bytes:
    """A TxnResponse holding a chain of ``depth`` TxnResponses in all (itself included)."""
    data = b""
    for _ in range(depth - 1):
        data = field_bytes(3, field_bytes(4, data))
    return data


def compact_cases_dec() -> list[Case]:
    p = compact_parse
    C = rpc_pb2.CompactionResponse
    return [
        dec_case("empty", b"", p),
        dec_case("header", ser(C(header=HEADER)), p),
        dec_case("unknown fields", ser(C(header=HEADER)) + unknown_fields(), p),
    ]


# --------------------------------------------------------------------------- malformed inputs


def malformed_cases() -> list[Case]:
    """Inputs every decoder must reject with DecodeError (per fastetcd/_codec.pyi)."""
    all_decoders = [
        "decode_response_header",
        "decode_key_value",
        "decode_range_response",
        "decode_put_response",
        "decode_delete_range_response",
        "decode_txn_response",
        "decode_compaction_response",
    ]
    generic: list[tuple[str, bytes]] = [
        ("truncated tag", b"\x80"),
        ("truncated varint value", b"\xf8\x05\x80"),
        ("varint of 11 bytes", b"\xf8\x05" + b"\x80" * 10 + b"\x00"),
        ("10th varint byte > 1", b"\xf8\x05" + b"\xff" * 9 + b"\x02"),
        ("tag varint of 11 bytes", b"\x80" * 10 + b"\x01"),
        ("length past end", b"\xfa\x05\x05abc"),
        ("huge length", b"\xfa\x05" + b"\xff" * 9 + b"\x01"),
        ("truncated fixed64", b"\xf9\x05\x01\x02\x03"),
        ("truncated fixed32", b"\xfd\x05\x01"),
        ("start group", b"\xfb\x05\xfc\x05"),
        ("end group", b"\xfc\x05"),
        ("wire type 6", b"\xfe\x05\x00"),
        ("wire type 7", b"\xff\x05\x00"),
        ("field number 0 varint", b"\x00\x00"),
        ("field number 0 bytes", b"\x02\x00"),
        ("tag above 32 bits", varint(1 << 35 | 0) + b"\x00"),
    ]
    cases: list[Case] = []
    for fn in all_decoders:
        for name, data in generic:
            cases.append({"function": fn, "name": name, "hex": data.hex()})
    # A known field with the wrong wire type.
    wrong_type = {
        "decode_response_header": [field_bytes(1, b"x"), field_fixed64(3)],
        "decode_key_value": [field_varint(1, 1), field_varint(5, 1), field_bytes(2, b"")],
        "decode_range_response": [field_varint(1, 0), field_varint(2, 0), field_bytes(3, b"")],
        "decode_put_response": [field_varint(1, 0), field_fixed32(2)],
        "decode_delete_range_response": [field_bytes(2, b""), field_varint(3, 0)],
        "decode_txn_response": [field_varint(1, 0), field_bytes(2, b""), field_varint(3, 0)],
        "decode_compaction_response": [field_varint(1, 0)],
    }
    for fn, items in wrong_type.items():
        for data in items:
            cases.append(
                {"function": fn, "name": f"wrong wire type {data.hex()}", "hex": data.hex()}
            )
    header = ser(HEADER)
    nested: list[tuple[str, str, bytes]] = [
        ("decode_range_response", "truncated header", field_bytes(1, header[:-1])),
        (
            "decode_range_response",
            "kv sub-message overruns",
            field_bytes(2, b"\x0a\x05ab") + b"cdef",
        ),
        ("decode_range_response", "bad varint in kv", field_bytes(2, b"\x10\x80")),
        ("decode_range_response", "bad tag in kv", field_bytes(2, b"\x00\x00")),
        ("decode_put_response", "group in prev_kv", field_bytes(2, b"\x0b\x0c")),
        ("decode_delete_range_response", "bad header", field_bytes(1, b"\x08")),
        ("decode_txn_response", "ResponseOp with no response", field_bytes(3, b"")),
        (
            "decode_txn_response",
            "ResponseOp with only unknown fields",
            field_bytes(3, field_varint(9, 1)),
        ),
        ("decode_txn_response", "ResponseOp wrong wire type", field_bytes(3, field_varint(1, 0))),
        ("decode_txn_response", "bad inner range", field_bytes(3, field_bytes(1, b"\x12\x05"))),
        (
            "decode_txn_response",
            "bad op before good op",
            field_bytes(3, field_bytes(2, b"\x12\x01") + field_bytes(1, b"")),
        ),
        ("decode_txn_response", "txn chain of 33", nested_txn_chain(33)),
        ("decode_txn_response", "txn chain of 200", nested_txn_chain(200)),
        (
            "decode_txn_response",
            "empty op deep inside",
            field_bytes(3, field_bytes(4, field_bytes(3, b""))),
        ),
    ]
    for fn, name, data in nested:
        cases.append({"function": fn, "name": name, "hex": data.hex()})
    return cases


# --------------------------------------------------------------------------- main


def build() -> dict[str, Any]:
    encoders = {
        "prefix_range_end": prefix_cases(),
        "encode_range_request": range_cases(),
        "encode_put_request": put_cases(),
        "encode_get": get_cases(),
        "encode_put": put_user_cases(),
        "encode_delete_range_request": delete_cases(),
        "encode_compare": compare_cases(),
        "encode_request_op": request_op_cases(),
        "encode_txn_request": txn_cases(),
        "encode_compaction_request": compaction_cases(),
    }
    decoders = {
        "decode_response_header": header_cases(),
        "decode_key_value": kv_cases(),
        "decode_range_response": range_cases_dec(),
        "decode_put_response": put_cases_dec(),
        "decode_get_response": get_cases_dec(),
        "decode_delete_range_response": delete_cases_dec(),
        "decode_txn_response": txn_cases_dec()
        + [dec_case("txn chain of 32", nested_txn_chain(32), txn_parse)],
        "decode_compaction_response": compact_cases_dec(),
    }
    files: dict[str, Any] = {}
    for fn, cases in encoders.items():
        files[f"{fn}.json"] = {"function": fn, "kind": "encoder", "cases": cases}
    for fn, cases in decoders.items():
        files[f"{fn}.json"] = {"function": fn, "kind": "decoder", "cases": cases}
    files["malformed.json"] = {"kind": "malformed", "cases": malformed_cases()}
    files.update(watch_vectors())
    for name, content in files.items():
        names = [c["name"] for c in content["cases"] if "function" not in c]
        names += [f"{c['function']}:{c['name']}" for c in content["cases"] if "function" in c]
        assert len(names) == len(set(names)), f"duplicate case names in {name}"
    return files


def watch_vectors() -> dict[str, Any]:
    """The watch codec's vectors (``watch_*.json``, from scripts/gen_watch_vectors.py), so
    that regenerating and checking here covers every file in tests/vectors."""
    path = Path(__file__).resolve().with_name("gen_watch_vectors.py")
    spec = importlib.util.spec_from_file_location("gen_watch_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: dict[str, Any] = module.build()
    return built


def render(content: Any) -> str:
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any file would change")
    opts = parser.parse_args()
    files = build()
    stale = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(files.items()):
        path = OUT_DIR / name
        text = render(content)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not opts.check:
            path.write_text(text)
    if opts.check and stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("would update: " if opts.check else "updated: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
