"""Unit tests of the compiled HTTP/2 core (``fastetcd._h2``) with the ``hpack`` and ``h2``
packages as independent oracles: HPACK decoding (static and dynamic tables, Huffman) against
``hpack``'s encoder and decoder, and the frame layer in memory against ``h2``'s server side
(no sockets, no etcd)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("h2")
pytest.importorskip("fastetcd._h2", reason="needs the compiled core")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
import hpack.huffman_constants  # noqa: E402
import hyperframe.frame as hf  # noqa: E402
from hpack.huffman import HuffmanEncoder  # noqa: E402
from hpack.table import HeaderTable  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastetcd import _h2, errors  # noqa: E402

SETTINGS = h2.settings.SettingCodes
_HUFFMAN = HuffmanEncoder(
    hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
)


# ============================================================================== HPACK


def test_static_table_matches_rfc_via_hpack() -> None:
    assert _h2.STATIC_TABLE == HeaderTable.STATIC_TABLE


@given(st.binary(max_size=300))
def test_huffman_decode_matches_hpack(data: bytes) -> None:
    assert _h2.huffman_decode(_HUFFMAN.encode(data)) == data


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff\xff\xff\xff",  # EOS (30 ones) inside the string
        b"\x00",  # padding of zeros: '0' bits are not a valid EOS prefix
        b"\x1f\xff",  # 'a'-ish then 8+ bits of padding
        b"\xfe",  # 8 bits of a 10-bit code: padding longer than 7 bits
    ],
)
def test_huffman_rejects_bad_padding_and_eos(bad: bytes) -> None:
    with pytest.raises(errors.InternalError):
        _h2.huffman_decode(bad)


header_name = st.sampled_from(
    [b"grpc-status", b"grpc-message", b"content-type", b":status", b"x-a", b"date", b"server"]
) | st.binary(min_size=1, max_size=20).map(lambda b: b.lower())
header_value = st.binary(max_size=60)
header_list = st.lists(st.tuples(header_name, header_value), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(header_list, st.booleans(), st.sampled_from([None, 0, 64, 256, 4096]))),
)
def test_decoder_matches_hpack_over_a_connection(blocks: list[Any]) -> None:
    """A sequence of blocks from one encoder (dynamic table shared across blocks, Huffman
    on or off, table size updates) decodes the same with ours and with hpack's."""
    encoder = hpack.Encoder()
    ours = _h2.HpackDecoder()
    theirs = hpack.Decoder()
    for headers, huffman, size in blocks:
        if size is not None:
            encoder.header_table_size = size
        block = encoder.encode(headers, huffman=huffman)
        expected = [(bytes(n), bytes(v)) for n, v in theirs.decode(block, raw=True)]
        assert ours.decode(block) == expected
        assert ours.table == [(bytes(n), bytes(v)) for n, v in theirs.header_table.dynamic_entries]


def test_never_indexed_and_without_indexing_literals() -> None:
    encoder = hpack.Encoder()
    block = encoder.encode(
        [
            hpack.NeverIndexedHeaderTuple(b"authorization", b"secret"),
            (b"x-plain", b"1", True),  # sensitive: never indexed
            (b"grpc-status", b"0"),
        ]
    )
    ours = _h2.HpackDecoder()
    assert ours.decode(block) == [
        (b"authorization", b"secret"),
        (b"x-plain", b"1"),
        (b"grpc-status", b"0"),
    ]
    assert ours.table == [(b"grpc-status", b"0")]


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xff\x80\x80\x80\x80\x80\x01",  # integer too large
        b"\xbe",  # dynamic index with an empty table
        b"\x40\x05ab",  # string runs past the end
        b"\x82\x3f\xe1\x1f",  # table size update after a field
        b"\x3f\xe2\x1f",  # table size update above the limit (4096)
        b"\x00\x81\xff",  # bad Huffman in a literal name
        b"\x7f",  # truncated integer
        b"\x40",  # literal with nothing after
    ],
)
def test_decoder_rejects_corrupt_blocks(block: bytes) -> None:
    with pytest.raises(errors.InternalError, match="HPACK"):
        _h2.HpackDecoder().decode(block)


def test_decoder_rejects_oversized_header_list() -> None:
    block = hpack.Encoder().encode([(b"x-big", b"v" * 70_000)] * 20, huffman=False)
    with pytest.raises(errors.InternalError, match="too large"):
        _h2.HpackDecoder().decode(block)


def test_request_headers_decode_with_hpack() -> None:
    block = _h2.encode_request_headers("/etcdserverpb.KV/Put", "10.0.0.1:2379")
    assert hpack.Decoder().decode(block, raw=True) == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Put"),
        (b":authority", b"10.0.0.1:2379"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"fastetcd-native/0.1"),
    ]
    secure = _h2.encode_request_headers("/x" * 100, "h:1", secure=True)
    assert hpack.Decoder().decode(secure, raw=True)[1] == (b":scheme", b"https")


@pytest.mark.parametrize(
    ("seconds", "value"),
    [
        (0.0, b"1u"),
        (0.5, b"500000u"),
        (1.0, b"1000000u"),
        (99.0, b"99000000u"),
        (100.0, b"100000m"),
        (3600 * 30, b"108000S"),
        (1e9, b"16666667M"),
        (1e12, b"99999999H"),
    ],
)
def test_grpc_timeout(seconds: float, value: bytes) -> None:
    assert _h2.grpc_timeout(seconds) == value
    assert len(value) <= 9


# ============================================================================== frame layer


class Handle:
    """Records what the core delivers for one call."""

    def __init__(self) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.messages: list[bytes] = []

    def set_result(self, result: Any) -> None:
        assert not self.done
        self.result, self.done = result, True

    def set_exception(self, exc: BaseException) -> None:
        assert not self.done
        self.error, self.done = exc, True

    def push(self, message: bytes) -> None:
        self.messages.append(message)


def grpc(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


class Pair:
    """Our core (client) wired in memory to h2's server side."""

    def __init__(
        self, server_settings: dict[int, int] | None = None, read_size: int | None = None
    ) -> None:
        #: None: the server's bytes go to ``receive``; else to ``get_buffer`` /
        #: ``buffer_updated`` in reads of at most ``read_size`` bytes
        self.read_size = read_size
        self.core = _h2.H2Connection("example:2379", max_recv_bytes=1 << 26)
        self.core.initiate()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.srv = h2.connection.H2Connection(config=config)
        self.srv.initiate_connection()
        if server_settings:
            self.srv.update_settings(server_settings)
        self.events: list[Any] = []
        self.bodies: dict[int, bytearray] = {}
        self.pump()

    def pump(self) -> list[Any]:
        new: list[Any] = []
        for _ in range(10_000):
            moved = False
            out = self.core.data_to_send()
            if out:
                moved = True
                for event in self.srv.receive_data(out):
                    new.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                        self.srv.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
            back = self.srv.data_to_send()
            if back:
                moved = True
                if self.read_size is None:
                    self.core.receive(back)
                else:
                    self.read(back)
            if not moved:
                break
        self.events += new
        return new

    def read(self, data: bytes) -> None:
        """What an event loop does for a ``BufferedProtocol``: reads into the view
        ``get_buffer`` gives, each followed by ``buffer_updated``."""
        assert self.read_size is not None
        view = memoryview(data)
        while view:
            buf = self.core.get_buffer(-1)
            n = min(len(buf), len(view), self.read_size)
            buf[:n] = view[:n]
            self.core.buffer_updated(n)
            view = view[n:]

    def respond(self, sid: int, messages: list[bytes], trailers: list[Any] | None = None) -> None:
        self.srv.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        body = memoryview(b"".join(grpc(m) for m in messages))
        while body:
            size = min(
                len(body), self.srv.local_flow_control_window(sid), self.srv.max_outbound_frame_size
            )
            assert size > 0
            self.srv.send_data(sid, bytes(body[:size]))
            body = body[size:]
            self.pump()
        self.srv.send_headers(sid, trailers or [(b"grpc-status", b"0")], end_stream=True)
        self.pump()


def test_preface_and_settings_seen_by_h2() -> None:
    pair = Pair()
    changed = [e for e in pair.events if isinstance(e, h2.events.RemoteSettingsChanged)]
    assert changed
    values = {k: v.new_value for k, v in changed[0].changed_settings.items()}
    assert values[SETTINGS.ENABLE_PUSH] == 0
    assert values[SETTINGS.INITIAL_WINDOW_SIZE] == 16 * 1024 * 1024
    assert pair.core.settings_received


def test_unary_roundtrip_in_memory() -> None:
    pair = Pair()
    handle = Handle()
    stream = pair.core.start(handle, "/a.B/C", b"request", 2.5)
    events = pair.pump()
    received = [e for e in events if isinstance(e, h2.events.RequestReceived)][0]
    headers = dict(received.headers)
    assert headers[b":path"] == b"/a.B/C" and headers[b"grpc-timeout"] == b"2500000u"
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    assert bytes(pair.bodies[stream.id]) == grpc(b"request")
    pair.respond(stream.id, [b"response"])
    assert handle.result == b"response" and handle.error is None
    assert pair.core.active == 0


@pytest.mark.parametrize("window", [1, 7, 100, 16384, 65535])
def test_request_respects_small_peer_windows_and_frame_size(window: int) -> None:
    pair = Pair({SETTINGS.INITIAL_WINDOW_SIZE: window})
    handles = [Handle() for _ in range(3)]
    size = min(40_000, window * 500)  # keep the in-memory ping-pong short for tiny windows
    payloads = [bytes([i]) * (size + i) for i in range(3)]
    streams = [pair.core.start(h, "/a.B/C", p, None) for h, p in zip(handles, payloads)]
    pair.pump()  # h2 raises FlowControlError if we overrun a window
    for stream, payload in zip(streams, payloads):
        assert bytes(pair.bodies[stream.id]) == grpc(payload)
    frames = [e for e in pair.events if isinstance(e, h2.events.DataReceived)]
    assert max(len(e.data) for e in frames) <= min(window, 16384)


def test_response_windows_are_given_back() -> None:
    pair = Pair()
    handle = Handle()
    stream = pair.core.start(handle, "/a.B/C", b"x", None)
    pair.pump()
    big = b"z" * (20 * 1024 * 1024)
    pair.respond(stream.id, [big])  # 20 MiB > our 16 MiB stream window: needs WINDOW_UPDATEs
    assert handle.result == big


def test_many_messages_per_frame_on_a_stream() -> None:
    pair = Pair()
    handle = Handle()
    stream = pair.core.start(handle, "/a.B/C", None, None, unary=False)
    pair.core.send(stream, b"hello")
    pair.core.end(stream)
    pair.pump()
    pair.srv.send_headers(stream.id, [(b":status", b"200")])
    pair.srv.send_data(stream.id, b"".join(grpc(b"m%d" % i) for i in range(50)))
    pair.pump()
    assert handle.messages == [b"m%d" % i for i in range(50)]
    pair.srv.send_headers(stream.id, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    assert handle.done and handle.result is None and handle.error is None


class Consumer(Handle):
    """A streaming call's handle that takes every message as it arrives (``consumed``
    right away), as a consumer that keeps up does."""

    def __init__(self, core: Any) -> None:
        super().__init__()
        self.core = core
        self.stream: Any = None

    def push(self, message: bytes) -> None:
        self.messages.append(message)
        self.core.consumed(self.stream, len(message) + 5)


def _open_streaming(pair: Pair) -> Consumer:
    handle = Consumer(pair.core)
    handle.stream = pair.core.start(handle, "/a.B/C", None, None, unary=False)
    pair.core.send(handle.stream, b"go")
    pair.pump()
    pair.srv.send_headers(handle.stream.id, [(b":status", b"200")])
    return handle


OUR_STREAM_WINDOW = 16 * 1024 * 1024


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 6, 9, 1000, 16384])
def test_streaming_messages_split_anywhere(chunk: int) -> None:
    """Messages (and their 5-byte prefixes) cut at every offset arrive whole, in order,
    and exactly the bytes received are given back to the server (no more)."""
    pair = Pair()
    handle = _open_streaming(pair)
    sid = handle.stream.id
    messages = [b"", b"a", b"bc" * 3, bytes(range(256)) * 7, b"", b"z" * 20_000, b"q"]
    body = b"".join(grpc(m) for m in messages)
    for i in range(0, len(body), chunk):
        pair.srv.send_data(sid, body[i : i + chunk])
        pair.pump()
    assert handle.messages == messages
    window = pair.srv.local_flow_control_window(sid)
    assert OUR_STREAM_WINDOW - len(body) <= window <= OUR_STREAM_WINDOW
    pair.srv.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    assert handle.done and handle.error is None


@pytest.mark.parametrize("read_size", [1, 9, 10, 4096, 16393, 65536, 1 << 20])
def test_buffered_reads_carry_frames_across_the_read_buffer(read_size: int) -> None:
    """Reads into ``get_buffer``'s view (asyncio's BufferedProtocol) of any size: several
    times the 256 KiB read buffer arrives whole and in order, frames and messages cut
    across reads and across the buffer's moves of its incomplete frame to the front."""
    pair = Pair(read_size=read_size)
    handle = _open_streaming(pair)
    sid = handle.stream.id
    messages = [bytes([i % 251]) * (1000 + 37 * i) for i in range(300)] + [b""]
    body = b"".join(grpc(m) for m in messages)
    for i in range(0, len(body), 16384):
        pair.srv.send_data(sid, body[i : i + 16384])
        if i // 16384 % 23 == 22:  # many frames per batch of the server's bytes
            pair.pump()
    pair.pump()
    pair.srv.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    assert len(body) > 4 * 262144
    assert handle.messages == messages
    assert handle.done and handle.error is None and not pair.core.closed


def test_buffer_updated_without_get_buffer_is_refused() -> None:
    core = _h2.H2Connection("example:2379")
    with pytest.raises(ValueError):
        core.buffer_updated(1)
    view = core.get_buffer(-1)
    with pytest.raises(ValueError):
        core.buffer_updated(len(view) + 1)


def test_streaming_message_larger_than_the_stream_window() -> None:
    """A streaming response message larger than our 16 MiB stream window: its window is
    given back while it arrives (it could never complete otherwise), and consuming it
    afterwards does not give the same bytes back twice."""
    pair = Pair()
    handle = _open_streaming(pair)
    sid = handle.stream.id
    big = bytes(range(256)) * (80 * 1024)  # 20 MiB
    messages = [b"small", big, b"after"]
    body = memoryview(b"".join(grpc(m) for m in messages))
    for _ in range(100_000):
        if not body:
            break
        size = min(
            len(body), pair.srv.local_flow_control_window(sid), pair.srv.max_outbound_frame_size
        )
        assert size > 0, "the server is blocked: our window was not given back"
        pair.srv.send_data(sid, bytes(body[:size]))
        body = body[size:]
        pair.pump()
    assert handle.messages == messages
    window = pair.srv.local_flow_control_window(sid)
    assert OUR_STREAM_WINDOW // 2 <= window <= OUR_STREAM_WINDOW


def test_streaming_stream_ending_inside_a_message_is_an_error() -> None:
    pair = Pair()
    handle = _open_streaming(pair)
    sid = handle.stream.id
    pair.srv.send_data(sid, grpc(b"x" * 100)[:50])
    pair.srv.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    assert handle.messages == []
    assert isinstance(handle.error, errors.InternalError)
    assert "inside a message" in str(handle.error)


def test_max_concurrent_streams_queues_calls() -> None:
    pair = Pair({SETTINGS.MAX_CONCURRENT_STREAMS: 2})
    handles = [Handle() for _ in range(5)]
    streams = [pair.core.start(h, "/a.B/C", b"%d" % i, None) for i, h in enumerate(handles)]
    pair.pump()
    assert [s.id for s in streams[:2]] == [1, 3]
    assert all(s.id == 0 for s in streams[2:])  # queued
    pair.respond(1, [b"r1"])
    assert streams[2].id == 5
    pair.respond(3, [b"r3"])
    pair.respond(5, [b"r5"])
    pair.respond(streams[3].id, [b"x"])
    pair.respond(streams[4].id, [b"y"])
    assert [h.result for h in handles] == [b"r1", b"r3", b"r5", b"x", b"y"]


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_open_streams_are_found_by_id_whatever_the_order_they_end_in(data: Any) -> None:
    """The core's table of open streams (open addressing by stream id): calls end in any
    order, some cancelled, while a long-lived call stays open as ids run past it, with
    enough in flight to grow the table; every response reaches its own call, frames on a
    cancelled stream are ignored, and ``active`` counts what is open."""
    pair = Pair({SETTINGS.MAX_CONCURRENT_STREAMS: 5000})
    core = pair.core
    keeper = Handle()
    kept = core.start(keeper, "/a.B/C", b"keep", None)
    open_: dict[int, tuple[Any, Handle]] = {}
    # (rounds of up to 100: the ids wrap around the table's 256 slots onto the slots of
    # calls still open, so lookups probe past them and removals must close the gaps)
    for _ in range(data.draw(st.integers(1, 12))):
        for _ in range(data.draw(st.integers(1, 100))):
            handle = Handle()
            stream = core.start(handle, "/a.B/C", b"q", None)
            open_[stream.id] = (stream, handle)
        pair.pump()
        assert core.active == len(open_) + 1
        ending = data.draw(st.permutations(sorted(open_)))
        ending = ending[: data.draw(st.integers(0, len(ending)))]
        for sid in ending:
            stream, handle = open_.pop(sid)
            if sid % 3 == 0:
                core.cancel(stream)
                pair.pump()
                assert not handle.done
            else:
                pair.respond(sid, [b"%d" % sid])
                assert handle.result == b"%d" % sid and handle.error is None
        assert core.active == len(open_) + 1
    for sid in sorted(open_, reverse=True):
        pair.respond(sid, [b"last %d" % sid])
        assert open_[sid][1].result == b"last %d" % sid
    pair.respond(kept.id, [b"kept"])
    assert keeper.result == b"kept" and core.active == 0


def test_hundreds_of_streams_in_flight_grow_the_table() -> None:
    pair = Pair({SETTINGS.MAX_CONCURRENT_STREAMS: 5000})
    handles = [Handle() for _ in range(700)]
    streams = [pair.core.start(h, "/a.B/C", b"x", None) for h in handles]
    pair.pump()
    assert pair.core.active == 700 and all(s.id for s in streams)
    for stream in streams[1::2] + streams[::2]:
        pair.respond(stream.id, [b"%d" % stream.id])
    assert [h.result for h in handles] == [b"%d" % s.id for s in streams]
    assert pair.core.active == 0


def test_cancel_sends_rst_and_ignores_late_frames() -> None:
    pair = Pair()
    handle = Handle()
    stream = pair.core.start(handle, "/a.B/C", b"x", None)
    pair.pump()
    pair.core.cancel(stream)
    events = pair.pump()
    assert [e.error_code for e in events if isinstance(e, h2.events.StreamReset)] == [8]
    # a late response on the reset stream is ignored, HPACK state still followed
    block = pair.srv.encoder.encode([(b":status", b"200"), (b"x-new", b"1")])
    pair.core.receive(frame(1, 4, stream.id, block))  # (h2 refuses to send it itself)
    assert not handle.done and not pair.core.closed
    other = Handle()
    second = pair.core.start(other, "/a.B/C", b"y", None)
    pair.pump()
    pair.respond(second.id, [b"ok"])
    assert other.result == b"ok"


def test_ping_is_acked() -> None:
    pair = Pair()
    pair.srv.ping(b"abcdefgh")
    events = pair.pump()
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [
        b"abcdefgh"
    ]
    pair.core.ping(b"12345678")
    pair.pump()
    assert pair.core.pings_acked == 1


def _acks(events: list[Any]) -> list[bytes]:
    return [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)]


def test_held_ping_acks_wait_for_release_while_calls_are_open() -> None:
    """With hold_ping_acks, a PING that comes while a call is open is answered only when the
    driver releases it; one that comes while another is held gets the held one answered
    first; with no call open, or without hold_ping_acks, the answer is at once."""
    pair = Pair()
    pair.core.hold_ping_acks = True
    pair.srv.ping(b"idle-now")  # no call open: answered at once
    assert _acks(pair.pump()) == [b"idle-now"]
    handle = Handle()
    stream = pair.core.start(handle, "/a.B/C", b"x", None)
    pair.pump()
    pair.srv.ping(b"first-01")
    assert _acks(pair.pump()) == [] and pair.core.ping_held
    pair.srv.ping(b"second-2")
    assert _acks(pair.pump()) == [b"first-01"] and pair.core.ping_held
    pair.core.release_ping()
    assert _acks(pair.pump()) == [b"second-2"] and not pair.core.ping_held
    pair.core.release_ping()  # nothing held: nothing sent
    assert _acks(pair.pump()) == []
    assert (pair.core.pings_received, pair.core.ping_acks_sent) == (3, 3)
    pair.core.hold_ping_acks = False
    pair.srv.ping(b"no-hold!")
    assert _acks(pair.pump()) == [b"no-hold!"] and not pair.core.ping_held
    pair.respond(stream.id, [b"done"])
    assert handle.result == b"done"


def test_a_held_ping_ack_is_not_sent_once_the_connection_closed() -> None:
    pair = Pair()
    pair.core.hold_ping_acks = True
    pair.core.start(Handle(), "/a.B/C", b"x", None)
    pair.pump()
    pair.srv.ping(b"late-ack")
    assert _acks(pair.pump()) == [] and pair.core.ping_held
    pair.core.close()
    pair.core.data_to_send()  # (the GOAWAY)
    pair.core.release_ping()
    assert not pair.core.ping_held and pair.core.data_to_send() == b""


def test_memoized_indexed_blocks_track_the_dynamic_table() -> None:
    """Indexed-only blocks are memoized by their bytes, but only while the dynamic table is
    unchanged: the same bytes mean something else after the table moves."""
    pair = Pair()
    results = []
    for i in range(6):
        handle = Handle()
        stream = pair.core.start(handle, "/a.B/C", b"x", None)
        pair.pump()
        message = "etcdserver: no leader" if i < 3 else "etcdserver: request timed out"
        pair.respond(stream.id, [], [(b"grpc-status", b"14"), (b"grpc-message", message.encode())])
        results.append(type(handle.error))
    assert results == [errors.NoLeaderError] * 3 + [errors.TimeoutError] * 3
    assert pair.core.memo_hits >= 2


# ------------------------------------------------------------------ protocol violations


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big")
    return header + payload


VIOLATIONS = {
    "frame too large": frame(0, 0, 1, b"x" * 16385),
    "DATA on stream 0": frame(0, 0, 0, b"x"),
    "HEADERS on an idle stream": frame(1, 4, 99, b"\x88"),
    "HEADERS on a server stream": frame(1, 4, 2, b"\x88"),
    "PUSH_PROMISE": frame(5, 4, 1, b"\x00\x00\x00\x02\x88"),
    "CONTINUATION without HEADERS": frame(9, 4, 1, b"\x88"),
    "interleaved frame in a header block": frame(1, 0, 1, b"\x88") + frame(6, 0, 0, b"\x00" * 8),
    "SETTINGS with bad length": frame(4, 0, 0, b"\x00\x01\x00"),
    "SETTINGS on a stream": frame(4, 0, 1, b""),
    "SETTINGS ack with payload": frame(4, 1, 0, b"\x00" * 6),
    "bad ENABLE_PUSH": frame(4, 0, 0, b"\x00\x02\x00\x00\x00\x02"),
    "window too large": frame(4, 0, 0, b"\x00\x04\x80\x00\x00\x00"),
    "bad MAX_FRAME_SIZE": frame(4, 0, 0, b"\x00\x05\x00\x00\x00\x01"),
    "PING wrong size": frame(6, 0, 0, b"\x00" * 7),
    "PING on a stream": frame(6, 0, 1, b"\x00" * 8),
    "WINDOW_UPDATE of 0": frame(8, 0, 0, b"\x00\x00\x00\x00"),
    "WINDOW_UPDATE overflow": frame(8, 0, 0, b"\x7f\xff\xff\xff"),
    "WINDOW_UPDATE wrong size": frame(8, 0, 0, b"\x00\x00\x01"),
    "RST_STREAM wrong size": frame(3, 0, 1, b"\x00\x00\x00"),
    "GOAWAY too short": frame(7, 0, 0, b"\x00\x00\x00"),
    "PRIORITY wrong size": frame(2, 0, 1, b"\x00"),
    "DATA padding too long": frame(1, 4, 1, b"\x88") + frame(0, 8, 1, b"\x05abc"),
    "corrupt HPACK": frame(1, 4, 1, b"\x80"),
    "HPACK bad index": frame(1, 4, 1, b"\xfe"),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_protocol_violation_closes_connection_and_fails_calls(name: str) -> None:
    core = _h2.H2Connection("h:1")
    core.initiate()
    core.receive(frame(4, 0, 0, b""))  # the server's SETTINGS
    handle = Handle()
    core.start(handle, "/a.B/C", b"x", None)
    core.data_to_send()
    core.receive(VIOLATIONS[name])
    assert core.closed, name
    assert isinstance(core.error, errors.InternalError)
    assert isinstance(handle.error, errors.InternalError)
    out = core.data_to_send()
    goaway = [f for f in _frames(out) if isinstance(f, hf.GoAwayFrame)]
    assert goaway and goaway[0].error_code != 0
    core.receive(b"\x00" * 100)  # later bytes are ignored
    with pytest.raises(errors.UnavailableError):
        core.start(Handle(), "/a.B/C", b"x", None)


def _frames(data: bytes) -> list[Any]:
    out, pos = [], 0
    while pos + 9 <= len(data):
        parsed, length = hf.Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        parsed.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        out.append(parsed)
        pos += 9 + length
    return out


def test_stream_level_errors_only_fail_that_stream() -> None:
    core = _h2.H2Connection("h:1")
    core.initiate()
    a, b = Handle(), Handle()
    core.start(a, "/a.B/C", b"x", None)
    core.start(b, "/a.B/C", b"y", None)
    core.data_to_send()
    core.receive(frame(0, 0, 1, grpc(b"early")))  # DATA before HEADERS on stream 1
    assert isinstance(a.error, errors.InternalError) and not core.closed
    core.receive(frame(3, 0, 3, (7).to_bytes(4, "big")))  # REFUSED_STREAM
    assert isinstance(b.error, errors.UnavailableError) and b.error.sent is False
    assert core.active == 0 and not core.closed


def test_goaway_fails_higher_streams_only() -> None:
    core = _h2.H2Connection("h:1")
    handles = [Handle() for _ in range(3)]
    for h in handles:
        core.start(h, "/a.B/C", b"x", None)
    core.data_to_send()
    core.receive(frame(7, 0, 0, (3).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"bye"))
    assert core.goaway_received and not core.usable
    assert [h.done for h in handles] == [False, False, True]
    assert isinstance(handles[2].error, errors.UnavailableError)
    assert handles[2].error.sent is False and "bye" in str(handles[2].error)
    # no new call starts on a connection the server is leaving: it was never sent
    with pytest.raises(errors.UnavailableError, match="GOAWAY") as info:
        core.start(Handle(), "/a.B/C", b"late", None)
    assert info.value.sent is False
    assert core.active == 2


def test_connection_lost_sent_flags() -> None:
    core = _h2.H2Connection("h:1")
    flushed, pending = Handle(), Handle()
    core.start(flushed, "/a.B/C", b"x", None)
    core.data_to_send()
    core.start(pending, "/a.B/C", b"y", None)
    core.fail_all("gone")
    assert isinstance(flushed.error, errors.UnavailableError) and flushed.error.sent is None
    assert isinstance(pending.error, errors.UnavailableError) and pending.error.sent is False
