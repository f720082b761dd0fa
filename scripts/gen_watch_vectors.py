#!/usr/bin/env python3
"""Generate the watch codec's golden vectors (``tests/vectors/watch_*.json``) with protobuf as
the oracle, as ``scripts/gen_vectors.py`` does for the KV codec (whose ``build()`` includes
these files, so its up-to-date check covers them too).

Every expected byte string and decoded value comes from the protobuf runtime and the
generated ``fastetcd._pb`` modules, never from fastetcd's own codecs:

* ``watch_encoder`` cases ``{"name", "args", "hex"}``: ``hex`` is ``SerializeToString()`` of the
  ``WatchRequest`` equivalent to calling the encoder with ``args`` (positional, in the order
  of ``fastetcd/_watch.pyi``);
* ``watch_decoder`` cases ``{"name", "hex", "expected"}``: ``expected`` is protobuf's own parse
  of ``hex`` (often with hand-made additions: unknown fields, explicit defaults, odd enum
  values), in the codec's result shape;
* ``watch_malformed`` cases ``{"function", "name", "hex"}``: inputs both decoders must reject
  with DecodeError (hand-written; protobuf itself accepts some of them, e.g. groups).

JSON conventions as in gen_vectors.py: strings are hex bytes, except ``cancel_reason`` (text);
a result object is ``{"type": ClassName, field: value, ...}``; an Event's own ``type`` field is
written ``event_type`` (``type`` names the class).

Usage: python3 scripts/gen_watch_vectors.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastetcd._pb import kv_pb2, rpc_pb2  # noqa: E402

# The raw wire helpers, JSON converters and shared constants are gen_vectors.py's (a script
# in this directory, imported as a module; its build() loads this file in turn).
SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from gen_vectors import (  # noqa: E402
    BIG_LEASE,
    BIN_KEY,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    enc_arg,
    field_bytes,
    field_fixed32,
    field_fixed64,
    field_varint,
    header_json,
    kv,
    kv_json,
    ser,
    unknown_fields,
    varint,
)

OUT_DIR = ROOT / "tests" / "vectors"

HEADER = rpc_pb2.ResponseHeader(
    cluster_id=14841639068965178418, member_id=10276657743932975437, revision=7, raft_term=2
)

Case = dict[str, Any]

# --------------------------------------------------------------------------- JSON of results


def event_json(ev: kv_pb2.Event) -> dict[str, Any]:
    return {
        "type": "Event",
        "event_type": ev.type,
        "kv": kv_json(ev.kv),  # an absent kv reads as the default KeyValue, as in protobuf
        "prev_kv": kv_json(ev.prev_kv) if ev.HasField("prev_kv") else None,
    }


def response_json(m: rpc_pb2.WatchResponse) -> dict[str, Any]:
    return {
        "type": "WatchResponse",
        "header": header_json(m.header),
        "watch_id": m.watch_id,
        "created": m.created,
        "canceled": m.canceled,
        "compact_revision": m.compact_revision,
        "cancel_reason": m.cancel_reason,
        "fragment": m.fragment,
        "events": [event_json(ev) for ev in m.events],
    }


def event_case(name: str, data: bytes) -> Case:
    return {"name": name, "hex": data.hex(), "expected": event_json(kv_pb2.Event.FromString(data))}


def response_case(name: str, data: bytes) -> Case:
    parsed = rpc_pb2.WatchResponse.FromString(data)
    return {"name": name, "hex": data.hex(), "expected": response_json(parsed)}


# --------------------------------------------------------------------------- encoder cases


def pb_create(
    key: bytes,
    range_end: bytes,
    start_revision: int,
    progress_notify: bool,
    filters: list[int],
    prev_kv: bool,
    watch_id: int,
    fragment: bool,
) -> bytes:
    return ser(
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=key,
                range_end=range_end,
                start_revision=start_revision,
                progress_notify=progress_notify,
                filters=filters,
                prev_kv=prev_kv,
                watch_id=watch_id,
                fragment=fragment,
            )
        )
    )


def create_args(**kw: Any) -> list[Any]:
    defaults: dict[str, Any] = {
        "key": b"",
        "range_end": b"",
        "start_revision": 0,
        "progress_notify": False,
        "filters": [],
        "prev_kv": False,
        "watch_id": 0,
        "fragment": False,
    }
    unknown = set(kw) - set(defaults)
    assert not unknown, unknown
    defaults.update(kw)
    return list(defaults.values())


def create_cases() -> list[Case]:
    cases: list[tuple[str, list[Any]]] = [
        ("all defaults (empty create request)", create_args()),
        ("single key", create_args(key=b"foo")),
        ("prefix", create_args(key=b"foo/", range_end=b"foo0")),
        ("from key", create_args(key=b"a", range_end=b"\x00")),
        ("whole keyspace", create_args(key=b"\x00", range_end=b"\x00")),
        ("binary key", create_args(key=BIN_KEY, range_end=b"\xff\xff")),
        ("long key", create_args(key=b"k" * 300, range_end=b"l" * 200)),
        ("start revision", create_args(key=b"k", start_revision=42)),
        ("start revision 2 bytes", create_args(key=b"k", start_revision=16383)),
        ("start revision int64 max", create_args(key=b"k", start_revision=INT64_MAX)),
        ("start revision -1", create_args(key=b"k", start_revision=-1)),
        ("start revision int64 min", create_args(key=b"k", start_revision=INT64_MIN)),
        ("progress notify", create_args(key=b"k", progress_notify=True)),
        ("prev kv", create_args(key=b"k", prev_kv=True)),
        ("fragment", create_args(key=b"k", fragment=True)),
        ("filter noput", create_args(key=b"k", filters=[0])),
        ("filter nodelete", create_args(key=b"k", filters=[1])),
        ("both filters", create_args(key=b"k", filters=[0, 1])),
        ("repeated filters", create_args(key=b"k", filters=[1, 1, 0, 0, 1])),
        ("filter -1", create_args(key=b"k", filters=[-1])),
        ("filter int32 extremes", create_args(key=b"k", filters=[INT32_MAX, INT32_MIN, 200])),
        ("many filters", create_args(key=b"k", filters=[0, 1] * 100)),
        ("watch id", create_args(key=b"k", watch_id=7)),
        ("watch id -1", create_args(key=b"k", watch_id=-1)),
        ("watch id int64 max", create_args(key=b"k", watch_id=INT64_MAX)),
        (
            "everything",
            create_args(
                key=b"/a/",
                range_end=b"/a0",
                start_revision=123456789,
                progress_notify=True,
                filters=[1],
                prev_kv=True,
                watch_id=3,
                fragment=True,
            ),
        ),
        (
            "large inner message",
            create_args(key=b"x" * 2000, range_end=b"y" * 2000, start_revision=5),
        ),
    ]
    return [{"name": n, "args": enc_arg(a), "hex": pb_create(*a).hex()} for n, a in cases]


def cancel_cases() -> list[Case]:
    cases = [
        ("watch id 0", 0),
        ("watch id 1", 1),
        ("watch id 300", 300),
        ("watch id 2**31", 1 << 31),
        ("watch id int64 max", INT64_MAX),
        ("watch id -1", -1),
        ("watch id int64 min", INT64_MIN),
    ]
    return [
        {
            "name": name,
            "args": [wid],
            "hex": ser(
                rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=wid))
            ).hex(),
        }
        for name, wid in cases
    ]


def progress_cases() -> list[Case]:
    data = ser(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
    return [{"name": "progress request", "args": [], "hex": data.hex()}]


# --------------------------------------------------------------------------- decoder cases


def put_event(key: bytes = b"k", value: bytes = b"v", rev: int = 5) -> kv_pb2.Event:
    return kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv(key, value, rev))


def delete_event(key: bytes = b"k", rev: int = 9) -> kv_pb2.Event:
    return kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=key, mod_revision=rev))


def event_cases() -> list[Case]:
    E = kv_pb2.Event
    full = E(
        type=E.PUT,
        kv=kv(b"key", b"new", 12, create_revision=3, version=4, lease=BIG_LEASE),
        prev_kv=kv(b"key", b"old", 11, create_revision=3, version=3, lease=BIG_LEASE),
    )
    return [
        event_case("empty", b""),
        event_case("put", ser(put_event())),
        event_case("delete", ser(delete_event())),
        event_case("put with prev_kv", ser(full)),
        event_case("delete with prev_kv", ser(E(type=E.DELETE, kv=kv(b"k", rev=9), prev_kv=kv()))),
        event_case("binary key and value", ser(E(kv=kv(BIN_KEY, b"\x00\xff" * 100, 2)))),
        event_case("large revisions", ser(E(kv=kv(rev=INT64_MAX, version=INT64_MAX)))),
        event_case("negative revisions", ser(E(kv=kv(rev=-1, version=INT64_MIN, lease=-5)))),
        event_case("empty kv present", field_bytes(2, b"")),
        event_case("empty prev_kv present", field_bytes(2, ser(kv())) + field_bytes(3, b"")),
        event_case("prev_kv before kv", field_bytes(3, ser(kv(b"p"))) + field_bytes(2, ser(kv()))),
        event_case("type written as 0", field_varint(1, 0) + field_bytes(2, ser(kv()))),
        event_case("type 2 (unknown)", field_varint(1, 2) + field_bytes(2, ser(kv()))),
        event_case("type 1000 (unknown)", field_varint(1, 1000)),
        event_case("type -1 (10-byte varint)", field_varint(1, -1)),
        event_case("type int32 min", field_varint(1, INT32_MIN)),
        event_case("type 2**32 + 1 (truncated to int32)", field_varint(1, (1 << 32) + 1)),
        event_case("type 2**31 (truncated to int32)", field_varint(1, 1 << 31)),
        event_case("type twice: last wins", field_varint(1, 1) + field_varint(1, 0)),
        event_case("unknown fields", ser(put_event()) + unknown_fields()),
        event_case("unknown fields first", unknown_fields(4) + ser(put_event())),
        event_case("unknown fields inside kv", field_bytes(2, ser(kv()) + unknown_fields()) + b""),
    ]


def response_cases() -> list[Case]:
    R = rpc_pb2.WatchResponse
    E = kv_pb2.Event
    many = [put_event(b"key%04d" % i, b"value%d" % i, 100 + i) for i in range(100)]
    txn = [put_event(b"t%03d" % i, b"x" * 40, 4242) for i in range(100)]
    big = [put_event(b"b%d" % i, bytes(range(256)) * 4, 4243) for i in range(3)]
    return [
        response_case("empty", b""),
        response_case("created", ser(R(header=HEADER, created=True))),
        response_case("created with id", ser(R(header=HEADER, watch_id=7, created=True))),
        response_case(
            "created and canceled",
            ser(R(header=HEADER, watch_id=3, created=True, canceled=True, cancel_reason="nope")),
        ),
        response_case("progress for the stream", ser(R(header=HEADER, watch_id=-1))),
        response_case("progress for one watch", ser(R(header=HEADER, watch_id=2))),
        response_case("one put", ser(R(header=HEADER, watch_id=1, events=[put_event()]))),
        response_case("one delete", ser(R(header=HEADER, events=[delete_event()]))),
        response_case(
            "put and delete",
            ser(R(header=HEADER, events=[put_event(rev=8), delete_event(rev=9)])),
        ),
        response_case(
            "prev_kv",
            ser(
                R(
                    header=HEADER,
                    events=[E(type=E.PUT, kv=kv(b"a", b"2", 9), prev_kv=kv(b"a", b"1", 8))],
                )
            ),
        ),
        response_case("100 events", ser(R(header=HEADER, watch_id=5, events=many))),
        response_case("a 100-key txn", ser(R(header=HEADER, events=txn))),
        response_case("1 KiB values", ser(R(header=HEADER, events=big))),
        response_case(
            "compacted",
            ser(R(header=HEADER, watch_id=4, canceled=True, compact_revision=1234)),
        ),
        response_case(
            "canceled with reason",
            ser(R(header=HEADER, canceled=True, cancel_reason="etcdserver: no leader")),
        ),
        response_case("cancel reason unicode", ser(R(cancel_reason="é ☃ 😀 \x00 end"))),
        response_case("fragment", ser(R(header=HEADER, fragment=True, events=[put_event()]))),
        response_case("negative ids", ser(R(watch_id=INT64_MIN, compact_revision=-1))),
        response_case("int64 max", ser(R(watch_id=INT64_MAX, compact_revision=INT64_MAX))),
        response_case(
            "explicit defaults",
            field_bytes(1, b"")
            + field_varint(2, 0)
            + field_varint(3, 0)
            + field_varint(4, 0)
            + field_varint(5, 0)
            + field_bytes(6, b"")
            + field_varint(7, 0),
        ),
        response_case(
            "bools as varint 2 and 2**63",
            field_varint(3, 2) + field_varint(4, 1 << 63) + field_varint(7, 128),
        ),
        response_case(
            "unused upstream fields 8-10 are unknown",
            field_varint(8, 1) + field_bytes(9, b"x") + field_fixed64(10) + ser(R(watch_id=1)),
        ),
        response_case(
            "unknown fields everywhere",
            unknown_fields(12)
            + ser(R(header=HEADER, watch_id=1))
            + field_bytes(11, ser(put_event()) + unknown_fields())
            + unknown_fields(),
        ),
        response_case(
            "events interleaved with other fields",
            field_bytes(11, ser(put_event(rev=3)))
            + ser(R(header=HEADER, watch_id=9))
            + field_bytes(11, ser(put_event(rev=4))),
        ),
        response_case("scalar twice: last wins", field_varint(2, 5) + field_varint(2, 6)),
        response_case("empty event", field_bytes(11, b"")),
    ]


# --------------------------------------------------------------------------- malformed inputs


def malformed_cases() -> list[Case]:
    """Inputs both decoders must reject with DecodeError (per fastetcd/_watch.pyi)."""
    decoders = ["decode_event", "decode_watch_response"]
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
    for fn in decoders:
        for name, data in generic:
            cases.append({"function": fn, "name": name, "hex": data.hex()})
    wrong_type = {
        "decode_event": [field_bytes(1, b""), field_varint(2, 1), field_fixed32(3)],
        "decode_watch_response": [
            field_varint(1, 0),
            field_bytes(2, b""),
            field_bytes(3, b""),
            field_fixed64(4),
            field_bytes(5, b""),
            field_varint(6, 0),
            field_bytes(7, b""),
            field_varint(11, 0),
        ],
    }
    for fn, items in wrong_type.items():
        for data in items:
            cases.append(
                {"function": fn, "name": f"wrong wire type {data.hex()}", "hex": data.hex()}
            )
    header = ser(HEADER)
    event = ser(put_event())
    nested: list[tuple[str, str, bytes]] = [
        ("decode_event", "truncated kv", field_bytes(2, ser(kv())[:-1])),
        ("decode_event", "bad varint in kv", field_bytes(2, b"\x10\x80")),
        ("decode_event", "group in prev_kv", field_bytes(3, b"\x0b\x0c")),
        ("decode_event", "kv overruns", field_bytes(2, b"\x0a\x05ab") + b"cdef"),
        ("decode_watch_response", "truncated header", field_bytes(1, header[:-1])),
        ("decode_watch_response", "event overruns", field_bytes(11, b"\x12\x05ab") + b"cde"),
        ("decode_watch_response", "truncated event", field_bytes(11, event[:-1])),
        ("decode_watch_response", "bad kv in event", field_bytes(11, field_bytes(2, b"\x00"))),
        ("decode_watch_response", "bad event after good", field_bytes(11, event) + b"\x5a\x01"),
        ("decode_watch_response", "cancel reason bad UTF-8", field_bytes(6, b"\xff\xfe")),
        ("decode_watch_response", "cancel reason truncated UTF-8", field_bytes(6, b"ok\xc3")),
        ("decode_watch_response", "cancel reason surrogate", field_bytes(6, b"\xed\xa0\x80")),
        ("decode_watch_response", "cancel reason overlong", field_bytes(6, b"\xc0\xaf")),
    ]
    for fn, name, data in nested:
        cases.append({"function": fn, "name": name, "hex": data.hex()})
    return cases


# --------------------------------------------------------------------------- main


def build() -> dict[str, Any]:
    encoders = {
        "encode_watch_create_request": create_cases(),
        "encode_watch_cancel_request": cancel_cases(),
        "encode_watch_progress_request": progress_cases(),
    }
    decoders = {
        "decode_event": event_cases(),
        "decode_watch_response": response_cases(),
    }
    files: dict[str, Any] = {}
    for fn, cases in encoders.items():
        files[f"watch_{fn}.json"] = {"function": fn, "kind": "watch_encoder", "cases": cases}
    for fn, cases in decoders.items():
        files[f"watch_{fn}.json"] = {"function": fn, "kind": "watch_decoder", "cases": cases}
    files["watch_malformed.json"] = {"kind": "watch_malformed", "cases": malformed_cases()}
    for name, content in files.items():
        keys = [(c.get("function", ""), c["name"]) for c in content["cases"]]
        assert len(keys) == len(set(keys)), f"duplicate case names in {name}"
    return files


def render(content: Any) -> str:
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any file would change")
    opts = parser.parse_args()
    stale = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(build().items()):
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
