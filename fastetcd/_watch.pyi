"""Type stub shared by the compiled watch core (``fastetcd._watch``, built from
``src/_watch.pyx``) and its pure-Python twin (``fastetcd._watch_py``). Both export exactly
these names and behave identically: the same request bytes, the same decoded objects, the
same exceptions and the same state-machine decisions. Neither does I/O, sleeps or reads a
clock; the drivers in ``fastetcd/watch.py`` move the bytes and do the waiting.

Codec. Encoders follow the KV codec's rules (``fastetcd/_codec.pyi``): proto3 defaults
omitted, fields in field-number order, a set ``oneof`` member always written (so a
``WatchCancelRequest`` for watch id 0 and a ``WatchProgressRequest`` are never empty), repeated
enums (``filters``) packed, int64 values as 64-bit two's complement varints; a non-int raises
TypeError, an int out of range OverflowError, a non-bytes key TypeError. Decoders follow the
KV decoders' rules (unknown fields skipped, malformed input raises
``fastetcd.errors.DecodeError``), and in addition:

  * ``cancel_reason`` is UTF-8 text; invalid UTF-8 raises ``DecodeError`` (as protobuf does);
  * an event ``type`` is an :class:`EventType` for 0 and 1, the plain ``int`` otherwise
    (an enum is open in proto3: protobuf keeps unknown values, so do we); it is read as an
    int32 (the low 32 bits of the varint, signed), as protobuf does;
  * an absent ``kv`` decodes as ``KeyValue()`` (all defaults), an absent ``prev_kv`` as None;
  * the ``KeyValue`` and ``ResponseHeader`` objects are the KV codec's own classes (the
    compiled core builds ``fastetcd._codec``'s, the pure twin ``fastetcd._codec_py``'s).

Result classes are slotted and immutable, compare by value (same class), hash, pickle and
``repr`` like the KV codec's (``fastetcd/_codec.pyi``).

State machine (:class:`WatchCore`: the watches multiplexed on one gRPC Watch stream):

  * creates are serialized, as etcd requires: one create request is in flight at a time
    and the next goes out when its ``created`` response arrives;
  * resume rule: every watch keeps ``next_revision``; after a stream break each live watch
    is created again with ``start_revision = next_revision``. ``next_revision`` is the last
    delivered event's ``mod_revision + 1``; after the ``created`` response of a watch that
    started "now" (start revision 0) it is ``header.revision + 1``; after a progress
    notification addressed to the watch it is ``max(next_revision, header.revision + 1)``.
    Progress responses for the whole stream (watch id -1, answers to ``request_progress``)
    are delivered but never move ``next_revision``: etcd before 3.5.8/3.4.24 sends them even
    to a watcher that is still catching up (etcd-io/etcd#15220). Events with a
    ``mod_revision`` below ``next_revision`` are never delivered (no repeats);
  * a watch canceled by the server ends with an error after its buffered responses:
    ``CompactedError`` (carrying ``compact_revision``) when its start revision was
    compacted, else the error named by ``cancel_reason``;
  * fragments (``fragment=True`` watches) are joined into one response before delivery;
  * stream errors: UNAVAILABLE (incl. etcd's "no leader" on a stream without
    ``require_leader``), INTERNAL, CANCELLED and a clean end of stream are resumed after a
    backoff; "no leader" on a ``require_leader`` stream, a ``DecodeError`` and anything else
    end every watch of the stream with that error;
  * buffering: each watch buffers delivered responses until its consumer pops them; a
    watch whose buffer holds more than ``max_buffered_bytes`` (wire bytes plus a fixed
    allowance per event) sets ``paused``: the driver stops reading the stream until the
    consumer drains it (or cancels), so memory stays bounded and etcd, seeing the stream
    back up, keeps the watcher "unsynced" and later replays from its history.
"""

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from fastetcd._codec import KeyValue, ResponseHeader
from fastetcd.errors import EtcdError

class EventType(enum.IntEnum):
    """mvccpb.Event.EventType: what happened to the key."""

    PUT = 0
    DELETE = 1

class Event:
    """mvccpb.Event: one change to one key (``kv`` after it; ``prev_kv`` before it, when the
    watch asked for it with ``prev_kv=True``)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None
    def __init__(self, type: int, kv: KeyValue, prev_kv: KeyValue | None = None) -> None: ...

class WatchResponse:
    """etcdserverpb.WatchResponse: what one watch received in one response."""

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
    ) -> None: ...
    @property
    def is_progress_notify(self) -> bool:
        """True for a progress notification: no events, not created, not canceled, no
        compact revision, and a header revision (etcd's ``IsProgressNotify``)."""

# WatchCreateRequest.FilterType
FILTER_NOPUT: int
FILTER_NODELETE: int
#: The watch id of responses addressed to every watch of a stream (etcd's InvalidWatchID).
PROGRESS_WATCH_ID: int
#: Default of WatchCore's max_buffered_bytes.
DEFAULT_MAX_BUFFERED_BYTES: int

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

def encode_watch_cancel_request(watch_id: int) -> bytes:
    """WatchRequest{cancel_request=2: WatchCancelRequest{watch_id=1}}."""

def encode_watch_progress_request() -> bytes:
    """WatchRequest{progress_request=3: WatchProgressRequest{}}."""

def decode_event(data: bytes) -> Event:
    """mvccpb.Event: type=1 (enum) kv=2 prev_kv=3."""

def decode_watch_response(data: bytes) -> WatchResponse:
    """WatchResponse: header=1 watch_id=2 created=3 canceled=4 compact_revision=5
    cancel_reason=6 (string) fragment=7 events=11 (repeated Event)."""

class EventIterator:
    """The events of the responses ``next_response()`` returns, one by one (responses with
    no events are skipped); iteration ends when ``next_response`` raises StopIteration. A
    ``next_response`` that returns anything but a :class:`WatchResponse` raises TypeError.
    Used by ``Watch.events()``: the per-event step runs in the core."""

    def __init__(self, next_response: Callable[[], WatchResponse]) -> None: ...
    def __iter__(self) -> EventIterator: ...
    def __next__(self) -> Event: ...

class _Backoff(Protocol):
    def next_delay(self) -> float: ...
    def reset(self) -> None: ...

class Watcher:
    """One watch of a :class:`WatchCore` (made by :meth:`WatchCore.add`). Read-only for
    everyone but the core, except ``waker``, a free slot for the driver."""

    waker: object
    @property
    def key(self) -> bytes: ...
    @property
    def range_end(self) -> bytes: ...
    @property
    def start_revision(self) -> int: ...
    @property
    def next_revision(self) -> int:
        """Where the watch resumes after a stream break (0: "now", not created yet)."""
    @property
    def watch_id(self) -> int:
        """The server's id for this watch on the current stream; -1 while not created."""
    @property
    def created(self) -> bool:
        """True once the first ``created`` response arrived."""
    @property
    def done(self) -> bool:
        """True once nothing more will be buffered (canceled, or ended by ``error``)."""
    @property
    def error(self) -> EtcdError | None:
        """Why the watch ended (None: canceled by the client, or still running)."""
    @property
    def buffered(self) -> int:
        """Responses waiting for the consumer."""
    @property
    def buffered_bytes(self) -> int:
        """Their accounted size (wire bytes plus a fixed allowance per response and event)."""
    @property
    def fragments(self) -> int:
        """Fragment messages received and joined so far (statistics)."""

class WatchCore:
    """The watches multiplexed on one Watch stream: create queue, id map, resume points,
    fragment joining, per-watch buffers, and the reconnect decision.

    Every method returns at once; the requests it wants sent accumulate for
    :meth:`take_requests`, the watchers whose consumers must be woken for
    :meth:`take_woken`. Not thread-safe: the driver serializes calls."""

    def __init__(
        self,
        backoff: _Backoff,
        *,
        require_leader: bool = False,
        max_buffered_bytes: int = ...,
    ) -> None: ...
    @property
    def connected(self) -> bool:
        """True between :meth:`on_connect` and :meth:`on_disconnect`."""
    @property
    def active(self) -> int:
        """Watches not done (the driver ends the stream when this drops to 0)."""
    @property
    def paused(self) -> bool:
        """True while some watch buffers more than ``max_buffered_bytes``: stop reading."""
    @property
    def max_buffered_bytes(self) -> int: ...
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
    def cancel(self, watcher: Watcher) -> None:
        """End ``watcher`` (no error), drop its buffer, and cancel it on the server."""
    def request_progress(self) -> None:
        """Queue a progress request (nothing when disconnected)."""
    def pop(self, watcher: Watcher) -> WatchResponse | None:
        """The next buffered response of ``watcher``, or None when its buffer is empty."""
    def on_connect(self) -> None:
        """A new stream is open: queue the create of every live watch from its resume point."""
    def feed(self, data: bytes) -> None:
        """A response arrived: decode it and :meth:`apply` it (a DecodeError changes nothing)."""
    def feed_many(self, batch: Iterable[bytes]) -> None:
        """Responses arrived, in order (e.g. what one read of the stream brought): decode
        and :meth:`apply` each in turn. A DecodeError is raised after the responses before
        the bad one have been applied (it and those after it change nothing)."""
    def apply(self, response: WatchResponse, size: int) -> None:
        """Apply a decoded response of ``size`` wire bytes."""
    def on_disconnect(self, error: EtcdError | None) -> float | None:
        """The stream ended (``error`` None: cleanly). Return the wait before reconnecting,
        or None when the error ends every watch (then they are done, with that error)."""
    def fail(self, error: EtcdError) -> None:
        """End every live watch with ``error`` (e.g. the stream could not be opened)."""
    def take_requests(self) -> list[bytes]:
        """The requests to send on the current stream, in order (and forget them)."""
    def take_woken(self) -> list[Watcher]:
        """The watchers with new responses or a new end (and forget them)."""
