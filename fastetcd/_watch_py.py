"""Pure-Python twin of the compiled watch core (``src/_watch.pyx`` -> ``fastetcd._watch``).

It exports exactly the names declared in ``fastetcd/_watch.pyi`` and must behave like the
compiled module: the same request bytes, the same decoded objects, the same exceptions and
the same state-machine decisions (``tests/test_watch_codec.py`` runs every test on both and
checks the codec against protobuf). The semantics are documented in the stub.

Decoding reuses the KV twin's readers (``fastetcd._codec_py``), so events carry that
module's ``KeyValue`` and ``ResponseHeader``. No protobuf runtime is imported.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from fastetcd._codec_py import (
    _EMPTY_HEADER,
    _INT32_MAX,
    _INT32_MIN,
    _INT64_MAX,
    _INT64_MIN,
    _MASK64,
    KeyValue,
    ResponseHeader,
    _as_bytes,
    _check_bytes,
    _check_int,
    _header,
    _int64,
    _key_value,
    _length,
    _new,
    _Record,
    _setattr,
    _skip,
    _tag_at,
    _uvarint,
    _varint,
)
from fastetcd.errors import (
    CancelledError,
    CompactedError,
    DecodeError,
    EtcdError,
    InternalError,
    NoLeaderError,
    StatusCode,
    UnavailableError,
    from_status,
)

__all__ = [
    "EventType",
    "Event",
    "WatchResponse",
    "FILTER_NOPUT",
    "FILTER_NODELETE",
    "PROGRESS_WATCH_ID",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "encode_watch_create_request",
    "encode_watch_cancel_request",
    "encode_watch_progress_request",
    "decode_event",
    "decode_watch_response",
    "EventIterator",
    "Watcher",
    "WatchCore",
]

FILTER_NOPUT = 0
FILTER_NODELETE = 1
PROGRESS_WATCH_ID = -1
DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024

# What a buffered response costs beyond its wire bytes: the Python objects it became.
_RESPONSE_OVERHEAD = 256
_EVENT_OVERHEAD = 256


# --------------------------------------------------------------------------- result classes


class EventType(enum.IntEnum):
    """mvccpb.Event.EventType: what happened to the key."""

    PUT = 0
    DELETE = 1


_PUT = EventType.PUT
_DELETE = EventType.DELETE


class Event(_Record):
    """mvccpb.Event: one change to one key (``kv`` after it; ``prev_kv`` before it, when the
    watch asked for it with ``prev_kv=True``)."""

    __slots__ = ("type", "kv", "prev_kv")

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    def __init__(self, type: int, kv: KeyValue, prev_kv: KeyValue | None = None) -> None:
        _setattr(self, "type", type)
        _setattr(self, "kv", kv)
        _setattr(self, "prev_kv", prev_kv)


class WatchResponse(_Record):
    """etcdserverpb.WatchResponse: what one watch received in one response."""

    __slots__ = (
        "header",
        "watch_id",
        "created",
        "canceled",
        "compact_revision",
        "cancel_reason",
        "fragment",
        "events",
    )

    header: ResponseHeader
    watch_id: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    fragment: bool
    events: tuple[Event, ...]

    def __init__(
        self,
        header: ResponseHeader,
        watch_id: int = 0,
        created: bool = False,
        canceled: bool = False,
        compact_revision: int = 0,
        cancel_reason: str = "",
        fragment: bool = False,
        events: tuple[Event, ...] = (),
    ) -> None:
        _setattr(self, "header", header)
        _setattr(self, "watch_id", watch_id)
        _setattr(self, "created", created)
        _setattr(self, "canceled", canceled)
        _setattr(self, "compact_revision", compact_revision)
        _setattr(self, "cancel_reason", cancel_reason)
        _setattr(self, "fragment", fragment)
        _setattr(self, "events", events)

    @property
    def is_progress_notify(self) -> bool:
        """True for a progress notification: no events, not created, not canceled, no
        compact revision, and a header revision (etcd's ``IsProgressNotify``)."""
        return (
            not self.events
            and not self.created
            and not self.canceled
            and self.compact_revision == 0
            and self.header.revision != 0
        )


_EMPTY_KV = KeyValue()

# --------------------------------------------------------------------------- encoders

_PROGRESS_REQUEST = b"\x1a\x00"


def encode_watch_create_request(
    key: bytes,
    range_end: bytes,
    start_revision: int,
    progress_notify: bool,
    filters: Sequence[int],
    prev_kv: bool,
    watch_id: int,
    fragment: bool,
) -> bytes:
    """WatchRequest{create_request=1: WatchCreateRequest{key=1 range_end=2 start_revision=3
    progress_notify=4 filters=5 (packed enum) prev_kv=6 watch_id=7 fragment=8}}."""
    _check_bytes(key, "key")
    _check_bytes(range_end, "range_end")
    rev = _check_int(start_revision, "start_revision", _INT64_MIN, _INT64_MAX)
    wid = _check_int(watch_id, "watch_id", _INT64_MIN, _INT64_MAX)
    if isinstance(filters, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"filters must be a sequence of ints, not {type(filters).__name__}")
    packed = bytearray()
    for i, value in enumerate(tuple(filters)):
        packed += _uvarint(_check_int(value, f"filters[{i}]", _INT32_MIN, _INT32_MAX) & _MASK64)
    out = bytearray()
    if key:
        out += b"\x0a" + _uvarint(len(key)) + key
    if range_end:
        out += b"\x12" + _uvarint(len(range_end)) + range_end
    if rev:
        out += b"\x18" + _uvarint(rev & _MASK64)
    if progress_notify:
        out += b"\x20\x01"
    if packed:
        out += b"\x2a" + _uvarint(len(packed)) + packed
    if prev_kv:
        out += b"\x30\x01"
    if wid:
        out += b"\x38" + _uvarint(wid & _MASK64)
    if fragment:
        out += b"\x40\x01"
    return b"\x0a" + _uvarint(len(out)) + bytes(out)


def encode_watch_cancel_request(watch_id: int) -> bytes:
    """WatchRequest{cancel_request=2: WatchCancelRequest{watch_id=1}}."""
    wid = _check_int(watch_id, "watch_id", _INT64_MIN, _INT64_MAX)
    if not wid:
        return b"\x12\x00"
    inner = b"\x08" + _uvarint(wid & _MASK64)
    return b"\x12" + _uvarint(len(inner)) + inner


def encode_watch_progress_request() -> bytes:
    """WatchRequest{progress_request=3: WatchProgressRequest{}}."""
    return _PROGRESS_REQUEST


# --------------------------------------------------------------------------- decoders

_EVENT_FIELDS = frozenset({1, 2, 3})
_RESPONSE_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 11})


def _event(buf: bytes, pos: int, end: int) -> Event:
    etype: int = _PUT
    kv = _EMPTY_KV
    prev_kv = None
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x12:
            n, pos = _length(buf, pos, end)
            kv = _key_value(buf, pos, pos + n)
            pos += n
        elif tag == 0x08:
            value, pos = _varint(buf, pos, end)
            value &= 0xFFFFFFFF
            if value == 0:
                etype = _PUT
            elif value == 1:
                etype = _DELETE
            else:
                etype = value - (1 << 32) if value & 0x80000000 else value
        elif tag == 0x1A:
            n, pos = _length(buf, pos, end)
            prev_kv = _key_value(buf, pos, pos + n)
            pos += n
        else:
            pos = _skip(buf, pos, end, tag, _EVENT_FIELDS)
    event: Event = _new(Event)
    _setattr(event, "type", etype)
    _setattr(event, "kv", kv)
    _setattr(event, "prev_kv", prev_kv)
    return event


def _watch_response(buf: bytes, pos: int, end: int) -> WatchResponse:
    header = _EMPTY_HEADER
    watch_id = compact_revision = 0
    created = canceled = fragment = False
    cancel_reason = ""
    events: list[Event] = []
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _tag_at(buf, pos, end)
        if tag == 0x5A:
            n, pos = _length(buf, pos, end)
            events.append(_event(buf, pos, pos + n))
            pos += n
        elif tag == 0x0A:
            n, pos = _length(buf, pos, end)
            header = _header(buf, pos, pos + n)
            pos += n
        elif tag == 0x10:
            watch_id, pos = _varint(buf, pos, end)
            watch_id = _int64(watch_id)
        elif tag == 0x18:
            flag, pos = _varint(buf, pos, end)
            created = flag != 0
        elif tag == 0x20:
            flag, pos = _varint(buf, pos, end)
            canceled = flag != 0
        elif tag == 0x28:
            compact_revision, pos = _varint(buf, pos, end)
            compact_revision = _int64(compact_revision)
        elif tag == 0x32:
            n, pos = _length(buf, pos, end)
            try:
                cancel_reason = buf[pos : pos + n].decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("cancel_reason is not valid UTF-8") from None
            pos += n
        elif tag == 0x38:
            flag, pos = _varint(buf, pos, end)
            fragment = flag != 0
        else:
            pos = _skip(buf, pos, end, tag, _RESPONSE_FIELDS)
    response: WatchResponse = _new(WatchResponse)
    _setattr(response, "header", header)
    _setattr(response, "watch_id", watch_id)
    _setattr(response, "created", created)
    _setattr(response, "canceled", canceled)
    _setattr(response, "compact_revision", compact_revision)
    _setattr(response, "cancel_reason", cancel_reason)
    _setattr(response, "fragment", fragment)
    _setattr(response, "events", tuple(events))
    return response


def decode_event(data: bytes) -> Event:
    """mvccpb.Event: type=1 (enum) kv=2 prev_kv=3."""
    buf = _as_bytes(data)
    return _event(buf, 0, len(buf))


def decode_watch_response(data: bytes) -> WatchResponse:
    """WatchResponse: header=1 watch_id=2 created=3 canceled=4 compact_revision=5
    cancel_reason=6 (string) fragment=7 events=11 (repeated Event)."""
    buf = _as_bytes(data)
    return _watch_response(buf, 0, len(buf))


# --------------------------------------------------------------------------- event iteration


class EventIterator:
    """The events of the responses ``next_response()`` returns, one by one (responses with
    no events are skipped); iteration ends when ``next_response`` raises StopIteration. Used
    by ``Watch.events()``."""

    __slots__ = ("_next_response", "_events", "_i")

    def __init__(self, next_response: Callable[[], WatchResponse]) -> None:
        if not callable(next_response):
            raise TypeError("next_response must be callable")
        self._next_response = next_response
        self._events: tuple[Event, ...] = ()
        self._i = 0

    def __iter__(self) -> EventIterator:
        return self

    def __next__(self) -> Event:
        events = self._events
        i = self._i
        while i >= len(events):
            response = self._next_response()
            if not isinstance(response, WatchResponse):
                raise TypeError(
                    f"next_response returned {type(response).__name__}, not WatchResponse"
                )
            events = self._events = response.events
            i = 0
        self._i = i + 1
        return events[i]


# --------------------------------------------------------------------------- state machine


class _Backoff(Protocol):
    def next_delay(self) -> float: ...

    def reset(self) -> None: ...


class Watcher:
    """One watch of a :class:`WatchCore` (made by :meth:`WatchCore.add`). Read-only for
    everyone but the core, except ``waker``, a free slot for the driver."""

    __slots__ = (
        "waker",
        "_key",
        "_range_end",
        "_start_revision",
        "_progress_notify",
        "_filters",
        "_prev_kv",
        "_fragment",
        "_next_revision",
        "_watch_id",
        "_created",
        "_done",
        "_error",
        "_buffer",
        "_buffered_bytes",
        "_over",
        "_frag_events",
        "_frag_bytes",
        "_fragments",
    )

    def __init__(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        progress_notify: bool,
        filters: tuple[int, ...],
        prev_kv: bool,
        fragment: bool,
    ) -> None:
        self.waker: object = None
        self._key = key
        self._range_end = range_end
        self._start_revision = start_revision
        self._progress_notify = progress_notify
        self._filters = filters
        self._prev_kv = prev_kv
        self._fragment = fragment
        self._next_revision = start_revision
        self._watch_id = -1
        self._created = False
        self._done = False
        self._error: EtcdError | None = None
        self._buffer: deque[tuple[WatchResponse, int]] = deque()
        self._buffered_bytes = 0
        self._over = False
        self._frag_events: list[Event] | None = None
        self._frag_bytes = 0
        self._fragments = 0

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def range_end(self) -> bytes:
        return self._range_end

    @property
    def start_revision(self) -> int:
        return self._start_revision

    @property
    def next_revision(self) -> int:
        """Where the watch resumes after a stream break (0: "now", not created yet)."""
        return self._next_revision

    @property
    def watch_id(self) -> int:
        """The server's id for this watch on the current stream; -1 while not created."""
        return self._watch_id

    @property
    def created(self) -> bool:
        """True once the first ``created`` response arrived."""
        return self._created

    @property
    def done(self) -> bool:
        """True once nothing more will be buffered (canceled, or ended by ``error``)."""
        return self._done

    @property
    def error(self) -> EtcdError | None:
        """Why the watch ended (None: canceled by the client, or still running)."""
        return self._error

    @property
    def buffered(self) -> int:
        """Responses waiting for the consumer."""
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        """Their accounted size (wire bytes plus a fixed allowance per response and event)."""
        return self._buffered_bytes

    @property
    def fragments(self) -> int:
        """Fragment messages received and joined so far (statistics)."""
        return self._fragments

    def _create_request(self) -> bytes:
        return encode_watch_create_request(
            self._key,
            self._range_end,
            self._next_revision,
            self._progress_notify,
            self._filters,
            self._prev_kv,
            0,
            self._fragment,
        )

    def __repr__(self) -> str:
        state = "done" if self._done else ("created" if self._created else "pending")
        return (
            f"<Watcher key={self._key!r} range_end={self._range_end!r} "
            f"next_revision={self._next_revision} watch_id={self._watch_id} {state}>"
        )


def _cancel_error(response: WatchResponse, watcher: Watcher) -> EtcdError:
    """The error that ends a watch the server canceled."""
    if response.compact_revision:
        return CompactedError(
            f"watch from revision {watcher._next_revision} canceled: revisions up to "
            f"{response.compact_revision} have been compacted",
            compact_revision=response.compact_revision,
        )
    if response.cancel_reason:
        return from_status(StatusCode.UNKNOWN, response.cancel_reason)
    return CancelledError("the server canceled the watch")


class WatchCore:
    """The watches multiplexed on one Watch stream: create queue, id map, resume points,
    fragment joining, per-watch buffers, and the reconnect decision.

    Every method returns at once; the requests it wants sent accumulate for
    :meth:`take_requests`, the watchers whose consumers must be woken for
    :meth:`take_woken`. Not thread-safe: the driver serializes calls."""

    __slots__ = (
        "_backoff",
        "_require_leader",
        "_max_bytes",
        "_connected",
        "_responded",
        "_live",
        "_queue",
        "_inflight",
        "_by_id",
        "_canceling",
        "_requests",
        "_woken",
        "_over",
    )

    def __init__(
        self,
        backoff: _Backoff,
        *,
        require_leader: bool = False,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        if max_buffered_bytes < 1:
            raise ValueError("max_buffered_bytes must be at least 1")
        self._backoff = backoff
        self._require_leader = bool(require_leader)
        self._max_bytes = int(max_buffered_bytes)
        self._connected = False
        self._responded = False
        # Live (not done) watchers in creation order: the order creates are re-sent in.
        self._live: dict[Watcher, None] = {}
        self._queue: deque[Watcher] = deque()
        self._inflight: Watcher | None = None
        self._by_id: dict[int, Watcher] = {}
        self._canceling: set[int] = set()
        self._requests: list[bytes] = []
        self._woken: list[Watcher] = []
        self._over = 0

    @property
    def connected(self) -> bool:
        """True between :meth:`on_connect` and :meth:`on_disconnect`."""
        return self._connected

    @property
    def active(self) -> int:
        """Watches not done (the driver ends the stream when this drops to 0)."""
        return len(self._live)

    @property
    def paused(self) -> bool:
        """True while some watch buffers more than ``max_buffered_bytes``: stop reading."""
        return self._over > 0

    @property
    def max_buffered_bytes(self) -> int:
        return self._max_bytes

    # ----------------------------------------------------------------- consumers' side

    def add(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        progress_notify: bool,
        filters: Sequence[int],
        prev_kv: bool,
        fragment: bool,
    ) -> Watcher:
        """Register a watch (validated by encoding its create request) and queue its create."""
        if isinstance(filters, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"filters must be a sequence of ints, not {type(filters).__name__}")
        flt = tuple(filters)
        encode_watch_create_request(
            key, range_end, start_revision, progress_notify, flt, prev_kv, 0, fragment
        )
        watcher = Watcher(
            key,
            range_end,
            _check_int(start_revision, "start_revision", _INT64_MIN, _INT64_MAX),
            bool(progress_notify),
            flt,
            bool(prev_kv),
            bool(fragment),
        )
        self._live[watcher] = None
        self._queue.append(watcher)
        if self._connected and self._inflight is None:
            self._send_next_create()
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        """End ``watcher`` (no error), drop its buffer, and cancel it on the server."""
        if watcher._done:
            if watcher._buffer:
                self._drop_buffer(watcher)
            return
        self._end(watcher, None)
        self._drop_buffer(watcher)
        wid = watcher._watch_id
        if wid >= 0 and self._by_id.get(wid) is watcher:
            del self._by_id[wid]
            if self._connected:
                self._requests.append(encode_watch_cancel_request(wid))
                self._canceling.add(wid)
        # A watcher whose create is in flight is canceled when its created response comes.

    def request_progress(self) -> None:
        """Queue a progress request (nothing when disconnected)."""
        if self._connected:
            self._requests.append(_PROGRESS_REQUEST)

    def pop(self, watcher: Watcher) -> WatchResponse | None:
        """The next buffered response of ``watcher``, or None when its buffer is empty."""
        if not watcher._buffer:
            return None
        response, cost = watcher._buffer.popleft()
        watcher._buffered_bytes -= cost
        if watcher._over and watcher._buffered_bytes <= self._max_bytes:
            watcher._over = False
            self._over -= 1
        return response

    # ----------------------------------------------------------------- the stream's side

    def on_connect(self) -> None:
        """A new stream is open: queue the create of every live watch from its resume point."""
        self._connected = True
        self._responded = False
        self._inflight = None
        self._by_id.clear()
        self._canceling.clear()
        self._requests.clear()
        self._queue = deque(self._live)
        self._send_next_create()

    def feed(self, data: bytes) -> None:
        """A response arrived: decode it and :meth:`apply` it (a DecodeError changes nothing)."""
        self.apply(decode_watch_response(data), len(data))

    def feed_many(self, batch: Iterable[bytes]) -> None:
        """Responses arrived, in order (an iterable of messages, e.g. what one read of the
        stream brought): decode and apply each in turn. A DecodeError is raised after the
        responses before the bad one have been applied (it and those after it change
        nothing)."""
        for data in batch:
            self.apply(decode_watch_response(data), len(data))

    def apply(self, response: WatchResponse, size: int) -> None:
        """Apply a decoded response of ``size`` wire bytes."""
        if not self._connected:
            return
        if not self._responded:
            self._responded = True
            self._backoff.reset()
        wid = response.watch_id
        if response.created:
            self._on_created(response, size)
            return
        if wid == PROGRESS_WATCH_ID:
            if not response.events and not response.canceled:
                for each in self._by_id.values():
                    self._deliver(each, response, size)
            return
        found = self._by_id.get(wid)
        if found is None:
            if wid not in self._canceling:
                # A response for a watch this client does not know: cancel it, as clientv3.
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
            return
        watcher = found
        if response.fragment:
            if watcher._frag_events is None:
                watcher._frag_events = []
            watcher._frag_events.extend(response.events)
            watcher._frag_bytes += size
            watcher._fragments += 1
            return
        if watcher._frag_events is not None:
            events = tuple(watcher._frag_events) + response.events
            size += watcher._frag_bytes
            watcher._frag_events = None
            watcher._frag_bytes = 0
            watcher._fragments += 1
            response = _with_events(response, events)
        if response.canceled or response.compact_revision:
            del self._by_id[wid]
            self._canceling.add(wid)
            self._end(watcher, _cancel_error(response, watcher))
            return
        events = response.events
        if events:
            next_revision = watcher._next_revision
            if events[0].kv.mod_revision < next_revision:
                events = tuple(e for e in events if e.kv.mod_revision >= next_revision)
                if not events:
                    return
                response = _with_events(response, events)
            watcher._next_revision = events[-1].kv.mod_revision + 1
        else:
            # A progress notification for this watch alone (progress_notify=True): etcd sends
            # those only to watchers that are synced, so nothing before it is pending.
            revision = response.header.revision + 1
            if revision > watcher._next_revision:
                watcher._next_revision = revision
        self._deliver(watcher, response, size)

    def on_disconnect(self, error: EtcdError | None) -> float | None:
        """The stream ended (``error`` None: cleanly). Return the wait before reconnecting,
        or None when the error ends every watch (then they are done, with that error)."""
        self._connected = False
        self._inflight = None
        self._by_id.clear()
        self._canceling.clear()
        self._requests.clear()
        self._queue.clear()
        for watcher in self._live:
            watcher._watch_id = -1
            watcher._frag_events = None
            watcher._frag_bytes = 0
        if error is None or _resumable(error, self._require_leader):
            return self._backoff.next_delay()
        self.fail(error)
        return None

    def fail(self, error: EtcdError) -> None:
        """End every live watch with ``error`` (e.g. the stream could not be opened)."""
        for watcher in list(self._live):
            self._end(watcher, error)
        self._queue.clear()
        self._inflight = None
        self._by_id.clear()

    def take_requests(self) -> list[bytes]:
        """The requests to send on the current stream, in order (and forget them)."""
        requests = self._requests
        self._requests = []
        return requests

    def take_woken(self) -> list[Watcher]:
        """The watchers with new responses or a new end (and forget them)."""
        woken = self._woken
        self._woken = []
        return woken

    # ----------------------------------------------------------------- internals

    def _send_next_create(self) -> None:
        queue = self._queue
        while queue:
            watcher = queue.popleft()
            if watcher._done:
                continue
            self._inflight = watcher
            self._requests.append(watcher._create_request())
            return

    def _on_created(self, response: WatchResponse, size: int) -> None:
        inflight = self._inflight
        self._inflight = None
        wid = response.watch_id
        if inflight is None:
            # Not ours (nothing was being created): make sure it does not stay open.
            if not response.canceled and wid not in self._canceling:
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
        elif inflight._done:
            # Canceled by the client while its create was in flight.
            if not response.canceled:
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
        elif response.canceled:
            self._end(inflight, _cancel_error(response, inflight))
        else:
            inflight._watch_id = wid
            self._by_id[wid] = inflight
            if inflight._next_revision == 0:
                inflight._next_revision = response.header.revision + 1
            if not inflight._created:
                inflight._created = True
                self._deliver(inflight, response, size)
        self._send_next_create()

    def _deliver(self, watcher: Watcher, response: WatchResponse, size: int) -> None:
        cost = size + _RESPONSE_OVERHEAD + _EVENT_OVERHEAD * len(response.events)
        watcher._buffer.append((response, cost))
        watcher._buffered_bytes += cost
        if not watcher._over and watcher._buffered_bytes > self._max_bytes:
            watcher._over = True
            self._over += 1
        self._woken.append(watcher)

    def _end(self, watcher: Watcher, error: EtcdError | None) -> None:
        watcher._done = True
        watcher._error = error
        watcher._frag_events = None
        watcher._frag_bytes = 0
        self._live.pop(watcher, None)
        self._woken.append(watcher)

    def _drop_buffer(self, watcher: Watcher) -> None:
        watcher._buffer.clear()
        watcher._buffered_bytes = 0
        if watcher._over:
            watcher._over = False
            self._over -= 1


def _with_events(response: WatchResponse, events: tuple[Event, ...]) -> WatchResponse:
    return WatchResponse(
        response.header,
        response.watch_id,
        response.created,
        response.canceled,
        response.compact_revision,
        response.cancel_reason,
        False,
        events,
    )


def _resumable(error: EtcdError, require_leader: bool) -> bool:
    """Whether a watch stream that failed with ``error`` is opened again (clientv3's rule:
    UNAVAILABLE and INTERNAL are transient; "no leader" ends ``require_leader`` watches)."""
    if isinstance(error, NoLeaderError):
        return not require_leader
    return isinstance(error, (UnavailableError, InternalError, CancelledError))
