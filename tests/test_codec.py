"""Tests of the KV/Txn codec, run on every implementation (pure twin and, when built, compiled).

Protobuf's runtime and the generated ``fastetcd._pb`` modules are the oracle throughout:
golden vectors in ``tests/vectors`` were produced with them (``scripts/gen_vectors.py``), and
the property tests compare every codec against ``SerializeToString``/``FromString`` directly.
Results of the two implementations are different classes, so they are compared through
:func:`plain`, which turns a result into nested tuples ``(class name, field, ...)``.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastetcd._pb import kv_pb2, rpc_pb2
from fastetcd.errors import DecodeError

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

DECODERS = [
    "decode_response_header",
    "decode_key_value",
    "decode_range_response",
    "decode_get_response",
    "decode_put_response",
    "decode_delete_range_response",
    "decode_txn_response",
    "decode_compaction_response",
]
PB_CLASS = {
    "decode_response_header": rpc_pb2.ResponseHeader,
    "decode_key_value": kv_pb2.KeyValue,
    "decode_range_response": rpc_pb2.RangeResponse,
    "decode_get_response": rpc_pb2.RangeResponse,
    "decode_put_response": rpc_pb2.PutResponse,
    "decode_delete_range_response": rpc_pb2.DeleteRangeResponse,
    "decode_txn_response": rpc_pb2.TxnResponse,
    "decode_compaction_response": rpc_pb2.CompactionResponse,
}

# Result class name -> field names in constructor order (fastetcd/_codec.pyi).
FIELDS: dict[str, tuple[str, ...]] = {
    "ResponseHeader": ("cluster_id", "member_id", "revision", "raft_term"),
    "KeyValue": ("key", "value", "create_revision", "mod_revision", "version", "lease"),
    "RangeResult": ("header", "kvs", "more", "count"),
    "PutResult": ("header", "prev_kv"),
    "DeleteResult": ("header", "deleted", "prev_kvs"),
    "TxnResult": ("header", "succeeded", "responses"),
    "CompactResult": ("header",),
}
BYTES_FIELDS = {"key", "value"}
BOOL_FIELDS = {"more", "succeeded"}
TUPLE_FIELDS = {"kvs", "prev_kvs", "responses"}

SLOW = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --------------------------------------------------------------------------- helpers


def plain(obj: Any) -> Any:
    """A result object as nested tuples ``(class name, field, ...)``; checks field types."""
    if obj is None:
        return None
    name = type(obj).__name__
    out: list[Any] = [name]
    for field in FIELDS[name]:
        value = getattr(obj, field)
        if field in BYTES_FIELDS:
            assert type(value) is bytes, (name, field, type(value))
            out.append(value)
        elif field in BOOL_FIELDS:
            assert type(value) is bool, (name, field, type(value))
            out.append(value)
        elif field in TUPLE_FIELDS:
            assert type(value) is tuple, (name, field, type(value))
            out.append(tuple(plain(v) for v in value))
        elif field in ("header", "prev_kv"):
            if field == "header":
                assert value is not None
            out.append(plain(value))
        else:
            assert type(value) is int, (name, field, type(value))
            out.append(value)
    return tuple(out)


def json_plain(expected: Any) -> Any:
    """A vector's expected JSON object in the same shape as :func:`plain`."""
    if expected is None:
        return None
    name = expected["type"]
    out: list[Any] = [name]
    for field in FIELDS[name]:
        value = expected[field]
        if field in BYTES_FIELDS:
            out.append(bytes.fromhex(value))
        elif field in TUPLE_FIELDS:
            out.append(tuple(json_plain(v) for v in value))
        elif isinstance(value, dict) or value is None:
            out.append(json_plain(value))
        else:
            out.append(value)
    return tuple(out)


def pb_result(fn: str, wire: bytes) -> Any:
    """protobuf's parse of ``wire`` in the shape decoder ``fn`` gives (decode_get_response
    returns a RangeResponse's first key-value, or None)."""
    msg = PB_CLASS[fn].FromString(wire)
    if fn == "decode_get_response":
        return pb_plain(msg.kvs[0]) if msg.kvs else None
    return pb_plain(msg)


def pb_plain(msg: Any) -> Any:
    """A parsed protobuf message in the shape :func:`plain` gives the codec's result."""
    full = msg.DESCRIPTOR.full_name
    if full == "etcdserverpb.ResponseHeader":
        return ("ResponseHeader", msg.cluster_id, msg.member_id, msg.revision, msg.raft_term)
    if full == "mvccpb.KeyValue":
        return (
            "KeyValue",
            msg.key,
            msg.value,
            msg.create_revision,
            msg.mod_revision,
            msg.version,
            msg.lease,
        )
    header = pb_plain(msg.header)
    if full == "etcdserverpb.RangeResponse":
        return ("RangeResult", header, tuple(map(pb_plain, msg.kvs)), msg.more, msg.count)
    if full == "etcdserverpb.PutResponse":
        prev = pb_plain(msg.prev_kv) if msg.HasField("prev_kv") else None
        return ("PutResult", header, prev)
    if full == "etcdserverpb.DeleteRangeResponse":
        return ("DeleteResult", header, msg.deleted, tuple(map(pb_plain, msg.prev_kvs)))
    if full == "etcdserverpb.TxnResponse":
        ops = tuple(pb_plain(getattr(op, op.WhichOneof("response"))) for op in msg.responses)
        return ("TxnResult", header, msg.succeeded, ops)
    if full == "etcdserverpb.CompactionResponse":
        return ("CompactResult", header)
    raise AssertionError(full)


def decode_outcome(fn: Callable[[bytes], Any], data: bytes) -> Any:
    """``plain`` of the decoded result, or the string "DecodeError"; anything else propagates."""
    try:
        return plain(fn(data))
    except DecodeError:
        return "DecodeError"


def varint(value: int) -> bytes:
    value &= UINT64_MAX
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(field: int, data: bytes) -> bytes:
    return varint((field << 3) | 2) + varint(len(data)) + data


def top_level_boundaries(data: bytes) -> set[int]:
    """Offsets in a well-formed message where a top-level field starts or the message ends."""
    pos = 0
    bounds = {0}
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        wire = tag & 7
        if wire == 0:
            pos = _read_varint(data, pos)[1]
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            pos += n
        else:
            raise AssertionError("vector is not well-formed")
        bounds.add(pos)
    assert pos == len(data)
    return bounds


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        content = json.loads(path.read_text())
        if content["kind"] == kind:
            out += [(content.get("function", ""), case) for case in content["cases"]]
    return out


def _arg(value: Any) -> Any:
    if isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(value, list):
        return [_arg(v) for v in value]
    return value


ENCODER_VECTORS = _load("encoder")
DECODER_VECTORS = _load("decoder")
MALFORMED_VECTORS = [(case["function"], case) for _, case in _load("malformed")]


def _ids(vectors: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{fn}:{case['name']}" for fn, case in vectors]


def stub_names() -> tuple[set[str], set[str], set[str]]:
    """(classes, functions, constants) declared in fastetcd/_codec.pyi."""
    tree = ast.parse((ROOT / "fastetcd" / "_codec.pyi").read_text())
    classes, functions, constants = set(), set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes.add(node.name)
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            constants.add(node.target.id)
        elif isinstance(node, ast.Assign):
            constants.update(
                t.id for t in node.targets if isinstance(t, ast.Name) and not t.id.startswith("_")
            )
    return classes, functions, constants


# --------------------------------------------------------------------------- interface


def test_vectors_present() -> None:
    assert len(ENCODER_VECTORS) > 80
    assert len(DECODER_VECTORS) > 60
    assert len(MALFORMED_VECTORS) > 100
    encoders = {fn for fn, _ in ENCODER_VECTORS}
    _, functions, _ = stub_names()
    # The user-argument checks and the whole-call planners (a Call around a vector-tested
    # encoder) are covered by tests/test_codec_args.py.
    user_arguments = {"to_bytes", "key_bytes", "int64", "check_timeout", "plan_get", "plan_put"}
    assert encoders | {fn for fn, _ in DECODER_VECTORS} == functions - user_arguments


def test_vectors_up_to_date() -> None:
    """Regenerating the vectors with the protobuf oracle gives exactly the committed files."""
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "scripts/gen_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    for name, content in module.build().items():
        assert (VECTORS / name).read_text() == module.render(content), name
    assert {p.name for p in VECTORS.glob("*.json")} == set(module.build())


def test_exports_every_stub_name(codec: ModuleType) -> None:
    classes, functions, constants = stub_names()
    for name in classes | functions:
        obj = getattr(codec, name)
        assert callable(obj), name
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
    method_paths = {"KV_RANGE", "KV_PUT"}  # of the calls the planners build
    for name in constants - {"OpResult"} - method_paths:
        assert type(getattr(codec, name)) is int, name
    for name in method_paths:
        assert getattr(codec, name).startswith("/etcdserverpb.KV/"), name
    assert hasattr(codec, "OpResult")


def test_pure_codec_imports_no_protobuf() -> None:
    """The twin is the no-compiler fallback: stdlib and fastetcd.errors only."""
    tree = ast.parse((ROOT / "fastetcd" / "_codec_py.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "collections.abc", "operator", "typing", "fastetcd.errors"}


def test_enum_values_match_protobuf(codec: ModuleType) -> None:
    rr, cmp = rpc_pb2.RangeRequest, rpc_pb2.Compare
    assert (codec.SORT_NONE, codec.SORT_ASCEND, codec.SORT_DESCEND) == (
        rr.NONE,
        rr.ASCEND,
        rr.DESCEND,
    )
    assert (
        codec.SORT_BY_KEY,
        codec.SORT_BY_VERSION,
        codec.SORT_BY_CREATE,
        codec.SORT_BY_MOD,
        codec.SORT_BY_VALUE,
    ) == (rr.KEY, rr.VERSION, rr.CREATE, rr.MOD, rr.VALUE)
    assert (codec.CMP_EQUAL, codec.CMP_GREATER, codec.CMP_LESS, codec.CMP_NOT_EQUAL) == (
        cmp.EQUAL,
        cmp.GREATER,
        cmp.LESS,
        cmp.NOT_EQUAL,
    )
    assert (
        codec.TARGET_VERSION,
        codec.TARGET_CREATE,
        codec.TARGET_MOD,
        codec.TARGET_VALUE,
        codec.TARGET_LEASE,
    ) == (cmp.VERSION, cmp.CREATE, cmp.MOD, cmp.VALUE, cmp.LEASE)
    fields = rpc_pb2.RequestOp.DESCRIPTOR.fields_by_name
    assert (codec.OP_RANGE, codec.OP_PUT, codec.OP_DELETE_RANGE, codec.OP_TXN) == (
        fields["request_range"].number,
        fields["request_put"].number,
        fields["request_delete_range"].number,
        fields["request_txn"].number,
    )


# --------------------------------------------------------------------------- golden vectors


@pytest.mark.parametrize(("fn", "case"), ENCODER_VECTORS, ids=_ids(ENCODER_VECTORS))
def test_encoder_vector(codec: ModuleType, fn: str, case: dict[str, Any]) -> None:
    out = getattr(codec, fn)(*_arg(case["args"]))
    assert type(out) is bytes
    assert out.hex() == case["hex"]


@pytest.mark.parametrize(("fn", "case"), DECODER_VECTORS, ids=_ids(DECODER_VECTORS))
def test_decoder_vector(codec: ModuleType, fn: str, case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expected = json_plain(case["expected"])
    decode = getattr(codec, fn)
    assert plain(decode(data)) == expected
    assert plain(decode(bytearray(data))) == expected
    assert plain(decode(memoryview(data))) == expected
    assert plain(decode(memoryview(b"\xff\xff" + data + b"\xff")[2:-1])) == expected


@pytest.mark.parametrize(("fn", "case"), MALFORMED_VECTORS, ids=_ids(MALFORMED_VECTORS))
def test_malformed_vector(codec: ModuleType, fn: str, case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        getattr(codec, fn)(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize(("fn", "case"), DECODER_VECTORS, ids=_ids(DECODER_VECTORS))
def test_truncated_everywhere(codec: ModuleType, fn: str, case: dict[str, Any]) -> None:
    """Cut at a top-level field boundary: a valid (shorter) message, equal to protobuf's
    parse; cut anywhere else: DecodeError."""
    data = bytes.fromhex(case["hex"])
    decode = getattr(codec, fn)
    bounds = top_level_boundaries(data)
    for cut in range(len(data)):
        prefix = data[:cut]
        if cut in bounds:
            assert plain(decode(prefix)) == pb_result(fn, prefix), cut
        else:
            with pytest.raises(DecodeError):
                decode(prefix)


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("fn", DECODERS)
def test_wire_errors_in_every_decoder(codec: ModuleType, fn: str) -> None:
    decode = getattr(codec, fn)
    bad = [
        b"\x80",  # truncated tag
        b"\xf8\x05",  # tag without value
        b"\xf8\x05" + b"\x80" * 10 + b"\x00",  # 11-byte varint
        b"\xf8\x05" + b"\xff" * 9 + b"\x7f",  # 10th byte > 1
        b"\xf8\x05" + b"\xff" * 9 + b"\x81\x00",  # 10th byte has a continuation bit
        b"\xfa\x05\x01",  # length past the end
        b"\xfa\x05\x80\x80\x80\x80\x10",  # 4 GiB length
        b"\xfb\x05",  # start group (field 95)
        b"\xfb\x05\xfc\x05",  # a whole (empty) group
        b"\x0b\x0c",  # group on field 1
        b"\xfc\x05",  # end group
        b"\xfe\x05",  # wire type 6
        b"\x07",  # wire type 7, field 0
        b"\x00\x01",  # field number 0
        b"\x05\x00\x00\x00\x00",  # field number 0, fixed32
        b"\x80\x00\x00",  # field number 0 with a non-canonical tag
        b"\xf9\x05" + b"\x00" * 7,  # fixed64 cut short
        b"\xfd\x05" + b"\x00" * 3,  # fixed32 cut short
    ]
    for data in bad:
        with pytest.raises(DecodeError):
            decode(data)
        with pytest.raises(DecodeError):  # after a valid unknown field, too
            decode(b"\xf8\x05\x01" + data)


def test_wrong_wire_type_in_nested_messages(codec: ModuleType) -> None:
    kv_bad = b"\x08\x01"  # KeyValue.key as a varint
    with pytest.raises(DecodeError):
        codec.decode_range_response(field_bytes(2, kv_bad))
    with pytest.raises(DecodeError):
        codec.decode_put_response(field_bytes(2, kv_bad))
    with pytest.raises(DecodeError):
        codec.decode_delete_range_response(field_bytes(3, kv_bad))
    with pytest.raises(DecodeError):
        codec.decode_compaction_response(field_bytes(1, b"\x1a\x00"))  # header.revision bytes
    op = field_bytes(1, field_bytes(2, kv_bad))
    with pytest.raises(DecodeError):
        codec.decode_txn_response(field_bytes(3, op))


IDS = [0, 1, 7, 129, 2**63 + 5, 2**63 + 5 + (1 << 30), 2**64 - 1, 2**64 - 2, 2**63 + 2**56]
IDS += [
    2**63,
    0x0102030405060708,
    0x0102030405060709,
    0x0202030405060708,
    2**55 + 1,
    2**55 + 1 + (1 << 21),
    2**55 + 2,
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            # pairs of ids whose varints have the same length and differ in one byte: the
            # first, a middle one or the last (lengths 8, 9 and 10, and shorter ones)
            st.sampled_from(IDS),
            st.sampled_from(IDS),
            st.integers(0, 2**63 - 1),
            st.integers(0, 2**64 - 1),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_headers_in_a_row_decode_as_protobuf_says(codec: ModuleType, rows: list[Any]) -> None:
    """Response headers decoded one after another, the cluster and member ids repeating or
    changing (the decoder compares an id's bytes with the last ones it read), some cut
    short inside an id: each decodes to what protobuf says, or raises DecodeError."""
    for cluster, member, revision, term, cut in rows:
        message = rpc_pb2.ResponseHeader(
            cluster_id=cluster, member_id=member, revision=revision, raft_term=term
        ).SerializeToString()
        id_length = len(rpc_pb2.ResponseHeader(cluster_id=cluster).SerializeToString()) - 1
        if cut and id_length > 1:  # end the message inside the cluster id's varint
            with pytest.raises(DecodeError):
                codec.decode_response_header(message[: 1 + min(cut, id_length - 1)])
            continue
        header = codec.decode_response_header(message)
        assert (header.cluster_id, header.member_id, header.revision, header.raft_term) == (
            cluster,
            member,
            revision,
            term,
        )


def test_response_op_must_have_a_response(codec: ModuleType) -> None:
    with pytest.raises(DecodeError):
        codec.decode_txn_response(field_bytes(3, b""))
    with pytest.raises(DecodeError):
        codec.decode_txn_response(field_bytes(3, b"\x28\x01"))  # only an unknown field
    ok = codec.decode_txn_response(field_bytes(3, b"\x28\x01" + field_bytes(2, b"")))
    assert plain(ok.responses[0]) == ("PutResult", ("ResponseHeader", 0, 0, 0, 0), None)


def test_repeated_singular_message_last_wins(codec: ModuleType) -> None:
    """The spec's one deliberate difference from protobuf (which would merge the two)."""
    first = rpc_pb2.ResponseHeader(revision=1, cluster_id=9).SerializeToString()
    second = rpc_pb2.ResponseHeader(member_id=2).SerializeToString()
    two_headers = field_bytes(1, first) + field_bytes(1, second)
    for fn in DECODERS[2:]:
        if fn == "decode_get_response":  # returns no header
            continue
        assert plain(getattr(codec, fn)(two_headers))[1] == ("ResponseHeader", 0, 2, 0, 0)
    kv1 = kv_pb2.KeyValue(key=b"a", lease=5).SerializeToString()
    kv2 = kv_pb2.KeyValue(value=b"b").SerializeToString()
    put = codec.decode_put_response(field_bytes(2, kv1) + field_bytes(2, kv2))
    assert plain(put.prev_kv) == ("KeyValue", b"", b"b", 0, 0, 0, 0)
    # Same oneof member twice in a ResponseOp: the last one, not a merge.
    rng1 = rpc_pb2.RangeResponse(count=3).SerializeToString()
    rng2 = rpc_pb2.RangeResponse(more=True).SerializeToString()
    txn = codec.decode_txn_response(field_bytes(3, field_bytes(1, rng1) + field_bytes(1, rng2)))
    assert (txn.responses[0].count, txn.responses[0].more) == (0, True)
    # Scalars: the last value wins, as in protobuf.
    assert codec.decode_response_header(b"\x18\x01\x18\x02").revision == 2


def txn_chain(depth: int) -> bytes:
    """A TxnResponse with ``depth`` TxnResponses on its nesting path, itself included."""
    data = b""
    for _ in range(depth - 1):
        data = field_bytes(3, field_bytes(4, data))
    return data


def test_nesting_depth(codec: ModuleType) -> None:
    result = codec.decode_txn_response(txn_chain(32))
    depth = 1
    while result.responses:
        result = result.responses[0]
        depth += 1
    assert depth == 32
    for depth in (33, 34, 100, 2000):
        with pytest.raises(DecodeError):
            codec.decode_txn_response(txn_chain(depth))
    # Deep nesting inside a txn that is itself fine at every level but the last.
    with pytest.raises(DecodeError):
        codec.decode_txn_response(txn_chain(40) + b"\x10\x01")


def test_huge_tags(codec: ModuleType) -> None:
    """Field numbers up to 2**29-1 (a 32-bit tag) are skipped; a wider tag is malformed, as
    protobuf's parser has it."""
    largest = varint(((1 << 29) - 1) << 3) + b"\x01"
    assert plain(codec.decode_key_value(largest)) == ("KeyValue", b"", b"", 0, 0, 0, 0)
    for fn in DECODERS:
        with pytest.raises(DecodeError):
            getattr(codec, fn)(varint(1 << 32) + b"\x01")
        with pytest.raises(DecodeError):
            getattr(codec, fn)(varint(UINT64_MAX) + b"\x01")


def test_decode_rejects_non_bytes_like(codec: ModuleType) -> None:
    for fn in DECODERS:
        for bad in (None, 12, "abc", [1, 2]):
            with pytest.raises(TypeError):
                getattr(codec, fn)(bad)


# --------------------------------------------------------------------------- encoder errors

GOOD_ARGS: dict[str, list[Any]] = {
    "encode_range_request": [b"k", b"", 0, 0, 0, 0, False, False, False, 0, 0, 0, 0],
    "encode_put_request": [b"k", b"v", 0, False, False, False],
    "encode_delete_range_request": [b"k", b"", False],
    "encode_compare": [0, 0, b"k", b"", 0],
    "encode_request_op": [1, b""],
    "encode_txn_request": [[], [], []],
    "encode_compaction_request": [0, False],
}
BYTES_ARGS = {
    "encode_range_request": [0, 1],
    "encode_put_request": [0, 1],
    "encode_delete_range_request": [0, 1],
    "encode_compare": [2, 3],
    "encode_request_op": [1],
}
INT64_ARGS = {
    "encode_range_request": [2, 3, 9, 10, 11, 12],
    "encode_put_request": [2],
    "encode_compare": [4],
    "encode_compaction_request": [0],
}
ENUM_ARGS = {"encode_range_request": [4, 5], "encode_compare": [0]}


def _call_with(codec: ModuleType, fn: str, index: int, value: Any) -> Any:
    args = list(GOOD_ARGS[fn])
    args[index] = value
    return getattr(codec, fn)(*args)


@pytest.mark.parametrize(("fn", "index"), [(f, i) for f, ix in BYTES_ARGS.items() for i in ix])
def test_encoder_bytes_args_type(codec: ModuleType, fn: str, index: int) -> None:
    for bad in ("k", None, 1, bytearray(b"k"), memoryview(b"k"), [1]):
        with pytest.raises(TypeError):
            _call_with(codec, fn, index, bad)


@pytest.mark.parametrize(
    ("fn", "index"), [(f, i) for d in (INT64_ARGS, ENUM_ARGS) for f, ix in d.items() for i in ix]
)
def test_encoder_int_args(codec: ModuleType, fn: str, index: int) -> None:
    for bad in ("1", b"1", None, 1.0, 1.5, [1]):
        with pytest.raises(TypeError):
            _call_with(codec, fn, index, bad)
    enum = index in ENUM_ARGS.get(fn, [])
    low, high = (INT32_MIN, INT32_MAX) if enum else (INT64_MIN, INT64_MAX)
    for bad_int in (high + 1, low - 1, 1 << 64, -(1 << 64), 1 << 100):
        with pytest.raises(OverflowError):
            _call_with(codec, fn, index, bad_int)
    # The boundaries themselves are fine (and True counts as the int 1, as in Python).
    assert _call_with(codec, fn, index, high) != _call_with(codec, fn, index, low)
    assert _call_with(codec, fn, index, True) == _call_with(codec, fn, index, 1)


def test_encode_compare_operand(codec: ModuleType) -> None:
    for target in (0, 1, 2, 4):
        for bad in (b"1", "1", None, 1.0, bytearray(b"1")):
            with pytest.raises(TypeError):
                codec.encode_compare(0, target, b"k", b"", bad)
    for bad in (1, 0, None, "v", bytearray(b"v")):
        with pytest.raises(TypeError):
            codec.encode_compare(0, codec.TARGET_VALUE, b"k", b"", bad)
    for target in (-1, 5, 7, 100):
        with pytest.raises(ValueError):
            codec.encode_compare(0, target, b"k", b"", 0)
    with pytest.raises((ValueError, OverflowError)):
        codec.encode_compare(0, 1 << 40, b"k", b"", 0)
    with pytest.raises(TypeError):
        codec.encode_compare(0, "0", b"k", b"", 0)
    with pytest.raises(OverflowError):
        codec.encode_compare(0, 0, b"k", b"", INT64_MAX + 1)


def test_encode_request_op_kind(codec: ModuleType) -> None:
    for kind in (0, -1, 5, 64):
        with pytest.raises(ValueError):
            codec.encode_request_op(kind, b"")
    with pytest.raises((ValueError, OverflowError)):
        codec.encode_request_op(1 << 40, b"")
    for bad in ("1", None, 1.0):
        with pytest.raises(TypeError):
            codec.encode_request_op(bad, b"")


def test_encode_txn_request_elements(codec: ModuleType) -> None:
    for position in range(3):
        for bad in (["x"], [None], [1], [bytearray(b"x")], [b"ok", "x"]):
            args: list[Any] = [[], [], []]
            args[position] = bad
            with pytest.raises(TypeError):
                codec.encode_txn_request(*args)
    assert codec.encode_txn_request((b"a",), (b"",), [b"b"]) == b"\x0a\x01a\x12\x00\x1a\x01b"


def test_prefix_range_end_type(codec: ModuleType) -> None:
    for bad in ("a", None, bytearray(b"a"), 1):
        with pytest.raises(TypeError):
            codec.prefix_range_end(bad)


# --------------------------------------------------------------------------- result classes


def sample_results(codec: ModuleType) -> list[Any]:
    h = codec.ResponseHeader(1, UINT64_MAX, -1, 3)
    kv = codec.KeyValue(b"k\x00", b"\xff", 1, 2, 3, INT64_MIN)
    rng = codec.RangeResult(h, (kv, codec.KeyValue(b"x")), True, 7)
    put = codec.PutResult(h, kv)
    dele = codec.DeleteResult(h, 2, (kv,))
    txn = codec.TxnResult(h, True, (rng, put, dele, codec.TxnResult(h)))
    return [h, kv, rng, put, codec.PutResult(h), dele, txn, codec.CompactResult(h)]


def test_result_constructors_and_defaults(codec: ModuleType) -> None:
    h = codec.ResponseHeader()
    assert plain(h) == ("ResponseHeader", 0, 0, 0, 0)
    assert plain(codec.KeyValue()) == ("KeyValue", b"", b"", 0, 0, 0, 0)
    hp = plain(h)
    assert plain(codec.RangeResult(h)) == ("RangeResult", hp, (), False, 0)
    assert plain(codec.PutResult(h)) == ("PutResult", hp, None)
    assert plain(codec.DeleteResult(h)) == ("DeleteResult", hp, 0, ())
    assert plain(codec.TxnResult(h)) == ("TxnResult", hp, False, ())
    assert plain(codec.CompactResult(h)) == ("CompactResult", hp)
    kv = codec.KeyValue(b"a", b"b", 1, 2, 3, 4)
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (
        b"a",
        b"b",
        1,
        2,
        3,
        4,
    )


def test_results_are_immutable(codec: ModuleType) -> None:
    for obj in sample_results(codec):
        for field in FIELDS[type(obj).__name__]:
            before = getattr(obj, field)
            with pytest.raises(AttributeError):
                setattr(obj, field, before)
            with pytest.raises(AttributeError):
                delattr(obj, field)
            assert getattr(obj, field) == before
        with pytest.raises(AttributeError):
            obj.some_new_attribute = 1
        assert not hasattr(obj, "__dict__")


def test_results_equality_and_hash(codec: ModuleType) -> None:
    first, second = sample_results(codec), sample_results(codec)
    for a, b in zip(first, second):
        assert a is not b
        assert a == b and not (a != b)
        assert hash(a) == hash(b)
        assert len({a, b}) == 1
    for i, a in enumerate(first):
        for j, b in enumerate(first):
            assert (a == b) == (i == j)
    h = codec.ResponseHeader(1, 2, 3, 4)
    assert h != codec.ResponseHeader(1, 2, 3, 5)
    assert codec.KeyValue(b"k") != codec.KeyValue(b"k", b"v")
    assert h.__eq__((1, 2, 3, 4)) is NotImplemented
    assert h != (1, 2, 3, 4)
    assert h.__eq__(codec.KeyValue()) is NotImplemented
    assert codec.PutResult(h) != codec.CompactResult(h)


def test_results_of_different_codecs_differ(codecs: list[ModuleType]) -> None:
    for a in codecs:
        for b in codecs:
            if a is not b:
                assert a.ResponseHeader(1, 2, 3, 4) != b.ResponseHeader(1, 2, 3, 4)


def test_results_pickle_and_copy(codec: ModuleType) -> None:
    for obj in sample_results(codec):
        cls, fields = obj.__reduce__()
        assert cls is type(obj)
        assert type(fields) is tuple
        assert fields == tuple(getattr(obj, f) for f in FIELDS[type(obj).__name__])
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            back = pickle.loads(pickle.dumps(obj, protocol))
            assert type(back) is type(obj) and back == obj
        assert copy.copy(obj) == obj
        assert copy.deepcopy(obj) == obj


def test_results_repr(codec: ModuleType) -> None:
    h = codec.ResponseHeader(1, 2, -3, 4)
    assert repr(h) == "ResponseHeader(cluster_id=1, member_id=2, revision=-3, raft_term=4)"
    kv = codec.KeyValue(b"k\x00", b"v", 1, 2, 3, 4)
    assert repr(kv) == (
        "KeyValue(key=b'k\\x00', value=b'v', create_revision=1, mod_revision=2, version=3, lease=4)"
    )
    assert repr(codec.RangeResult(h, (kv,), True, 1)) == (
        f"RangeResult(header={h!r}, kvs=({kv!r},), more=True, count=1)"
    )
    assert repr(codec.PutResult(h)) == f"PutResult(header={h!r}, prev_kv=None)"
    dele = codec.DeleteResult(h, 1, ())
    assert repr(dele) == f"DeleteResult(header={h!r}, deleted=1, prev_kvs=())"
    assert repr(codec.TxnResult(h, False, (codec.PutResult(h, kv),))) == (
        f"TxnResult(header={h!r}, succeeded=False, "
        f"responses=(PutResult(header={h!r}, prev_kv={kv!r}),))"
    )
    assert repr(codec.CompactResult(h)) == f"CompactResult(header={h!r})"
    # repr evaluates back to an equal object.
    names = {name: getattr(codec, name) for name in FIELDS}
    for obj in sample_results(codec):
        assert eval(repr(obj), names) == obj


def test_decoded_equals_constructed(codec: ModuleType) -> None:
    kv = kv_pb2.KeyValue(key=b"k", value=b"v", create_revision=1, mod_revision=2, version=3)
    assert codec.decode_key_value(kv.SerializeToString()) == codec.KeyValue(b"k", b"v", 1, 2, 3, 0)
    data = rpc_pb2.PutResponse(prev_kv=kv).SerializeToString()
    assert codec.decode_put_response(data) == codec.PutResult(
        codec.ResponseHeader(), codec.KeyValue(b"k", b"v", 1, 2, 3)
    )
    result = codec.decode_range_response(b"")
    assert result.header == codec.ResponseHeader(0, 0, 0, 0)
    assert result.kvs == () and result.more is False and result.count == 0


def test_prefix_range_end_spec(codec: ModuleType) -> None:
    f = codec.prefix_range_end
    assert f(b"a") == b"b"
    assert f(b"a\xff") == b"b"
    assert f(b"\xff\xff") == b"\x00"
    assert f(b"") == b"\x00"
    assert f(b"a\xff\x00") == b"a\xff\x01"


# --------------------------------------------------------------------------- strategies

i64 = st.one_of(
    st.sampled_from([0, 1, -1, 127, 128, INT64_MIN, INT64_MAX, 1 << 62, -(1 << 62)]),
    st.integers(-1000, 1000),
    st.integers(INT64_MIN, INT64_MAX),
)
u64 = st.one_of(
    st.sampled_from([0, 1, UINT64_MAX, 1 << 63, (1 << 63) - 1]), st.integers(0, UINT64_MAX)
)
enum32 = st.one_of(st.integers(0, 4), st.integers(INT32_MIN, INT32_MAX))
data_bytes = st.one_of(st.binary(max_size=12), st.binary(max_size=300))
flag = st.booleans()


@st.composite
def unknown_fields(draw: st.DrawFn) -> bytes:
    """Zero to three fields with numbers no etcd message here uses (>= 7), of wire types
    0, 1, 2, 5."""
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.one_of(st.integers(7, 40), st.integers(7, (1 << 29) - 1)))
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        out += varint((field << 3) | wire)
        if wire == 0:
            out += varint(draw(u64))
        elif wire == 1:
            out += draw(st.binary(min_size=8, max_size=8))
        elif wire == 5:
            out += draw(st.binary(min_size=4, max_size=4))
        else:
            payload = draw(st.binary(max_size=20))
            out += varint(len(payload)) + payload
    return out


def with_unknown(draw: st.DrawFn, msg: Any) -> Any:
    """``msg`` re-parsed with unknown fields appended (protobuf keeps and re-emits them)."""
    extra = draw(unknown_fields())
    if extra:
        msg = type(msg).FromString(msg.SerializeToString() + extra)
    return msg


@st.composite
def pb_header(draw: st.DrawFn) -> rpc_pb2.ResponseHeader:
    msg = rpc_pb2.ResponseHeader(
        cluster_id=draw(u64), member_id=draw(u64), revision=draw(i64), raft_term=draw(u64)
    )
    return with_unknown(draw, msg)


@st.composite
def pb_kv(draw: st.DrawFn) -> kv_pb2.KeyValue:
    msg = kv_pb2.KeyValue(
        key=draw(data_bytes),
        value=draw(data_bytes),
        create_revision=draw(i64),
        mod_revision=draw(i64),
        version=draw(i64),
        lease=draw(i64),
    )
    return with_unknown(draw, msg)


def _header_kw(draw: st.DrawFn) -> dict[str, Any]:
    header = draw(st.none() | pb_header())
    return {} if header is None else {"header": header}


@st.composite
def pb_range_response(draw: st.DrawFn) -> rpc_pb2.RangeResponse:
    msg = rpc_pb2.RangeResponse(
        kvs=draw(st.lists(pb_kv(), max_size=4)),
        more=draw(flag),
        count=draw(i64),
        **_header_kw(draw),
    )
    return with_unknown(draw, msg)


@st.composite
def pb_put_response(draw: st.DrawFn) -> rpc_pb2.PutResponse:
    prev = draw(st.none() | pb_kv())
    msg = rpc_pb2.PutResponse(**_header_kw(draw))
    if prev is not None:
        msg.prev_kv.CopyFrom(prev)
    return with_unknown(draw, msg)


@st.composite
def pb_delete_response(draw: st.DrawFn) -> rpc_pb2.DeleteRangeResponse:
    msg = rpc_pb2.DeleteRangeResponse(
        deleted=draw(i64), prev_kvs=draw(st.lists(pb_kv(), max_size=3)), **_header_kw(draw)
    )
    return with_unknown(draw, msg)


@st.composite
def pb_txn_response(draw: st.DrawFn, depth: int = 1) -> rpc_pb2.TxnResponse:
    """A TxnResponse with at most 3 TxnResponses on any nesting path (``depth`` is this one's)."""
    kinds = ["response_range", "response_put", "response_delete_range"]
    if depth < 3:
        kinds.append("response_txn")
    ops = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(kinds))
        inner = draw(
            {
                "response_range": pb_range_response(),
                "response_put": pb_put_response(),
                "response_delete_range": pb_delete_response(),
                "response_txn": pb_txn_response(depth + 1),
            }[kind]
        )
        ops.append(with_unknown(draw, rpc_pb2.ResponseOp(**{kind: inner})))
    msg = rpc_pb2.TxnResponse(succeeded=draw(flag), responses=ops, **_header_kw(draw))
    return with_unknown(draw, msg)


@st.composite
def pb_compaction_response(draw: st.DrawFn) -> rpc_pb2.CompactionResponse:
    return with_unknown(draw, rpc_pb2.CompactionResponse(**_header_kw(draw)))


PB_STRATEGY: dict[str, st.SearchStrategy[Any]] = {
    "decode_response_header": pb_header(),
    "decode_key_value": pb_kv(),
    "decode_range_response": pb_range_response(),
    "decode_get_response": pb_range_response(),
    "decode_put_response": pb_put_response(),
    "decode_delete_range_response": pb_delete_response(),
    "decode_txn_response": pb_txn_response(),
    "decode_compaction_response": pb_compaction_response(),
}


@st.composite
def pb_range_request(draw: st.DrawFn) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=draw(data_bytes),
        range_end=draw(data_bytes),
        limit=draw(i64),
        revision=draw(i64),
        sort_order=draw(enum32),
        sort_target=draw(enum32),
        serializable=draw(flag),
        keys_only=draw(flag),
        count_only=draw(flag),
        min_mod_revision=draw(i64),
        max_mod_revision=draw(i64),
        min_create_revision=draw(i64),
        max_create_revision=draw(i64),
    )


@st.composite
def pb_put_request(draw: st.DrawFn) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=draw(data_bytes),
        value=draw(data_bytes),
        lease=draw(i64),
        prev_kv=draw(flag),
        ignore_value=draw(flag),
        ignore_lease=draw(flag),
    )


@st.composite
def pb_delete_request(draw: st.DrawFn) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(
        key=draw(data_bytes), range_end=draw(data_bytes), prev_kv=draw(flag)
    )


UNION_FIELD = ["version", "create_revision", "mod_revision", "value", "lease"]


@st.composite
def pb_compare(draw: st.DrawFn) -> rpc_pb2.Compare:
    target = draw(st.integers(0, 4))
    operand = draw(data_bytes if target == 3 else i64)
    return rpc_pb2.Compare(
        result=draw(enum32),
        target=target,
        key=draw(data_bytes),
        range_end=draw(data_bytes),
        **{UNION_FIELD[target]: operand},
    )


@st.composite
def pb_txn_request(draw: st.DrawFn, depth: int = 1) -> rpc_pb2.TxnRequest:
    """A TxnRequest with at most 3 TxnRequests on any nesting path."""
    kinds = ["request_range", "request_put", "request_delete_range"]
    if depth < 3:
        kinds.append("request_txn")

    def ops() -> list[rpc_pb2.RequestOp]:
        out = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(kinds))
            inner = draw(
                {
                    "request_range": pb_range_request(),
                    "request_put": pb_put_request(),
                    "request_delete_range": pb_delete_request(),
                    "request_txn": pb_txn_request(depth + 1),
                }[kind]
            )
            out.append(rpc_pb2.RequestOp(**{kind: inner}))
        return out

    return rpc_pb2.TxnRequest(
        compare=draw(st.lists(pb_compare(), max_size=3)), success=ops(), failure=ops()
    )


# --------------------------------------------------------------------------- encoders: codec
# calls built from a protobuf message's fields


def encode_range(codec: ModuleType, m: rpc_pb2.RangeRequest) -> bytes:
    out: bytes = codec.encode_range_request(
        m.key,
        m.range_end,
        m.limit,
        m.revision,
        m.sort_order,
        m.sort_target,
        m.serializable,
        m.keys_only,
        m.count_only,
        m.min_mod_revision,
        m.max_mod_revision,
        m.min_create_revision,
        m.max_create_revision,
    )
    return out


def encode_put(codec: ModuleType, m: rpc_pb2.PutRequest) -> bytes:
    out: bytes = codec.encode_put_request(
        m.key, m.value, m.lease, m.prev_kv, m.ignore_value, m.ignore_lease
    )
    return out


def encode_delete(codec: ModuleType, m: rpc_pb2.DeleteRangeRequest) -> bytes:
    out: bytes = codec.encode_delete_range_request(m.key, m.range_end, m.prev_kv)
    return out


def encode_cmp(codec: ModuleType, m: rpc_pb2.Compare) -> bytes:
    operand = getattr(m, UNION_FIELD[m.target])
    out: bytes = codec.encode_compare(m.result, m.target, m.key, m.range_end, operand)
    return out


def encode_txn(codec: ModuleType, m: rpc_pb2.TxnRequest) -> bytes:
    def op(o: rpc_pb2.RequestOp) -> bytes:
        kind = o.WhichOneof("request")
        inner = getattr(o, kind)
        encoder = {
            "request_range": (codec.OP_RANGE, encode_range),
            "request_put": (codec.OP_PUT, encode_put),
            "request_delete_range": (codec.OP_DELETE_RANGE, encode_delete),
            "request_txn": (codec.OP_TXN, encode_txn),
        }[kind]
        out: bytes = codec.encode_request_op(encoder[0], encoder[1](codec, inner))
        return out

    out: bytes = codec.encode_txn_request(
        [encode_cmp(codec, c) for c in m.compare],
        [op(o) for o in m.success],
        tuple(op(o) for o in m.failure),
    )
    return out


# --------------------------------------------------------------------------- properties


@FAST
@given(msg=pb_range_request())
def test_prop_encode_range(codec: ModuleType, msg: rpc_pb2.RangeRequest) -> None:
    assert encode_range(codec, msg) == msg.SerializeToString()


@FAST
@given(msg=pb_put_request())
def test_prop_encode_put(codec: ModuleType, msg: rpc_pb2.PutRequest) -> None:
    assert encode_put(codec, msg) == msg.SerializeToString()


@FAST
@given(msg=pb_delete_request())
def test_prop_encode_delete(codec: ModuleType, msg: rpc_pb2.DeleteRangeRequest) -> None:
    assert encode_delete(codec, msg) == msg.SerializeToString()


@FAST
@given(msg=pb_compare())
def test_prop_encode_compare(codec: ModuleType, msg: rpc_pb2.Compare) -> None:
    assert encode_cmp(codec, msg) == msg.SerializeToString()


@FAST
@given(revision=i64, physical=flag)
def test_prop_encode_compaction(codec: ModuleType, revision: int, physical: bool) -> None:
    expected = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
    assert codec.encode_compaction_request(revision, physical) == expected.SerializeToString()


@FAST
@given(prefix=st.binary(max_size=8) | st.binary(max_size=8).map(lambda b: b + b"\xff" * 3))
def test_prop_prefix_range_end(codec: ModuleType, prefix: bytes) -> None:
    end = codec.prefix_range_end(prefix)
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        assert end == b"\x00"
    else:
        # The smallest key greater than every key starting with ``prefix``.
        assert end > prefix and not end.startswith(prefix)
        assert end == stripped[:-1] + bytes([stripped[-1] + 1])


@SLOW
@given(msg=pb_txn_request())
def test_prop_encode_txn(codec: ModuleType, msg: rpc_pb2.TxnRequest) -> None:
    """Nested txns (depth <= 3) built from codec calls equal protobuf's serialization."""
    assert encode_txn(codec, msg) == msg.SerializeToString()


@FAST
@given(args=st.tuples(st.lists(data_bytes, max_size=3), st.lists(data_bytes, max_size=3),
                      st.lists(data_bytes, max_size=3)))  # fmt: skip
def test_prop_encode_txn_raw_elements(
    codecs: list[ModuleType], args: tuple[list[bytes], list[bytes], list[bytes]]
) -> None:
    """Elements are copied as opaque length-delimited fields, whatever their content."""
    expected = b"".join(field_bytes(i + 1, e) for i, items in enumerate(args) for e in items)
    for codec in codecs:
        assert codec.encode_txn_request(*args) == expected


wide_int = st.one_of(
    i64,
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([INT64_MAX + 1, INT64_MIN - 1, INT32_MAX + 1, INT32_MIN - 1]),
)
any_arg = st.one_of(
    wide_int, data_bytes, flag, st.none(), st.text(max_size=2), st.floats(allow_nan=False)
)


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except (TypeError, ValueError, OverflowError) as exc:
        return type(exc).__name__


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_prop_encoders_agree_on_any_args(codecs: list[ModuleType], data: st.DataObject) -> None:
    """Valid or not, every codec gives the same bytes or raises the same exception type."""
    fn = data.draw(st.sampled_from(sorted(GOOD_ARGS)))
    args = list(GOOD_ARGS[fn])
    for i in data.draw(st.lists(st.integers(0, len(args) - 1), max_size=3)):
        args[i] = data.draw(any_arg if fn != "encode_txn_request" else st.lists(any_arg))
    outcomes = {repr(outcome(getattr(c, fn), *args)) for c in codecs}
    assert len(outcomes) == 1, (fn, args, outcomes)


@SLOW
@given(data=st.data())
def test_prop_decode_matches_protobuf(codec: ModuleType, data: st.DataObject) -> None:
    """Random valid messages (nested txns, unknown fields anywhere) decode to protobuf's
    parse of the same bytes."""
    fn = data.draw(st.sampled_from(DECODERS))
    msg = data.draw(PB_STRATEGY[fn])
    wire = msg.SerializeToString()
    expected = pb_result(fn, wire)
    assert fn == "decode_get_response" or expected == pb_plain(msg)
    assert plain(getattr(codec, fn)(wire)) == expected


@SLOW
@given(msg=pb_txn_response())
def test_prop_decode_txn_matches_protobuf(codec: ModuleType, msg: rpc_pb2.TxnResponse) -> None:
    wire = msg.SerializeToString()
    assert plain(codec.decode_txn_response(wire)) == pb_plain(rpc_pb2.TxnResponse.FromString(wire))


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=64))
def test_prop_random_bytes(codecs: list[ModuleType], data: bytes) -> None:
    """Any bytes: every codec returns equal results or every codec raises DecodeError."""
    for fn in DECODERS:
        outcomes = [decode_outcome(getattr(c, fn), data) for c in codecs]
        assert all(o == outcomes[0] for o in outcomes), (fn, data.hex(), outcomes)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    fn = draw(st.sampled_from(DECODERS))
    wire = bytearray(draw(PB_STRATEGY[fn]).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, len(wire)))
        if op == "insert" or not wire:
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == "truncate":
            del wire[pos:]
        elif op == "dup":
            stop = draw(st.integers(pos, len(wire)))
            wire[pos:pos] = wire[pos:stop]
        else:
            pos = min(pos, len(wire) - 1)
            if op == "flip":
                wire[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                wire[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12]))
            else:
                del wire[pos]
    return fn, bytes(wire)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=mutated())
def test_prop_mutated_messages(codecs: list[ModuleType], case: tuple[str, bytes]) -> None:
    """Mutated valid encodings: all codecs agree (equal results, or all DecodeError)."""
    fn, data = case
    outcomes = [decode_outcome(getattr(c, fn), data) for c in codecs]
    assert all(o == outcomes[0] for o in outcomes), (fn, data.hex(), outcomes)


def iter_results(result: Any) -> Iterator[Any]:
    yield result
    for field in FIELDS[type(result).__name__]:
        value = getattr(result, field)
        if isinstance(value, tuple):
            for item in value:
                yield from iter_results(item)
        elif type(value).__name__ in FIELDS:
            yield from iter_results(value)


@SLOW
@given(msg=pb_txn_response())
def test_prop_decoded_results_hash_pickle(codec: ModuleType, msg: rpc_pb2.TxnResponse) -> None:
    result = codec.decode_txn_response(msg.SerializeToString())
    again = codec.decode_txn_response(msg.SerializeToString())
    assert result == again and hash(result) == hash(again)
    assert pickle.loads(pickle.dumps(result)) == result
    for part in iter_results(result):
        assert hash(part) == hash(copy.deepcopy(part))
