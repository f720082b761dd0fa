"""Tests of the watch core (``fastetcd._watch`` and its pure twin ``fastetcd._watch_py``), with no
server: the codec against golden vectors made with the protobuf oracle
(``scripts/gen_watch_vectors.py``) and against protobuf and each other by property tests; the
state machine by scripted streams and, twin against twin, by random ones.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastetcd import _codec_py
from fastetcd._pb import kv_pb2, rpc_pb2
from fastetcd._retry_py import Backoff
from fastetcd.errors import (
    CancelledError,
    CompactedError,
    DecodeError,
    EtcdError,
    InternalError,
    InvalidAuthTokenError,
    NoLeaderError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
    UnknownError,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _impls() -> list[tuple[str, ModuleType]]:
    impls = [("pure", importlib.import_module("fastetcd._watch_py"))]
    try:
        impls.append(("compiled", importlib.import_module("fastetcd._watch")))
    except ImportError:
        if os.environ.get("FASTETCD_REQUIRE_EXTENSIONS"):
            raise
    return impls


IMPLS = _impls()


@pytest.fixture(params=[m for _, m in IMPLS], ids=[n for n, _ in IMPLS])
def wc(request: pytest.FixtureRequest) -> ModuleType:
    """Each watch core in turn (pure twin, compiled)."""
    return request.param  # type: ignore[no-any-return]


SLOW = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FAST = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --------------------------------------------------------------------------- shapes

FIELDS: dict[str, tuple[str, ...]] = {
    "ResponseHeader": ("cluster_id", "member_id", "revision", "raft_term"),
    "KeyValue": ("key", "value", "create_revision", "mod_revision", "version", "lease"),
    "Event": ("type", "kv", "prev_kv"),
    "WatchResponse": (
        "header",
        "watch_id",
        "created",
        "canceled",
        "compact_revision",
        "cancel_reason",
        "fragment",
        "events",
    ),
}
BYTES_FIELDS = {"key", "value"}
BOOL_FIELDS = {"created", "canceled", "fragment"}


def plain(obj: Any) -> Any:
    """A result as nested tuples ``(class name, field, ...)``, checking field types."""
    if obj is None:
        return None
    name = type(obj).__name__
    out: list[Any] = [name]
    for field in FIELDS[name]:
        value = getattr(obj, field)
        if field in BYTES_FIELDS:
            assert type(value) is bytes, (name, field)
            out.append(value)
        elif field in BOOL_FIELDS:
            assert type(value) is bool, (name, field)
            out.append(value)
        elif field == "cancel_reason":
            assert type(value) is str
            out.append(value)
        elif field == "events":
            assert type(value) is tuple
            out.append(tuple(plain(v) for v in value))
        elif field in ("header", "kv", "prev_kv"):
            out.append(plain(value))
        elif field == "type":
            assert isinstance(value, int)
            if value in (0, 1):
                assert type(value).__name__ == "EventType", value
            else:
                assert type(value) is int
            out.append(int(value))
        else:
            assert type(value) is int, (name, field, type(value))
            out.append(value)
    return tuple(out)


def json_plain(expected: Any) -> Any:
    if expected is None:
        return None
    name = expected["type"]
    out: list[Any] = [name]
    for field in FIELDS[name]:
        value = expected["event_type" if (name, field) == ("Event", "type") else field]
        if field in BYTES_FIELDS:
            out.append(bytes.fromhex(value))
        elif field == "events":
            out.append(tuple(json_plain(v) for v in value))
        elif isinstance(value, dict) or value is None:
            out.append(json_plain(value))
        else:
            out.append(value)
    return tuple(out)


def pb_plain(msg: Any) -> Any:
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
    if full == "mvccpb.Event":
        prev = pb_plain(msg.prev_kv) if msg.HasField("prev_kv") else None
        return ("Event", msg.type, pb_plain(msg.kv), prev)
    if full == "etcdserverpb.WatchResponse":
        return (
            "WatchResponse",
            pb_plain(msg.header),
            msg.watch_id,
            msg.created,
            msg.canceled,
            msg.compact_revision,
            msg.cancel_reason,
            msg.fragment,
            tuple(pb_plain(e) for e in msg.events),
        )
    raise AssertionError(full)


PB_CLASS = {"decode_event": kv_pb2.Event, "decode_watch_response": rpc_pb2.WatchResponse}
DECODERS = list(PB_CLASS)


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        result = fn(*args)
    except (DecodeError, TypeError, OverflowError, ValueError) as exc:
        return type(exc).__name__
    return plain(result) if not isinstance(result, bytes) else result


# --------------------------------------------------------------------------- vectors


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(VECTORS.glob("watch_*.json")):
        content = json.loads(path.read_text())
        if content["kind"] == kind:
            out += [
                (case.get("function", content.get("function", "")), case)
                for case in content["cases"]
            ]
    return out


def _arg(value: Any) -> Any:
    if isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(value, list):
        return [_arg(v) for v in value]
    return value


ENCODER_VECTORS = _load("watch_encoder")
DECODER_VECTORS = _load("watch_decoder")
MALFORMED_VECTORS = _load("watch_malformed")


def _ids(vectors: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{fn}:{case['name']}" for fn, case in vectors]


def stub_names() -> tuple[set[str], set[str], set[str]]:
    """Public (classes, functions, constants) declared in fastetcd/_watch.pyi."""
    tree = ast.parse((ROOT / "fastetcd" / "_watch.pyi").read_text())
    classes, functions, constants = set(), set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            classes.add(node.name)
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            constants.add(node.target.id)
    return classes, functions, constants


def test_vectors_present() -> None:
    assert len(ENCODER_VECTORS) >= 30
    assert len(DECODER_VECTORS) >= 45
    assert len(MALFORMED_VECTORS) >= 50
    _, functions, _ = stub_names()
    assert {fn for fn, _ in ENCODER_VECTORS + DECODER_VECTORS} == functions


def test_vectors_up_to_date() -> None:
    """Regenerating with the protobuf oracle gives exactly the committed files."""
    path = ROOT / "scripts" / "gen_watch_vectors.py"
    spec = importlib.util.spec_from_file_location("gen_watch_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    built = module.build()
    for name, content in built.items():
        assert (VECTORS / name).read_text() == module.render(content), name
    assert {p.name for p in VECTORS.glob("watch_*.json")} == set(built)


def test_exports_every_stub_name(wc: ModuleType) -> None:
    classes, functions, constants = stub_names()
    for name in classes | functions:
        obj = getattr(wc, name)
        assert callable(obj), name
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
    for name in constants:
        assert type(getattr(wc, name)) is int, name
    assert set(wc.__all__) == classes | functions | constants


def test_pure_twin_imports_no_protobuf() -> None:
    tree = ast.parse((ROOT / "fastetcd" / "_watch_py.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not any("google" in m or "_pb" in m or "grpc" in m for m in imported), imported


def test_constants_match_protobuf(wc: ModuleType) -> None:
    assert wc.FILTER_NOPUT == rpc_pb2.WatchCreateRequest.NOPUT
    assert wc.FILTER_NODELETE == rpc_pb2.WatchCreateRequest.NODELETE
    assert wc.EventType.PUT == kv_pb2.Event.PUT
    assert wc.EventType.DELETE == kv_pb2.Event.DELETE
    assert wc.PROGRESS_WATCH_ID == -1
    assert wc.DEFAULT_MAX_BUFFERED_BYTES > 1 << 20


@pytest.mark.parametrize(("fn", "case"), ENCODER_VECTORS, ids=_ids(ENCODER_VECTORS))
def test_encoder_vector(wc: ModuleType, fn: str, case: dict[str, Any]) -> None:
    out = getattr(wc, fn)(*_arg(case["args"]))
    assert type(out) is bytes
    assert out.hex() == case["hex"]


@pytest.mark.parametrize(("fn", "case"), DECODER_VECTORS, ids=_ids(DECODER_VECTORS))
def test_decoder_vector(wc: ModuleType, fn: str, case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expected = json_plain(case["expected"])
    decode = getattr(wc, fn)
    assert plain(decode(data)) == expected
    assert plain(decode(bytearray(data))) == expected
    assert plain(decode(memoryview(b"\xff" + data + b"\xff")[1:-1])) == expected
    assert plain(decode(memoryview(data + data)[::2].obj[: len(data)])) == expected


@pytest.mark.parametrize(("fn", "case"), MALFORMED_VECTORS, ids=_ids(MALFORMED_VECTORS))
def test_malformed_vector(wc: ModuleType, fn: str, case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        getattr(wc, fn)(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize(("fn", "case"), DECODER_VECTORS, ids=_ids(DECODER_VECTORS))
def test_every_prefix(wc: ModuleType, fn: str, case: dict[str, Any]) -> None:
    """Every prefix of a valid message decodes like protobuf or raises DecodeError where
    protobuf fails too (a cut inside a field)."""
    data = bytes.fromhex(case["hex"])
    decode = getattr(wc, fn)
    for cut in range(0, len(data), max(1, len(data) // 200)):
        prefix = data[:cut]
        try:
            expected = pb_plain(PB_CLASS[fn].FromString(prefix))
        except Exception:
            with pytest.raises(DecodeError):
                decode(prefix)
        else:
            assert plain(decode(prefix)) == expected, cut


def test_decode_rejects_non_bytes_like(wc: ModuleType) -> None:
    for fn in DECODERS:
        for bad in (None, 12, "abc", [1, 2]):
            with pytest.raises(TypeError):
                getattr(wc, fn)(bad)


def test_kv_classes_are_the_codecs(wc: ModuleType) -> None:
    data = rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(revision=3),
        events=[kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k"), prev_kv=kv_pb2.KeyValue())],
    ).SerializeToString()
    r = wc.decode_watch_response(data)
    codec = _codec_py if wc.__name__.endswith("_py") else importlib.import_module("fastetcd._codec")
    assert type(r.header) is codec.ResponseHeader
    assert type(r.events[0].kv) is codec.KeyValue
    assert type(r.events[0].prev_kv) is codec.KeyValue


# --------------------------------------------------------------------------- encoder arguments

CREATE_GOOD: list[Any] = [b"k", b"", 0, False, [], False, 0, False]


def _create_with(wc: ModuleType, index: int, value: Any) -> bytes:
    args = list(CREATE_GOOD)
    args[index] = value
    return wc.encode_watch_create_request(*args)  # type: ignore[no-any-return]


def test_encoder_argument_errors(wc: ModuleType) -> None:
    for index in (0, 1):
        for bad in ("k", None, 1, bytearray(b"k"), memoryview(b"k")):
            with pytest.raises(TypeError):
                _create_with(wc, index, bad)
    for index in (2, 6):
        for bad in ("1", None, 1.0, [1]):
            with pytest.raises(TypeError):
                _create_with(wc, index, bad)
        for big in (INT64_MAX + 1, INT64_MIN - 1, 1 << 100):
            with pytest.raises(OverflowError):
                _create_with(wc, index, big)
        assert _create_with(wc, index, True) == _create_with(wc, index, 1)
    for bad_filters in (None, 1, b"\x00", "ab", [None], [1.0], ["x"]):
        with pytest.raises(TypeError):
            _create_with(wc, 4, bad_filters)
    for big in ([INT32_MAX + 1], [INT32_MIN - 1]):
        with pytest.raises(OverflowError):
            _create_with(wc, 4, big)
    assert (
        _create_with(wc, 4, (1, 0))
        == _create_with(wc, 4, [1, 0])
        == _create_with(wc, 4, iter([1, 0]))
    )
    for bad in ("1", None, 1.5):
        with pytest.raises(TypeError):
            wc.encode_watch_cancel_request(bad)
    with pytest.raises(OverflowError):
        wc.encode_watch_cancel_request(INT64_MAX + 1)


# --------------------------------------------------------------------------- result classes


def sample(wc: ModuleType) -> Any:
    kv = wc.decode_event(kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k")).SerializeToString()).kv
    header = type(kv)  # placeholder to get at the codec module's classes
    codec = sys.modules[header.__module__]
    h = codec.ResponseHeader(1, 2, 3, 4)
    ev = wc.Event(wc.EventType.DELETE, codec.KeyValue(b"a", b"b", 1, 2, 3, 4), None)
    return h, ev, wc.WatchResponse(h, 5, True, False, 0, "r", False, (ev,))


def test_constructors_and_defaults(wc: ModuleType) -> None:
    h, ev, resp = sample(wc)
    assert (ev.type, ev.prev_kv) == (wc.EventType.DELETE, None)
    assert resp.events == (ev,) and resp.watch_id == 5 and resp.created
    empty = wc.WatchResponse(h)
    assert plain(empty) == ("WatchResponse", plain(h), 0, False, False, 0, "", False, ())
    assert wc.Event(0, ev.kv) == wc.Event(0, ev.kv, None)
    assert wc.Event(type=1, kv=ev.kv, prev_kv=ev.kv).prev_kv is ev.kv


def test_immutable(wc: ModuleType) -> None:
    _, ev, resp = sample(wc)
    for obj, field in ((ev, "kv"), (ev, "type"), (resp, "events"), (resp, "header")):
        with pytest.raises(AttributeError):
            setattr(obj, field, None)
        with pytest.raises(AttributeError):
            delattr(obj, field)
    with pytest.raises(AttributeError):
        ev.other = 1


def test_equality_hash_pickle_repr(wc: ModuleType) -> None:
    h, ev, resp = sample(wc)
    again = wc.WatchResponse(h, 5, True, False, 0, "r", False, (wc.Event(1, ev.kv),))
    assert resp == again and hash(resp) == hash(again) and not resp != again
    assert resp != wc.WatchResponse(h, 6, True, False, 0, "r", False, (ev,))
    assert ev != ev.kv and (ev == object()) is False
    for obj in (ev, resp):
        assert pickle.loads(pickle.dumps(obj)) == obj
        assert copy.deepcopy(obj) == obj
    assert repr(ev).startswith("Event(type=<EventType.DELETE: 1>, kv=KeyValue(key=b'a'")
    assert repr(resp).startswith("WatchResponse(header=ResponseHeader(cluster_id=1")
    assert "events=(Event(" in repr(resp)


def test_twins_are_different_classes() -> None:
    if len(IMPLS) < 2:
        pytest.skip("compiled watch core not built")
    (_, pure), (_, compiled) = IMPLS
    a, b = sample(pure)[1], sample(compiled)[1]
    assert a != b and plain(a) == plain(b)


def test_is_progress_notify(wc: ModuleType) -> None:
    h, ev, _ = sample(wc)
    codec = sys.modules[type(h).__module__]
    assert wc.WatchResponse(h).is_progress_notify is True
    assert wc.WatchResponse(codec.ResponseHeader()).is_progress_notify is False
    assert wc.WatchResponse(h, created=True).is_progress_notify is False
    assert wc.WatchResponse(h, canceled=True).is_progress_notify is False
    assert wc.WatchResponse(h, compact_revision=3).is_progress_notify is False
    assert wc.WatchResponse(h, events=(ev,)).is_progress_notify is False


# --------------------------------------------------------------------------- property tests

i64 = st.integers(INT64_MIN, INT64_MAX)
small_bytes = st.binary(max_size=20)


@st.composite
def pb_kv(draw: st.DrawFn) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=draw(small_bytes),
        value=draw(st.binary(max_size=300)),
        create_revision=draw(i64 | st.integers(0, 300)),
        mod_revision=draw(i64 | st.integers(0, 300)),
        version=draw(i64 | st.integers(0, 3)),
        lease=draw(i64 | st.just(0)),
    )


@st.composite
def pb_event(draw: st.DrawFn) -> kv_pb2.Event:
    ev = kv_pb2.Event(type=draw(st.sampled_from([0, 1, 0, 2, -1, INT32_MAX])))
    if draw(st.booleans()):
        ev.kv.CopyFrom(draw(pb_kv()))
    if draw(st.booleans()):
        ev.prev_kv.CopyFrom(draw(pb_kv()))
    return ev


@st.composite
def pb_response(draw: st.DrawFn) -> rpc_pb2.WatchResponse:
    r = rpc_pb2.WatchResponse(
        watch_id=draw(i64 | st.integers(-1, 5)),
        created=draw(st.booleans()),
        canceled=draw(st.booleans()),
        compact_revision=draw(i64 | st.just(0)),
        cancel_reason=draw(st.text(max_size=10)),
        fragment=draw(st.booleans()),
        events=draw(st.lists(pb_event(), max_size=6)),
    )
    if draw(st.booleans()):
        r.header.CopyFrom(
            rpc_pb2.ResponseHeader(
                cluster_id=draw(st.integers(0, (1 << 64) - 1)),
                member_id=draw(st.integers(0, (1 << 64) - 1)),
                revision=draw(i64),
                raft_term=draw(st.integers(0, (1 << 64) - 1)),
            )
        )
    return r


@SLOW
@given(msg=pb_response())
def test_prop_decode_matches_protobuf(wc: ModuleType, msg: rpc_pb2.WatchResponse) -> None:
    wire = msg.SerializeToString()
    assert plain(wc.decode_watch_response(wire)) == pb_plain(rpc_pb2.WatchResponse.FromString(wire))


@SLOW
@given(msg=pb_event())
def test_prop_decode_event_matches_protobuf(wc: ModuleType, msg: kv_pb2.Event) -> None:
    wire = msg.SerializeToString()
    assert plain(wc.decode_event(wire)) == pb_plain(kv_pb2.Event.FromString(wire))


@SLOW
@given(
    key=small_bytes,
    end=small_bytes,
    rev=i64,
    progress=st.booleans(),
    filters=st.lists(st.integers(INT32_MIN, INT32_MAX) | st.sampled_from([0, 1]), max_size=5),
    prev_kv=st.booleans(),
    watch_id=i64,
    fragment=st.booleans(),
)
def test_prop_encode_create_matches_protobuf(
    wc: ModuleType,
    key: bytes,
    end: bytes,
    rev: int,
    progress: bool,
    filters: list[int],
    prev_kv: bool,
    watch_id: int,
    fragment: bool,
) -> None:
    expected = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(
            key=key,
            range_end=end,
            start_revision=rev,
            progress_notify=progress,
            filters=filters,
            prev_kv=prev_kv,
            watch_id=watch_id,
            fragment=fragment,
        )
    ).SerializeToString()
    got = wc.encode_watch_create_request(
        key, end, rev, progress, filters, prev_kv, watch_id, fragment
    )
    assert got == expected


@FAST
@given(watch_id=i64)
def test_prop_encode_cancel_matches_protobuf(wc: ModuleType, watch_id: int) -> None:
    expected = rpc_pb2.WatchRequest(
        cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id)
    ).SerializeToString()
    assert wc.encode_watch_cancel_request(watch_id) == expected


any_arg = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.binary(max_size=4)
    | st.text(max_size=3)
    | st.floats(allow_nan=False)
    | st.lists(st.integers(-3, 3), max_size=3)
)


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_prop_twins_agree_on_any_encoder_args(data: st.DataObject) -> None:
    args = list(CREATE_GOOD)
    for i in data.draw(st.lists(st.integers(0, len(args) - 1), max_size=3)):
        args[i] = data.draw(any_arg)
    outcomes = {repr(outcome(m.encode_watch_create_request, *args)) for _, m in IMPLS}
    assert len(outcomes) == 1, (args, outcomes)


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=64))
def test_prop_random_bytes(data: bytes) -> None:
    for fn in DECODERS:
        outcomes = [outcome(getattr(m, fn), data) for _, m in IMPLS]
        assert all(o == outcomes[0] for o in outcomes), (fn, data.hex(), outcomes)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(pb_response()).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(wire)))
        if op == "insert" or not wire:
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == "truncate":
            del wire[pos:]
        else:
            pos = min(pos, len(wire) - 1)
            if op == "flip":
                wire[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                wire[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x5A, 0x32]))
            else:
                del wire[pos]
    return bytes(wire)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutated())
def test_prop_mutated_messages(data: bytes) -> None:
    outcomes = [outcome(m.decode_watch_response, data) for _, m in IMPLS]
    assert all(o == outcomes[0] for o in outcomes), (data.hex(), outcomes)


# --------------------------------------------------------------------------- state machine

H = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, raft_term=3)


def resp(
    watch_id: int = 0,
    revision: int = 10,
    created: bool = False,
    canceled: bool = False,
    compact_revision: int = 0,
    cancel_reason: str = "",
    fragment: bool = False,
    revs: tuple[int, ...] = (),
    key: bytes = b"k",
) -> bytes:
    header = rpc_pb2.ResponseHeader()
    header.CopyFrom(H)
    header.revision = revision
    return rpc_pb2.WatchResponse(
        header=header,
        watch_id=watch_id,
        created=created,
        canceled=canceled,
        compact_revision=compact_revision,
        cancel_reason=cancel_reason,
        fragment=fragment,
        events=[
            kv_pb2.Event(kv=kv_pb2.KeyValue(key=key, value=b"v%d" % r, mod_revision=r))
            for r in revs
        ],
    ).SerializeToString()


def parse_requests(requests: list[bytes]) -> list[tuple[Any, ...]]:
    """Requests as (kind, fields...) tuples via protobuf."""
    out: list[tuple[Any, ...]] = []
    for data in requests:
        msg = rpc_pb2.WatchRequest.FromString(data)
        which = msg.WhichOneof("request_union")
        if which == "create_request":
            c = msg.create_request
            out.append(("create", c.key, c.start_revision))
        elif which == "cancel_request":
            out.append(("cancel", msg.cancel_request.watch_id))
        else:
            out.append(("progress",))
    return out


class Script:
    """Drives a WatchCore like a driver would, recording what it asks for."""

    def __init__(self, wc: ModuleType, **kw: Any) -> None:
        self.wc = wc
        self.backoff = Backoff(0.001, 2.0, 0.1)
        self.core = wc.WatchCore(self.backoff, **kw)

    def add(self, key: bytes = b"k", start: int = 0, **kw: Any) -> Any:
        return self.core.add(
            key,
            kw.get("range_end", b""),
            start,
            kw.get("progress_notify", False),
            kw.get("filters", ()),
            kw.get("prev_kv", False),
            kw.get("fragment", False),
        )

    def sent(self) -> list[tuple[Any, ...]]:
        return parse_requests(self.core.take_requests())

    def feed(self, data: bytes) -> list[Any]:
        self.core.feed(data)
        return self.core.take_woken()

    def drain(self, watcher: Any) -> list[Any]:
        out = []
        while (r := self.core.pop(watcher)) is not None:
            out.append(r)
        return out


def revisions(responses: list[Any]) -> list[int]:
    return [e.kv.mod_revision for r in responses for e in r.events]


def test_creates_are_serialized_and_resumed(wc: ModuleType) -> None:
    s = Script(wc)
    a, b, c = s.add(b"a"), s.add(b"b", 5), s.add(b"c")
    assert s.sent() == [] and not s.core.connected and s.core.active == 3
    s.core.on_connect()
    assert s.sent() == [("create", b"a", 0)]
    assert s.feed(resp(0, revision=7, created=True)) == [a]
    assert s.sent() == [("create", b"b", 5)]
    s.feed(resp(1, revision=7, created=True))
    assert s.sent() == [("create", b"c", 0)]
    s.feed(resp(2, revision=8, created=True))
    assert s.sent() == []
    assert (a.watch_id, b.watch_id, c.watch_id) == (0, 1, 2)
    assert (a.next_revision, b.next_revision, c.next_revision) == (8, 5, 9)
    [created] = s.drain(a)
    assert created.created and created.header.revision == 7
    s.feed(resp(1, revision=9, revs=(5, 6)))
    s.feed(resp(0, revision=9, revs=(9,)))
    assert (a.next_revision, b.next_revision) == (10, 7)
    assert revisions(s.drain(b)) == [5, 6]
    # The stream breaks: every live watch is created again from its resume point, in order.
    assert s.core.on_disconnect(UnavailableError("gone")) == pytest.approx(0.001)
    assert (a.watch_id, b.watch_id) == (-1, -1) and not s.core.connected
    s.core.on_connect()
    assert s.sent() == [("create", b"a", 10)]
    s.feed(resp(4, revision=12, created=True))  # not delivered again
    assert s.sent() == [("create", b"b", 7)]
    assert revisions(s.drain(a)) == [9]  # buffered before the break, kept
    s.feed(resp(5, revision=12, created=True))
    assert s.sent() == [("create", b"c", 9)]
    s.feed(resp(6, revision=12, created=True))
    s.feed(resp(4, revision=12, revs=(11,)))
    assert revisions(s.drain(a)) == [11] and a.watch_id == 4


def test_backoff_grows_until_a_response(wc: ModuleType) -> None:
    s = Script(wc)
    s.add()
    delays = [s.core.on_disconnect(UnavailableError()) for _ in range(4)]
    assert delays == pytest.approx([0.001, 0.002, 0.004, 0.008])
    s.core.on_connect()
    s.feed(resp(0, created=True))
    assert s.core.on_disconnect(None) == pytest.approx(0.001)


def test_no_repeats_and_progress_rules(wc: ModuleType) -> None:
    s = Script(wc)
    w = s.add(start=20)
    s.core.on_connect()
    s.sent()
    s.feed(resp(3, revision=25, created=True))
    assert w.next_revision == 20
    s.feed(resp(3, revision=25, revs=(19, 20, 20, 21)))  # 19 is below the resume point
    assert w.next_revision == 22
    s.feed(resp(3, revision=25, revs=(21, 22)))  # 21 was delivered already
    got = s.drain(w)
    assert revisions(got) == [20, 20, 21, 22]
    # A progress notification for this watch moves the resume point (never backwards).
    s.feed(resp(3, revision=30))
    assert w.next_revision == 31
    s.feed(resp(3, revision=5))
    assert w.next_revision == 31
    # One for the whole stream (request_progress; watch id -1) is delivered but does not.
    s.feed(resp(-1, revision=40))
    assert w.next_revision == 31
    last = s.drain(w)
    assert [r.is_progress_notify for r in last] == [True, True, True]
    assert [r.header.revision for r in last] == [30, 5, 40]
    s.core.request_progress()
    assert s.sent() == [("progress",)]
    s.core.on_disconnect(UnavailableError())
    s.core.request_progress()
    assert s.core.take_requests() == []


def test_fragments_are_joined(wc: ModuleType) -> None:
    s = Script(wc)
    w = s.add(start=1, fragment=True)
    s.core.on_connect()
    s.feed(resp(0, created=True))
    s.drain(w)
    assert s.feed(resp(0, revision=9, fragment=True, revs=(1, 2))) == []
    s.feed(resp(0, revision=9, fragment=True, revs=(3,)))
    s.feed(resp(0, revision=9, revs=(4, 5)))
    [joined] = s.drain(w)
    assert revisions([joined]) == [1, 2, 3, 4, 5] and not joined.fragment
    assert w.fragments == 3 and w.next_revision == 6
    # A break between fragments drops the partial response: it is replayed after resuming.
    s.feed(resp(0, revision=9, fragment=True, revs=(6,)))
    s.core.on_disconnect(UnavailableError())
    s.core.on_connect()
    assert s.sent() == [("create", b"k", 6)]


def test_compaction_ends_the_watch_after_its_responses(wc: ModuleType) -> None:
    s = Script(wc)
    w = s.add(start=2)
    s.core.on_connect()
    s.feed(resp(0, created=True))
    s.feed(resp(0, revs=(2, 3)))
    s.feed(resp(0, canceled=True, compact_revision=50))
    assert w.done and s.core.active == 0
    assert isinstance(w.error, CompactedError) and w.error.compact_revision == 50
    assert "4" in str(w.error)  # the resume point that was compacted
    assert [len(r.events) for r in s.drain(w)] == [0, 2]
    s.feed(resp(0, revs=(60,)))  # late response for the canceled id: ignored, not re-canceled
    assert s.sent() == [("create", b"k", 2)]


def test_server_refusals(wc: ModuleType) -> None:
    s = Script(wc)
    a, b, c = s.add(b"a"), s.add(b"b"), s.add(b"c")
    s.core.on_connect()
    s.feed(resp(-1, created=True, canceled=True, cancel_reason="etcdserver: permission denied"))
    assert isinstance(a.error, PermissionDeniedError)
    s.feed(resp(-1, created=True, canceled=True, cancel_reason="something else"))
    assert type(b.error) is UnknownError and b.error.details == "something else"
    s.feed(resp(7, created=True))
    s.feed(resp(7, canceled=True))
    assert type(c.error) is CancelledError
    assert s.core.active == 0


def test_cancel(wc: ModuleType) -> None:
    s = Script(wc)
    a, b = s.add(b"a"), s.add(b"b")
    s.core.cancel(b)  # never sent: nothing to cancel on the server
    s.core.on_connect()
    assert s.sent() == [("create", b"a", 0)]
    s.core.cancel(a)  # its create is in flight: canceled once it is created
    assert a.done and a.error is None and s.core.active == 0
    s.feed(resp(3, created=True))
    assert s.sent() == [("cancel", 3)]
    assert s.drain(a) == []
    c = s.add(b"c")
    assert s.sent() == [("create", b"c", 0)]
    s.feed(resp(4, created=True, revision=3))
    s.feed(resp(4, revs=(4,)))
    s.core.cancel(c)
    assert s.sent() == [("cancel", 4)] and s.drain(c) == [] and c in s.core.take_woken()
    s.feed(resp(4, revs=(5,)))  # already canceling: no second cancel
    s.feed(resp(9, revs=(5,)))  # unknown watch: canceled once
    s.feed(resp(9, revs=(6,)))
    assert s.sent() == [("cancel", 9)]
    s.feed(resp(11, created=True))  # a created response nobody asked for
    assert s.sent() == [("cancel", 11)]
    # Canceled while its create was in flight, then refused by the server: it stays canceled.
    d = s.add(b"d")
    assert s.sent() == [("create", b"d", 0)]
    s.core.cancel(d)
    s.feed(resp(-1, created=True, canceled=True, cancel_reason="etcdserver: permission denied"))
    assert d.done and d.error is None and s.sent() == []


@pytest.mark.parametrize(
    ("error", "require_leader", "resumed"),
    [
        (None, False, True),
        (UnavailableError("x"), False, True),
        (UnavailableError("x"), True, True),
        (NoLeaderError("etcdserver: no leader"), False, True),
        (NoLeaderError("etcdserver: no leader"), True, False),
        (InternalError("x"), False, True),
        (CancelledError("x"), False, True),
        (DecodeError("x"), False, False),
        (InvalidAuthTokenError("x"), False, False),
        (ResourceExhaustedError("x"), False, False),
    ],
)
def test_stream_errors(
    wc: ModuleType, error: EtcdError | None, require_leader: bool, resumed: bool
) -> None:
    s = Script(wc, require_leader=require_leader)
    w = s.add()
    s.core.on_connect()
    s.feed(resp(0, created=True))
    delay = s.core.on_disconnect(error)
    assert (delay is not None) == resumed
    assert w.done != resumed
    if not resumed:
        assert w.error is error and w in s.core.take_woken()
        assert len(s.drain(w)) == 1  # what was received before the error is kept


def test_fail_and_decode_error(wc: ModuleType) -> None:
    s = Script(wc)
    w = s.add()
    s.core.on_connect()
    with pytest.raises(DecodeError):
        s.core.feed(b"\x80")
    assert not w.done
    s.core.fail(UnavailableError("no stream"))
    assert w.done and isinstance(w.error, UnavailableError) and s.core.active == 0


def _batch_stream() -> list[bytes]:
    """A stream's responses for two watches: created ones, events (one repeat), a progress
    notification, fragments joined by the next response, a cancel for an unknown id."""
    return [
        resp(0, revision=4, created=True),
        resp(1, revision=4, created=True),
        resp(0, revs=(5, 6)),
        resp(1, revs=(5,)),
        resp(0, revs=(6, 7)),  # 6 is a repeat: dropped
        resp(-1, revision=9),  # progress for the whole stream
        resp(1, revs=(8,), fragment=True),
        resp(1, revs=(9,)),
        resp(7, revs=(3,)),  # unknown watch id: canceled
    ]


def test_feed_many_is_feed_in_turn(wc: ModuleType) -> None:
    """feed_many applies a batch as feed would, message by message: the same buffers, the
    same decisions, the same requests, each watcher woken for each response."""
    messages = _batch_stream()
    results = []
    for batches in ([[m] for m in messages], [messages[:3], messages[3:8], messages[8:]]):
        s = Script(wc)
        ws = [s.add(b"a"), s.add(b"b")]
        s.core.on_connect()
        s.sent()
        woken: list[int] = []
        requests: list[Any] = []
        for batch in batches:
            s.core.feed_many(batch)
            woken += [ws.index(w) for w in s.core.take_woken()]
            requests += s.sent()
        drained = [s.drain(w) for w in ws]
        results.append(
            (
                woken,
                requests,
                [[plain(r) for r in d] for d in drained],
                [revisions(d) for d in drained],
                [(w.next_revision, w.fragments, w.watch_id) for w in ws],
            )
        )
    assert results[0] == results[1]
    woken, requests, _, revs, state = results[1]
    assert revs == [[5, 6, 7], [5, 8, 9]]
    assert requests == [("create", b"b", 0), ("cancel", 7)]
    assert woken == [0, 1, 0, 1, 0, 0, 1, 1]
    assert state == [(8, 0, 0), (10, 2, 1)]  # stream-wide progress moves no resume point
    assert s.core.feed_many([]) is None and s.core.take_woken() == []


def test_feed_many_decode_error_after_the_responses_before_it(wc: ModuleType) -> None:
    """A malformed message in a batch: the responses before it are applied, it and those
    after it are not, and DecodeError is raised (the driver then ends the stream)."""
    s = Script(wc)
    w = s.add(b"a")
    s.core.on_connect()
    s.feed(resp(0, revision=4, created=True))
    assert len(s.drain(w)) == 1
    with pytest.raises(DecodeError):
        s.core.feed_many([resp(0, revs=(5,)), resp(0, revs=(6,)), b"\x80", resp(0, revs=(7,))])
    assert revisions(s.drain(w)) == [5, 6]
    assert w.next_revision == 7 and not w.done
    with pytest.raises(TypeError):
        s.core.feed_many([resp(0, revs=(7,)), "not bytes"])
    assert revisions(s.drain(w)) == [7]
    with pytest.raises(TypeError):
        s.core.feed_many(None)
    s.core.feed_many(iter([memoryview(resp(0, revs=(8,))), bytearray(resp(0, revs=(9,)))]))
    assert revisions(s.drain(w)) == [8, 9]


def test_event_iterator(wc: ModuleType) -> None:
    """EventIterator flattens the responses a callable returns into their events, skipping
    responses without events, until the callable raises StopIteration."""
    responses = [
        wc.decode_watch_response(data)
        for data in (
            resp(0, created=True),
            resp(0, revs=(5, 6)),
            resp(0, revision=9),
            resp(0, revs=(7,)),
        )
    ]
    it = wc.EventIterator(iter(responses).__next__)
    assert iter(it) is it
    assert [e.kv.mod_revision for e in it] == [5, 6, 7]
    assert next(it, None) is None
    assert list(wc.EventIterator(iter(()).__next__)) == []
    with pytest.raises(TypeError):
        wc.EventIterator(None)
    bad = wc.EventIterator(iter(["not a response"]).__next__)
    with pytest.raises(TypeError):
        next(bad)

    def broken() -> Any:
        raise CompactedError("gone", compact_revision=3)

    mixed = wc.EventIterator(iter([responses[1]]).__next__)
    assert [e.kv.mod_revision for e in mixed] == [5, 6]
    with pytest.raises(CompactedError):
        next(wc.EventIterator(broken))


def test_buffer_limit_pauses_reading(wc: ModuleType) -> None:
    s = Script(wc, max_buffered_bytes=2000)
    assert s.core.max_buffered_bytes == 2000
    w = s.add(start=1)
    s.core.on_connect()
    s.feed(resp(0, created=True))
    n = 0
    while not s.core.paused:
        n += 1
        s.feed(resp(0, revs=(n,)))
    assert n > 1 and w.buffered == n + 1 and w.buffered_bytes > 2000
    while s.core.paused:
        assert s.core.pop(w) is not None
    assert w.buffered_bytes <= 2000
    s.feed(resp(0, revs=(n + 1,), key=b"x" * 5000))  # one response may exceed the limit
    assert s.core.paused
    s.core.cancel(w)  # canceling drops the buffer
    assert not s.core.paused and w.buffered == 0 and w.buffered_bytes == 0
    with pytest.raises(ValueError):
        wc.WatchCore(Backoff(0, 1, 0), max_buffered_bytes=0)


def test_watcher_attributes(wc: ModuleType) -> None:
    s = Script(wc)
    w = s.add(b"k", 3, range_end=b"l")
    assert (w.key, w.range_end, w.start_revision, w.next_revision) == (b"k", b"l", 3, 3)
    assert (w.watch_id, w.created, w.done, w.error, w.buffered, w.fragments) == (
        -1,
        False,
        False,
        None,
        0,
        0,
    )
    w.waker = "anything"
    assert w.waker == "anything" and "next_revision=3" in repr(w)
    with pytest.raises(AttributeError):
        w.next_revision = 5
    for bad in ((b"k", b"", "1", False, (), False, False), ("k", b"", 0, False, (), False, False)):
        with pytest.raises(TypeError):
            s.core.add(*bad)
    assert s.core.active == 1


# Random scripts: both twins must make the same decisions from the same inputs.


@st.composite
def script_steps(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(
            st.sampled_from(
                [
                    "add",
                    "connect",
                    "disconnect",
                    "created",
                    "events",
                    "frag",
                    "progress",
                    "cancel",
                    "pop",
                    "canceled",
                    "bytes",
                    "batch",
                ]
            )
        )
        if kind == "add":
            steps.append(("add", draw(st.integers(0, 20)), draw(st.booleans())))
        elif kind == "disconnect":
            steps.append(
                ("disconnect", draw(st.sampled_from(["none", "unavailable", "auth", "noleader"])))
            )
        elif kind == "created":
            steps.append(
                ("created", draw(st.integers(-1, 4)), draw(st.integers(0, 30)), draw(st.booleans()))
            )
        elif kind in ("events", "frag"):
            first = draw(st.integers(0, 40))
            revs = tuple(range(first, first + draw(st.integers(0, 3))))
            steps.append((kind, draw(st.integers(-1, 4)), revs))
        elif kind == "progress":
            steps.append(("progress", draw(st.integers(-1, 4)), draw(st.integers(0, 50))))
        elif kind in ("cancel", "pop"):
            steps.append((kind, draw(st.integers(0, 5))))
        elif kind == "canceled":
            steps.append(("canceled", draw(st.integers(0, 4)), draw(st.integers(0, 9))))
        elif kind == "bytes":
            steps.append(("bytes", draw(st.binary(max_size=12))))
        elif kind == "batch":  # several messages for feed_many, maybe a malformed one
            batch = []
            for _ in range(draw(st.integers(0, 4))):
                first = draw(st.integers(0, 40))
                batch.append(
                    draw(
                        st.sampled_from(
                            [
                                resp(draw(st.integers(-1, 4)), revision=50, revs=(first,)),
                                resp(
                                    draw(st.integers(0, 4)),
                                    revision=draw(st.integers(0, 30)),
                                    created=True,
                                ),
                                resp(draw(st.integers(-1, 4)), revision=first),
                                b"\x80",
                            ]
                        )
                    )
                )
            steps.append(("batch", batch))
        else:
            steps.append((kind,))
    return steps


def run_script(wc: ModuleType, steps: list[tuple[Any, ...]]) -> list[Any]:
    s = Script(wc, max_buffered_bytes=3000)
    watchers: list[Any] = []
    log: list[Any] = []
    errors = {
        "none": None,
        "unavailable": UnavailableError("u"),
        "auth": InvalidAuthTokenError("a"),
        "noleader": NoLeaderError("etcdserver: no leader"),
    }
    for step in steps:
        kind = step[0]
        try:
            if kind == "add":
                watchers.append(s.add(b"k%d" % len(watchers), step[1], fragment=step[2]))
            elif kind == "connect":
                s.core.on_connect()
            elif kind == "disconnect":
                log.append(s.core.on_disconnect(errors[step[1]]))
            elif kind == "created":
                s.core.feed(resp(step[1], revision=step[2], created=True, canceled=step[3]))
            elif kind == "events":
                s.core.feed(resp(step[1], revision=50, revs=step[2]))
            elif kind == "frag":
                s.core.feed(resp(step[1], revision=50, revs=step[2], fragment=True))
            elif kind == "progress":
                s.core.feed(resp(step[1], revision=step[2]))
            elif kind == "canceled":
                s.core.feed(resp(step[1], canceled=True, compact_revision=step[2]))
            elif kind == "bytes":
                s.core.feed(step[1])
            elif kind == "batch":
                s.core.feed_many(step[1])
            elif watchers:
                w = watchers[step[1] % len(watchers)]
                if kind == "cancel":
                    s.core.cancel(w)
                else:
                    log.append(plain(s.core.pop(w)))
        except DecodeError:
            log.append("DecodeError")
        log.append(parse_requests(s.core.take_requests()))
        log.append([watchers.index(w) for w in s.core.take_woken()])
        log.append((s.core.connected, s.core.active, s.core.paused))
        log.append(
            [
                (
                    w.watch_id,
                    w.next_revision,
                    w.created,
                    w.done,
                    type(w.error).__name__,
                    w.buffered,
                    w.buffered_bytes,
                    w.fragments,
                )
                for w in watchers
            ]
        )
    return log


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=script_steps())
def test_prop_twins_make_the_same_decisions(steps: list[tuple[Any, ...]]) -> None:
    logs = [run_script(m, steps) for _, m in IMPLS]
    assert all(log == logs[0] for log in logs)
