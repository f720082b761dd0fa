"""Fuzzing the compiled HTTP/2 core with random and mutated bytes (hypothesis).

Invariants: ``HpackDecoder.decode`` returns a header list or raises ``InternalError``;
``H2Connection.receive`` never raises, never delivers a call's outcome twice, delivers only
``bytes`` or ``fastetcd.errors`` errors, and a closed connection carries an ``EtcdError``;
reading the same bytes through ``get_buffer``/``buffer_updated`` (asyncio's
``BufferedProtocol``) ends exactly the same.
Hypothesis costs milliseconds per example, so each example also drives a batch of inputs
derived from it with a seeded RNG (random mutations of the drawn input): a failure is still
reproduced by the example, and the run feeds over 10^5 inputs in under a minute
(``FASTETCD_FUZZ_SCALE`` multiplies the counts).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

pytest.importorskip("h2")
pytest.importorskip("fastetcd._h2", reason="needs the compiled core")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import hpack  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastetcd import _h2, errors  # noqa: E402

SCALE = float(os.environ.get("FASTETCD_FUZZ_SCALE", "1"))
BATCH = 100  # derived inputs per hypothesis example
FED = {"inputs": 0, "tests": 0}


def _derived(data: bytes, seed: int) -> list[bytes]:
    """``data`` and BATCH seeded random mutations of it."""
    rng = random.Random(seed)
    out = [data]
    for _ in range(BATCH):
        muts = [
            (rng.randrange(10_000), rng.choice("fdit"), rng.randrange(256))
            for _ in range(rng.randrange(1, 5))
        ]
        out.append(_mutate(data, muts))
    FED["inputs"] += len(out)
    return out


def _settings(n: int) -> Any:
    return settings(
        max_examples=max(10, int(n * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def grpc(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


# --------------------------------------------------------------------------- HPACK


def _valid_blocks() -> list[bytes]:
    encoder = hpack.Encoder()
    blocks = []
    for i in range(6):
        blocks.append(
            encoder.encode(
                [
                    (b":status", b"200"),
                    (b"content-type", b"application/grpc"),
                    (b"grpc-status", b"%d" % (i % 3)),
                    (b"grpc-message", b"etcdserver: no leader %d" % i),
                    (b"x-custom", b"v" * i),
                ],
                huffman=i % 2 == 0,
            )
        )
    return blocks


BLOCKS = _valid_blocks()


def _decode(data: bytes) -> None:
    try:
        headers = _h2.HpackDecoder().decode(data)
    except errors.InternalError:
        return
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)


@_settings(600)
@given(st.binary(max_size=120), st.integers(0, 2**32))
def test_hpack_random_bytes(data: bytes, seed: int) -> None:
    for item in _derived(data, seed):
        _decode(item)
    FED["tests"] += 1


mutation = st.tuples(st.integers(0, 10_000), st.sampled_from("fdit"), st.integers(0, 255))


def _mutate(data: bytes, mutations: list[tuple[int, str, int]]) -> bytes:
    buf = bytearray(data)
    for pos, op, byte in mutations:
        if not buf:
            buf.append(byte)
            continue
        pos %= len(buf)
        if op == "f":  # flip bits
            buf[pos] ^= byte or 1
        elif op == "d":
            del buf[pos]
        elif op == "i":
            buf.insert(pos, byte)
        else:  # truncate
            del buf[pos:]
    return bytes(buf)


@_settings(500)
@given(
    st.sampled_from(range(len(BLOCKS))),
    st.lists(mutation, min_size=1, max_size=4),
    st.integers(0, 2**32),
)
def test_hpack_mutated_blocks(index: int, mutations: list[tuple[int, str, int]], seed: int) -> None:
    for item in _derived(_mutate(BLOCKS[index], mutations), seed):
        # a decoder whose table is as the block expects, then the mutated block
        decoder = _h2.HpackDecoder()
        for block in BLOCKS[:index]:
            decoder.decode(block)
        try:
            decoder.decode(item)
        except errors.InternalError:
            pass
    FED["tests"] += 1


# --------------------------------------------------------------------------- connection


class Handle:
    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.messages: list[bytes] = []

    def set_result(self, result: Any) -> None:
        self.outcomes.append(result)

    def set_exception(self, exc: BaseException) -> None:
        self.outcomes.append(exc)

    def push(self, message: bytes) -> None:
        assert isinstance(message, bytes)
        self.messages.append(message)


def _transcript() -> bytes:
    """What a well-behaved server sends for three unary calls and one streaming call."""
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    srv = h2.connection.H2Connection(config=config)
    srv.initiate_connection()
    client = _h2.H2Connection("h:1")
    client.initiate()
    for handle_id in range(3):
        client.start(Handle(), "/a.B/C", b"req%d" % handle_id, None)
    client.start(Handle(), "/a.B/S", None, None, unary=False)
    srv.receive_data(client.data_to_send())
    srv.data_to_send()
    out = bytearray()
    for sid, status in ((1, b"0"), (3, b"14"), (5, b"0")):
        srv.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        srv.send_data(sid, grpc(b"response %d" % sid) * (1 if status == b"0" else 0) or b"")
        srv.send_headers(sid, [(b"grpc-status", status), (b"grpc-message", b"x%20y")], True)
        out += srv.data_to_send()
    srv.send_headers(7, [(b":status", b"200")])
    srv.send_data(7, grpc(b"a") + grpc(b"bb") + grpc(b"c" * 300)[:100], pad_length=5)
    srv.ping(b"pingpong")
    out += srv.data_to_send()
    return bytes(out)


TRANSCRIPT = _transcript()


def _read_into(core: Any, chunk: bytes) -> None:
    """What an event loop does for a ``BufferedProtocol``: reads into ``get_buffer()``'s
    view, each followed by ``buffer_updated``."""
    view = memoryview(chunk)
    while view:
        buf = core.get_buffer(-1)
        n = min(len(buf), len(view))
        assert n > 0
        buf[:n] = view[:n]
        core.buffer_updated(n)
        view = view[n:]


def _run(chunks: list[bytes], buffered: bool) -> list[Any]:
    """Feed ``chunks`` to a core with calls open; check the invariants; return what every
    call and the connection ended with (for comparing two ways of reading)."""
    core = _h2.H2Connection("h:1", max_recv_bytes=1 << 20)
    core.hold_ping_acks = True  # as the asyncio connection does: acks held, released below
    core.initiate()
    handles = [Handle() for _ in range(4)]
    for i, handle in enumerate(handles[:3]):
        core.start(handle, "/a.B/C", b"req%d" % i, 1.0)
    core.start(handles[3], "/a.B/S", None, None, unary=False)
    core.data_to_send()
    sent = []
    for chunk in chunks:
        if buffered:
            _read_into(core, chunk)
        else:
            core.receive(chunk)
        core.release_ping()  # (the asyncio connection's timer does this within 10 ms)
        out = core.data_to_send()
        assert isinstance(out, bytes)
        sent.append(out)
    if core.closed:
        assert isinstance(core.error, errors.EtcdError)
    else:  # every PING answered
        assert core.ping_acks_sent == core.pings_received and not core.ping_held
    for i, handle in enumerate(handles):
        assert len(handle.outcomes) <= 1
        for outcome in handle.outcomes:
            if isinstance(outcome, BaseException):
                assert isinstance(outcome, errors.EtcdError), repr(outcome)
            elif i < 3:
                assert isinstance(outcome, bytes)
            else:
                assert outcome is None
    seen = [([repr(o) for o in h.outcomes], h.messages) for h in handles] + [
        core.closed,
        repr(core.error),
        sent,
    ]
    core.fail_all("the end")
    assert all(len(h.outcomes) == 1 for h in handles)
    return seen


def _feed(chunks: list[bytes]) -> None:
    """``chunks`` through ``receive()``, and the same reads through ``get_buffer()`` /
    ``buffer_updated()``: the two ways of reading end the same."""
    assert _run(chunks, buffered=True) == _run(chunks, buffered=False)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return [c for c in chunks if c]


def test_the_transcript_is_valid() -> None:
    _feed([TRANSCRIPT])


@_settings(500)
@given(st.binary(max_size=200), st.lists(st.integers(0, 400), max_size=4), st.integers(0, 2**32))
def test_connection_random_bytes(data: bytes, cuts: list[int], seed: int) -> None:
    for item in _derived(data, seed):
        _feed(_split(item, cuts))
    FED["tests"] += 1


@_settings(300)
@given(st.binary(min_size=1, max_size=60), st.integers(0, 10_000), st.integers(0, 2**32))
def test_connection_random_frame_after_valid_prefix(data: bytes, at: int, seed: int) -> None:
    """Random bytes spliced into a valid transcript."""
    pos = at % (len(TRANSCRIPT) + 1)
    for item in _derived(data, seed):
        _feed([TRANSCRIPT[:pos], item, TRANSCRIPT[pos:]])
    FED["tests"] += 1


@_settings(700)
@given(
    st.lists(mutation, min_size=1, max_size=6),
    st.lists(st.integers(0, 10_000), max_size=6),
    st.integers(0, 2**32),
)
def test_connection_mutated_transcript(
    mutations: list[tuple[int, str, int]], cuts: list[int], seed: int
) -> None:
    for item in _derived(_mutate(TRANSCRIPT, mutations), seed):
        _feed(_split(item, cuts))
    FED["tests"] += 1


def test_zz_enough_inputs_were_fed() -> None:
    """Runs last in this file: the fuzz tests above fed at least 10^5 inputs."""
    if FED["tests"] < int(2600 * min(SCALE, 1)) or SCALE < 1:
        pytest.skip("not every fuzz test ran in this session")
    assert FED["inputs"] >= 100_000, FED
