"""The codec's user-argument entry points (``to_bytes``, ``key_bytes``, ``int64``,
``encode_get``, ``encode_put``, ``decode_get_response``): both twins give protobuf's bytes
for every valid argument and the same ``fastetcd.errors`` exception, with the same message,
for every bad one."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastetcd._pb import kv_pb2, rpc_pb2
from fastetcd.errors import ArgumentTypeError, EmptyKeyError, InvalidArgumentError
from fastetcd.kv import SortTarget

from .conftest import CODEC_IMPLS

codecs: list[ModuleType] = [m for _, m in CODEC_IMPLS]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

keys = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.text(min_size=1, max_size=16),
    st.binary(min_size=1, max_size=8).map(bytearray),
    st.binary(min_size=1, max_size=8).map(memoryview),
)
values = st.one_of(st.binary(max_size=300), st.text(max_size=16))
int64s = st.integers(INT64_MIN, INT64_MAX)
revisions = st.integers(0, INT64_MAX)


def _b(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


@settings(max_examples=300, deadline=None)
@given(key=keys, revision=revisions, serializable=st.booleans())
def test_encode_get_is_protobufs(key: Any, revision: int, serializable: bool) -> None:
    expected = rpc_pb2.RangeRequest(
        key=_b(key), revision=revision, serializable=serializable
    ).SerializeToString()
    for codec in codecs:
        assert codec.encode_get(key, revision, serializable) == expected


@settings(max_examples=300, deadline=None)
@given(
    key=keys,
    value=values,
    lease=int64s,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_encode_put_is_protobufs(
    key: Any, value: Any, lease: int, flags: tuple[bool, bool, bool]
) -> None:
    expected = rpc_pb2.PutRequest(
        key=_b(key),
        value=_b(value),
        lease=lease,
        prev_kv=flags[0],
        ignore_value=flags[1],
        ignore_lease=flags[2],
    ).SerializeToString()
    for codec in codecs:
        assert codec.encode_put(key, value, lease, *flags) == expected


def test_truthy_flags_count_as_true() -> None:
    for codec in codecs:
        assert codec.encode_get(b"k", 0, 1) == codec.encode_get(b"k", 0, True)
        assert codec.encode_put(b"k", b"", 0, "yes", [], None) == codec.encode_put(
            b"k", b"", 0, True, False, False
        )


def test_int_subclasses_are_ints() -> None:
    for codec in codecs:
        assert codec.encode_get(b"k", SortTarget.MOD, False) == codec.encode_get(b"k", 3, False)
        assert codec.int64(SortTarget.MOD, "x") == 3
        assert type(codec.int64(SortTarget.MOD, "x")) is int


BAD_GETS: list[tuple[tuple[Any, ...], type[Exception], str]] = [
    ((b"", 0, False), EmptyKeyError, "key must not be empty"),
    (("", 0, False), EmptyKeyError, "key must not be empty"),
    ((None, 0, False), ArgumentTypeError, "key must be bytes or str, not NoneType"),
    ((1, 0, False), ArgumentTypeError, "key must be bytes or str, not int"),
    (
        (b"k", -1, False),
        InvalidArgumentError,
        f"revision must be between 0 and {INT64_MAX}, not -1",
    ),
    ((b"k", 1 << 63, False), InvalidArgumentError, "revision must be between 0 and"),
    ((b"k", True, False), ArgumentTypeError, "revision must be an int, not bool"),
    ((b"k", 1.0, False), ArgumentTypeError, "revision must be an int, not float"),
    ((b"k", "1", False), ArgumentTypeError, "revision must be an int, not str"),
]

BAD_PUTS: list[tuple[tuple[Any, ...], type[Exception], str]] = [
    ((b"", b"v", 0, False, False, False), EmptyKeyError, "key must not be empty"),
    ((b"k", None, 0, False, False, False), ArgumentTypeError, "value must be bytes or str"),
    ((b"k", 5, 0, False, False, False), ArgumentTypeError, "value must be bytes or str, not int"),
    ((b"k", b"v", 1 << 63, False, False, False), InvalidArgumentError, "lease must be between"),
    ((b"k", b"v", -(1 << 63) - 1, False, False, False), InvalidArgumentError, "lease must be"),
    ((b"k", b"v", False, False, False, False), ArgumentTypeError, "lease must be an int"),
    (("\ud800", b"v", 0, False, False, False), UnicodeEncodeError, "surrogate"),
]


@pytest.mark.parametrize(("args", "error", "message"), BAD_GETS)
def test_bad_get_arguments(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    messages = set()
    for codec in codecs:
        with pytest.raises(error, match=None) as info:
            codec.encode_get(*args)
        assert message in str(info.value)
        messages.add(str(info.value))
    assert len(messages) == 1  # both twins say exactly the same


@pytest.mark.parametrize(("args", "error", "message"), BAD_PUTS)
def test_bad_put_arguments(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    messages = set()
    for codec in codecs:
        with pytest.raises(error) as info:
            codec.encode_put(*args)
        assert message in str(info.value)
        messages.add(str(info.value))
    assert len(messages) == 1


@settings(max_examples=200, deadline=None)
@given(value=st.integers(-(1 << 70), 1 << 70), minimum=st.sampled_from([INT64_MIN, 0, 1]))
def test_int64_bounds_agree(value: int, minimum: int) -> None:
    outcomes = []
    for codec in codecs:
        try:
            outcomes.append(("ok", codec.int64(value, "n", minimum)))
        except InvalidArgumentError as exc:
            outcomes.append(("error", str(exc)))
    assert outcomes[0] == outcomes[-1]
    assert (outcomes[0][0] == "ok") == (minimum <= value <= INT64_MAX)


def test_to_bytes_copies_buffers() -> None:
    for codec in codecs:
        source = bytearray(b"abc")
        out = codec.to_bytes(source, "value")
        source[0] = ord("z")
        assert out == b"abc" and type(out) is bytes
        assert codec.key_bytes("é") == "é".encode()
        with pytest.raises(EmptyKeyError, match="range_end must not be empty"):
            codec.key_bytes(b"", "range_end")


@settings(max_examples=100, deadline=None)
@given(
    kvs=st.lists(
        st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=20), revisions),
        max_size=3,
    )
)
def test_decode_get_response(kvs: list[tuple[bytes, bytes, int]]) -> None:
    message = rpc_pb2.RangeResponse(
        kvs=[kv_pb2.KeyValue(key=k, value=v, mod_revision=r) for k, v, r in kvs],
        count=len(kvs),
    ).SerializeToString()
    for codec in codecs:
        first = codec.decode_get_response(message)
        if not kvs:
            assert first is None
        else:
            assert (first.key, first.value, first.mod_revision) == kvs[0]
            assert first == codec.decode_range_response(message).kvs[0]


# ------------------------------------------------------------------ whole calls (plan_*)


@settings(max_examples=200, deadline=None)
@given(
    key=keys,
    revision=revisions,
    serializable=st.booleans(),
    timeout=st.one_of(st.none(), st.floats(1e-6, 1e6), st.integers(1, 10**6)),
)
def test_plan_get_is_encode_get_in_a_call(
    key: Any, revision: int, serializable: bool, timeout: float | None
) -> None:
    for codec in codecs:
        call = codec.plan_get(key, revision, serializable, timeout)
        assert call.method == "/etcdserverpb.KV/Range" == codec.KV_RANGE
        assert call.request == codec.encode_get(key, revision, serializable)
        assert call.decode is codec.decode_get_response
        assert call.repeatable is True
        assert call.timeout == (None if timeout is None else float(timeout))
        assert call.timeout is None or type(call.timeout) is float


@settings(max_examples=200, deadline=None)
@given(key=keys, value=values, lease=int64s, flags=st.tuples(*[st.booleans()] * 4))
def test_plan_put_is_encode_put_in_a_call(
    key: Any, value: Any, lease: int, flags: tuple[bool, bool, bool, bool]
) -> None:
    prev_kv, ignore_value, ignore_lease, idempotent = flags
    for codec in codecs:
        call = codec.plan_put(key, value, lease, prev_kv, ignore_value, ignore_lease, 2, idempotent)
        assert call.method == "/etcdserverpb.KV/Put" == codec.KV_PUT
        assert call.request == codec.encode_put(
            key, value, lease, prev_kv, ignore_value, ignore_lease
        )
        assert call.decode is codec.decode_put_response
        assert call.repeatable is idempotent
        assert call.timeout == 2.0 and type(call.timeout) is float


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (0, "timeout must be > 0 seconds, not 0"),
        (-1.5, "timeout must be > 0 seconds, not -1.5"),
        (float("inf"), "timeout must be > 0 seconds, not inf"),
        (float("nan"), "timeout must be > 0 seconds, not nan"),
        (True, "timeout must be a number of seconds or None, not True"),
        ("1", "timeout must be a number of seconds or None, not '1'"),
    ],
)
def test_bad_timeouts(timeout: Any, message: str) -> None:
    for codec in codecs:
        with pytest.raises(InvalidArgumentError) as info:
            codec.check_timeout(timeout)
        assert str(info.value) == message
        with pytest.raises(InvalidArgumentError, match="timeout"):
            codec.plan_get(b"k", 0, False, timeout)
        with pytest.raises(InvalidArgumentError, match="timeout"):
            codec.plan_put(b"k", b"v", 0, False, False, False, timeout, False)
