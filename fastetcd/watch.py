"""Watching keys: :meth:`fastetcd.Client.watch` returns a :class:`Watch` (an iterator of
:class:`WatchResponse`), :meth:`fastetcd.AsyncClient.watch` an :class:`AsyncWatch` (an async
iterator of them).

All the watches of one client share one gRPC Watch stream (two when some use
``require_leader``: etcd's "has leader" check is per stream), multiplexed by watch id, with
creates sent one at a time as etcd requires. A watch opened without ``require_leader``
(None) follows its client's: ``Client(..., require_leader=True)`` puts it on the "has
leader" stream; an explicit True or False on the watch overrides the client's setting.
The stream is opened with the first watch and closed when the last one ends. Responses
are decoded straight from the bytes to :class:`WatchResponse`/:class:`Event`/``KeyValue``
objects by the compiled watch core (``fastetcd._watch``, or its pure twin
``fastetcd._watch_py``), which also holds all the state: create queue, resume points,
fragment joining, buffers (see ``fastetcd/_watch.pyi``).
What is here only moves bytes and waits: a reader thread per stream for :class:`Watch`, a
reader task per stream for :class:`AsyncWatch`. On the native transport the reader takes
every response one read of the socket brought at once, applies them together and wakes each
consumer once for them; and a :class:`Watch` consumer waiting for a response reads the stream
itself (the reader thread then only reads while no consumer waits), so that a response goes
from the socket to its consumer without a hand-off between threads.

Guarantees:

* **Resume without loss or repeat.** When the stream breaks (member restart, connection cut,
  failover to another endpoint) it is opened again with a backoff (1 ms growing 25% a step
  to 100 ms, as etcd's Go client) and every watch is created again from its next revision:
  the last delivered event's ``mod_revision + 1``, or ``header.revision + 1`` after the
  created response of a watch that started "now" or a progress notification addressed to
  it. Each revision is delivered once, in order. A resume point that was compacted ends
  the watch with :class:`fastetcd.errors.CompactedError` (``compact_revision`` tells up to
  where), never a silent skip.
* **Errors end the watch, after what was received.** The iterator yields every response
  buffered before the end, then raises the error: ``CompactedError``, ``NoLeaderError``
  (``require_leader=True`` and the member lost its leader), the error named by etcd when it
  refuses a watch, ``CancelledError`` once the client is closed. UNAVAILABLE and transport
  errors are not errors of the watch: they are resumed, for ever (as clientv3 does).
* **Backpressure.** Each watch buffers the responses its consumer has not taken yet. When
  one buffer holds more than :data:`MAX_BUFFERED_BYTES` (wire bytes plus an allowance per
  event), the client stops reading the stream until that consumer catches up (or cancels):
  memory stays bounded, gRPC flow control pushes back to etcd, and etcd — which keeps a
  watcher that cannot be sent to as "unsynced" — replays the missed revisions from its
  history afterwards. A slow consumer therefore delays the other watches of the same
  client; give independent consumers their own client. A :class:`Watch` dropped without
  :meth:`~Watch.cancel` is canceled when it is garbage-collected.
* **Large responses.** A watcher that falls behind is caught up with responses of up to
  1,000 revisions each, which can be many MiB: they are received whole (the client's
  receive limit is 2**31-1), or, with ``fragment=True``, as fragments of at most etcd's
  ``--max-request-bytes`` that are joined again before delivery.

The first response of every watch is its ``created`` one (no events; ``header.revision`` is
the store revision the watch starts after, when it started "now"). Then come responses with
events, and progress notifications (``is_progress_notify``) when ``progress_notify=True`` or
after :meth:`fastetcd.Client.request_progress`. (A progress notification answering
``request_progress`` does not move the resume point: etcd before 3.5.8 sends it even to a
watch still catching up, etcd-io/etcd#15220.)
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from ._impl import retry
from ._impl import watch as _core
from ._requests import BytesLike, int64, range_bounds
from .errors import (
    CancelledError,
    ClientError,
    DeadlineExceededError,
    EtcdError,
    InvalidArgumentError,
    UnavailableError,
)

if TYPE_CHECKING:
    from ._watch import Event, EventType, WatchCore, Watcher, WatchResponse
    from .aio import AsyncClient
    from .client import Client
else:
    Event = _core.Event
    EventType = _core.EventType
    WatchResponse = _core.WatchResponse
    Watcher = _core.Watcher

__all__ = [
    "Watch",
    "AsyncWatch",
    "WatchResponse",
    "Event",
    "EventType",
    "WatchFilter",
    "MAX_BUFFERED_BYTES",
    "watch_plan",
    "watch_once_plan",
    "callback_plan",
    "request_progress_plan",
]

_log = logging.getLogger("fastetcd")
_allocate_lock = threading.Lock

#: Per watch: how many bytes of responses (wire size plus an allowance per event) may wait
#: for the consumer before the client stops reading the stream (read when a client opens its
#: watch stream).
MAX_BUFFERED_BYTES = 8 * 1024 * 1024

WATCH_METHOD = "/etcdserverpb.Watch/Watch"
_HAS_LEADER: tuple[tuple[str, str], ...] = (("hasleader", "true"),)
# Reconnect backoff of a broken watch stream: etcd's Go client (1 ms, +25% a step, 100 ms).
_BACKOFF = (0.001, 1.25, 0.1, 0.1)
# While the reader is paused by a full buffer it still looks for abandoned watches this often.
_PAUSE_POLL = 1.0
# A transport stream with ``recv_many`` (the native one) hands the reader every response one
# read of the socket brought, up to this many bytes: they are applied together and each
# consumer is woken once for them. (The buffer limit may be passed by at most this much.)
_BATCH_BYTES = 1 << 20
# AsyncClient: smaller batches, and after a batch of at least _YIELD_BYTES the reader task
# lets the consumers it woke run before it decodes more. A catch-up response (1,000 events,
# ~160 KiB) is then decoded, consumed and freed before the next one is decoded, which reuses
# its memory while it is still in the CPU's caches (and the Event/KeyValue freelists):
# measured ~15% less CPU per event than decoding 1 MiB of responses ahead of their
# consumers. (Client: the same made no measurable difference, and having a consumer that
# read only for others step back to let them run cost more in thread switches.)
_ASYNC_BATCH_BYTES = 1 << 17
_YIELD_BYTES = 1 << 16
# Blocking client on such a stream: consumers read it themselves while they wait; the
# daemon thread reads it only after no consumer has waited for this long.
_IDLE = 0.05


class WatchFilter(enum.IntEnum):
    """Events a watch does not want (etcd's ``WatchCreateRequest.FilterType``)."""

    NOPUT = 0
    """Drop PUT events."""
    NODELETE = 1
    """Drop DELETE events."""


# --------------------------------------------------------------------------- planning


def _filter(value: object) -> int:
    if isinstance(value, str):
        try:
            return int(WatchFilter[value.upper()])
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return int(value)
    raise InvalidArgumentError(f"invalid watch filter {value!r}: use a fastetcd.WatchFilter")


class WatchPlan:
    """A validated watch request: what :meth:`WatchCore.add` takes, plus the stream kind."""

    __slots__ = ("args", "require_leader")

    def __init__(self, args: tuple[Any, ...], require_leader: bool | None) -> None:
        self.args = args
        self.require_leader = require_leader  # None: the client's ``require_leader``


def watch_plan(
    key: BytesLike,
    *,
    prefix: bool = False,
    range_end: BytesLike | None = None,
    start_revision: int = 0,
    prev_kv: bool = False,
    filters: Iterable[WatchFilter | str] = (),
    progress_notify: bool = False,
    fragment: bool = False,
    require_leader: bool | None = None,
) -> WatchPlan:
    """Watch ``key`` — or every key starting with it (``prefix=True``; an empty prefix
    watches the whole keyspace), or the keys in ``[key, range_end)`` — for changes.

    Returns a :class:`fastetcd.watch.Watch` (an :class:`fastetcd.watch.AsyncWatch` for the
    asyncio client): iterate over it for :class:`WatchResponse` objects (``events``,
    ``header``, ``created``, ``is_progress_notify``, ...); the first one is the ``created``
    response. Use it as a context manager (``with``/``async with``: entering waits until
    etcd has created the watch, leaving cancels it) or call ``cancel()``.

    ``start_revision``: deliver events from this revision on (0: from now on); a compacted
    revision ends the watch with ``CompactedError``. ``prev_kv``: events carry the key's
    previous value. ``filters``: ``WatchFilter.NOPUT`` / ``NODELETE`` (or "noput" /
    "nodelete") drop those events. ``progress_notify``: etcd sends an empty progress
    notification when the watch has been idle for a while (10 minutes by default).
    ``fragment``: let etcd split responses larger than its ``--max-request-bytes`` (they are
    joined again before delivery). ``require_leader``: end the watch with ``NoLeaderError``
    when the member loses its leader, instead of waiting for it to come back; None (the
    default) takes the client's ``require_leader`` setting, True or False overrides it for
    this watch.

    The watch survives broken connections, member restarts and failover: it is resumed from
    the revision after the last one delivered, so every revision arrives exactly once, in
    order (see :mod:`fastetcd.watch` for buffering and backpressure).
    """
    start, end = range_bounds(key, range_end, prefix, False)
    if isinstance(filters, (str, bytes)):
        raise InvalidArgumentError("filters must be a list of WatchFilter values, not a string")
    try:
        flt = tuple(_filter(f) for f in filters)
    except TypeError:
        raise InvalidArgumentError(
            f"filters must be a list of WatchFilter values, not {type(filters).__name__}"
        ) from None
    args = (
        start,
        end,
        int64(start_revision, "start_revision", 0),
        bool(progress_notify),
        flt,
        bool(prev_kv),
        bool(fragment),
    )
    return WatchPlan(args, None if require_leader is None else bool(require_leader))


def watch_once_plan(
    key: BytesLike,
    *,
    prefix: bool = False,
    range_end: BytesLike | None = None,
    start_revision: int = 0,
    prev_kv: bool = False,
    filters: Iterable[WatchFilter | str] = (),
    require_leader: bool | None = None,
    timeout: float | None = None,
) -> tuple[WatchPlan, float | None]:
    """Wait for the next change of ``key`` (or of the range, as in ``watch``) and return its
    :class:`Event` (the first event of the first response with events).

    ``timeout``: seconds to wait, watch creation included (None: the client's ``timeout``;
    both None: no limit); past it ``DeadlineExceededError`` is raised. The other options
    are those of ``watch``; the watch is canceled before returning.
    """
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise InvalidArgumentError(f"timeout must be > 0 seconds or None, not {timeout!r}")
    plan = watch_plan(
        key,
        prefix=prefix,
        range_end=range_end,
        start_revision=start_revision,
        prev_kv=prev_kv,
        filters=filters,
        require_leader=require_leader,
    )
    return plan, timeout


def callback_plan(
    key: BytesLike,
    callback: Callable[[WatchResponse], object],
    *,
    prefix: bool = False,
    range_end: BytesLike | None = None,
    start_revision: int = 0,
    prev_kv: bool = False,
    filters: Iterable[WatchFilter | str] = (),
    progress_notify: bool = False,
    fragment: bool = False,
    require_leader: bool | None = None,
    on_error: Callable[[EtcdError], object] | None = None,
) -> WatchPlan:
    """Watch ``key`` (options as in ``watch``) and call ``callback(response)`` with every
    :class:`WatchResponse`, from a daemon thread (``Client``) or a task (``AsyncClient``, where
    a callback returning an awaitable is awaited). Returns the watch: ``cancel()`` it to stop.

    When the watch ends with an error, ``on_error(error)`` is called (the error is logged when
    there is none). A callback that raises cancels the watch (the exception is logged).
    Callbacks run one at a time, in order; a slow one holds back the stream like a slow
    consumer does.
    """
    if not callable(callback) or (on_error is not None and not callable(on_error)):
        raise InvalidArgumentError("callback and on_error must be callables")
    return watch_plan(
        key,
        prefix=prefix,
        range_end=range_end,
        start_revision=start_revision,
        prev_kv=prev_kv,
        filters=filters,
        progress_notify=progress_notify,
        fragment=fragment,
        require_leader=require_leader,
    )


def request_progress_plan() -> None:
    """Ask etcd for a progress notification on this client's watch streams: every watch
    gets a response with no events whose ``header.revision`` is the store's revision
    (``is_progress_notify`` is True). Nothing happens when the client watches nothing."""


def _new_core(require_leader: bool) -> WatchCore:
    return _core.WatchCore(
        retry.Backoff(*_BACKOFF),
        require_leader=require_leader,
        max_buffered_bytes=MAX_BUFFERED_BYTES,
    )


def _open_failed(core: WatchCore, error: EtcdError) -> float | None:
    """A stream could not even be opened: ``CancelledError`` means the client is closed (the
    watches end with it); other errors are judged like a broken stream (wait, or end)."""
    if isinstance(error, CancelledError):
        core.fail(error)
        return None
    return core.on_disconnect(error)


def _unexpected(exc: BaseException) -> EtcdError:
    _log.exception("fastetcd watch stream failed unexpectedly")
    error = ClientError(f"the watch stream failed: {exc!r}")
    error.__cause__ = exc
    return error


# --------------------------------------------------------------------------- blocking driver


class _Waiter:
    """Where the consumers of one watch wait, under the stream's lock: ``Condition``
    semantics (each waiting thread blocks on its own lock, so no wake-up is taken by another
    thread) with less bookkeeping per wake-up."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: list[Any] = []

    def wait(self, lock: threading.Lock, timeout: float | None = None) -> bool:
        """Release ``lock`` (held), wait for :meth:`wake` or ``timeout``, take ``lock`` again;
        False on timeout."""
        mine = _allocate_lock()
        mine.acquire()
        self._locks.append(mine)
        lock.release()
        try:
            woken: bool = mine.acquire(True, -1 if timeout is None else timeout)
        finally:
            lock.acquire()
        if not woken:
            try:
                self._locks.remove(mine)
            except ValueError:  # woken just after the timeout
                pass
        return woken

    def wake(self) -> None:
        """Wake every waiting consumer (lock held)."""
        locks, self._locks = self._locks, []
        for waiting in locks:
            waiting.release()


class _SyncStream:
    """The watches of a :class:`fastetcd.Client` on one Watch stream, the core under one lock,
    and one daemon thread (started with the first watch, ended with the last) that opens the
    stream, and opens it again after a break.

    Who reads the stream depends on the transport. A grpcio stream is read by that thread,
    which wakes the consumers of what it delivered. The native stream (``recv_many``) can be
    read by any thread, so there a consumer that waits for a response reads the stream
    itself — no hand-off to another thread between reading and consuming — while the other
    consumers wait for what it delivers (and one of them takes over when it leaves); the
    daemon thread reads only when no consumer has waited for ``_IDLE`` seconds, so that
    responses are still buffered (up to the limit) while every consumer is busy."""

    def __init__(self, client: Client, require_leader: bool) -> None:
        self._client = client
        self._metadata = _HAS_LEADER if require_leader else None
        self._lock = threading.Lock()
        # The daemon thread waits here while paused (or backing off, or idle while consumers
        # read); consumers notify it.
        self._space = threading.Condition(self._lock)
        self._core = _new_core(require_leader)
        self._stream: Any = None
        self._closed_by_us: Any = None
        self._thread: threading.Thread | None = None
        self._abandoned: deque[Watcher] = deque()
        self._shared = False  # the current stream can be read by consumers (recv_many)
        self._reading = False  # a thread is reading the current stream
        self._consumer_reading = False  # ... and it is a consumer
        self._ended: tuple[Any, EtcdError | None] | None = None  # how the current stream ended
        self._last_want = 0.0  # when a consumer last waited for a response
        self._wanting: list[Watcher] = []  # the watches whose consumers wait, nothing buffered

    # ----------------------------------------------------------------- under the lock

    def _flush(self) -> None:
        """Send what the core wants sent and wake whom it wants woken (lock held)."""
        core = self._core
        requests = core.take_requests()
        stream = self._stream
        if stream is not None:
            try:
                for request in requests:
                    stream.send(request)
            except EtcdError:
                pass  # the stream is broken: the reader sees it and resumes
        for watcher in core.take_woken():
            watcher.waker.wake()  # type: ignore[attr-defined]

    def _drain_abandoned(self) -> None:
        while self._abandoned:
            self._cancel(self._abandoned.popleft())

    def _cancel(self, watcher: Watcher) -> None:
        core = self._core
        core.cancel(watcher)
        self._flush()
        self._space.notify_all()
        if core.active == 0 and self._stream is not None:
            self._closed_by_us = self._stream
            self._stream.close()
        elif self._consumer_reading and self._stream is not None:
            self._stream.interrupt()  # it may be this watch's consumer: let it see the end

    def _hand_on(self) -> None:
        """Nobody reads the stream now: wake a consumer still waiting with nothing
        buffered, to read it (lock held)."""
        if self._shared and not self._reading:
            for watcher in self._wanting:
                if not watcher.buffered and not watcher.done:
                    watcher.waker.wake()  # type: ignore[attr-defined]
                    return

    def _unpaused(self) -> None:
        self._space.notify_all()
        self._hand_on()

    def _read(self, stream: Any, deadline: float | None, watcher: Watcher | None) -> None:
        """Read what one read of ``stream`` brings (until ``deadline`` at most), outside the
        lock, and apply it (lock held on entry and on return), for the consumer of
        ``watcher`` (None: the daemon thread). An end of the stream is left in ``_ended`` for
        the daemon thread."""
        lock = self._lock
        self._reading = True
        self._consumer_reading = watcher is not None
        batch: list[bytes] | None = None
        error: EtcdError | None = None
        end = False
        done = False
        lock.release()
        try:
            batch = stream.recv_many(_BATCH_BYTES, deadline)
            end = batch is None
            done = True
        except EtcdError as exc:
            end, error, done = True, exc, True
        finally:
            lock.acquire()
            self._reading = self._consumer_reading = False
            try:
                if batch:
                    done = False
                    # Decoded and applied by the core in one call (under the lock: decoding
                    # holds the GIL anyway); a DecodeError after the responses before it.
                    self._core.feed_many(batch)
                    done = True
            except EtcdError as exc:
                end, error, done = True, exc, True
            finally:
                if not done:
                    # Interrupted (KeyboardInterrupt in a consumer): what was taken off the
                    # stream is not all applied, so the stream is given up and the watches
                    # resume from what they did get (no loss).
                    end = True
                    error = UnavailableError("a read of the watch stream was interrupted")
                self._flush()
                if end and stream is self._stream and self._ended is None:
                    self._ended = (stream, error)
                    self._space.notify_all()
                if watcher is None or watcher.buffered or watcher.done:
                    self._hand_on()  # (a consumer that goes on reading keeps the role)

    def _wait_or_read(self, watcher: Watcher, deadline: float | None) -> bool:
        """``watcher`` has nothing buffered: read the stream for it when nobody does, else wait
        to be woken (lock held). False once ``deadline`` has passed."""
        now = self._last_want = time.monotonic()
        if deadline is not None and now >= deadline:
            return False
        if self._shared and not self._reading and self._ended is None and not self._core.paused:
            self._read(self._stream, deadline, watcher)
            return True
        self._wanting.append(watcher)
        try:
            waiter: _Waiter = watcher.waker  # type: ignore[assignment]
            return waiter.wait(self._lock, None if deadline is None else deadline - now)
        finally:
            self._wanting.remove(watcher)

    # ----------------------------------------------------------------- consumers' side

    def add(self, plan: WatchPlan) -> Watcher:
        with self._lock:
            self._drain_abandoned()
            watcher = self._core.add(*plan.args)
            watcher.waker = _Waiter()
            self._flush()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fastetcd-watch", daemon=True
                )
                self._thread.start()
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        with self._lock:
            self._cancel(watcher)

    def abandon(self, watcher: Watcher) -> None:
        """Cancel a watch whose handle was garbage-collected (from any thread, even one
        holding the lock: then the reader does it at its next turn)."""
        self._abandoned.append(watcher)
        if self._lock.acquire(blocking=False):
            try:
                self._drain_abandoned()
            finally:
                self._lock.release()

    def request_progress(self) -> None:
        with self._lock:
            self._core.request_progress()
            self._flush()

    def get(self, watcher: Watcher, timeout: float | None) -> WatchResponse | None:
        core = self._core
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                paused = core.paused
                response = core.pop(watcher)
                if response is not None:
                    if paused and not core.paused:
                        self._unpaused()
                    return response
                if watcher.done:
                    if watcher.error is not None:
                        raise watcher.error
                    return None
                if not self._wait_or_read(watcher, deadline):
                    if watcher.buffered or watcher.done:
                        continue
                    self._hand_on()
                    raise DeadlineExceededError(f"no watch response within {timeout} s")

    def wait_created(self, watcher: Watcher, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not watcher.created:
                if watcher.done:
                    if watcher.error is not None:
                        raise watcher.error
                    return
                if not self._wait_or_read(watcher, deadline):
                    if not watcher.created and not watcher.done:
                        self._hand_on()
                        raise DeadlineExceededError(f"watch not created within {timeout} s")

    # ----------------------------------------------------------------- the daemon thread

    def _run(self) -> None:
        core = self._core
        try:
            while True:
                with self._lock:
                    self._drain_abandoned()
                    if core.active == 0:
                        self._thread = None
                        return
                try:  # outside the lock: a transport may connect here
                    stream = self._client._transport.stream(WATCH_METHOD, self._metadata)
                except EtcdError as exc:
                    with self._lock:
                        delay = _open_failed(core, exc)
                        self._flush()
                        if delay:
                            self._space.wait(delay)
                    continue
                with self._lock:
                    if core.active == 0:  # the last watch ended meanwhile
                        stream.close()
                        continue
                    self._stream = stream
                    self._ended = None
                    self._shared = hasattr(stream, "recv_many")
                    core.on_connect()
                    self._flush()
                    self._hand_on()
                error = self._pump_shared(stream) if self._shared else self._pump(stream)
                with self._lock:
                    self._stream = None
                    self._shared = False
                    ours = self._closed_by_us is stream
                    self._closed_by_us = None
                    delay = core.on_disconnect(None if ours else error)
                    self._flush()
                    if ours:
                        delay = 0.0
                    if delay and core.active:
                        self._space.wait(delay)
                stream.close()
        except BaseException as exc:  # a bug: never leave consumers waiting for ever
            with self._lock:
                core.fail(_unexpected(exc))
                self._flush()
                self._thread = None
                self._stream = None
                self._shared = False

    def _pump_shared(self, stream: Any) -> EtcdError | None:
        """A stream consumers read too: read it only while no consumer waits for it, until
        it ends; return its error (None: clean end)."""
        core = self._core
        with self._lock:
            while True:
                self._drain_abandoned()
                if self._ended is not None:
                    return self._ended[1]
                if core.active == 0:
                    return None
                if self._reading or core.paused:
                    self._space.wait(_PAUSE_POLL)
                    continue
                idle = time.monotonic() - self._last_want
                if idle < _IDLE:
                    self._space.wait(_IDLE - idle)
                    continue
                self._read(stream, None, None)

    def _pump(self, stream: Any) -> EtcdError | None:
        """Read responses until the stream ends; return its error (None: clean end)."""
        core = self._core
        lock = self._lock
        try:
            while True:
                data = stream.recv()
                if data is None:
                    return None
                with lock:
                    try:
                        core.feed(data)
                    finally:
                        self._flush()
                    while core.paused and core.active:
                        self._space.wait(_PAUSE_POLL)
                        self._drain_abandoned()
                    self._drain_abandoned()
                    if core.active == 0:
                        return None
        except EtcdError as exc:
            return exc


class Watch:
    """A watch of a :class:`fastetcd.Client` (made by :meth:`fastetcd.Client.watch`).

    Iterate over it for :class:`WatchResponse` objects (the first is the ``created`` one);
    iteration ends after :meth:`cancel`, and raises the error that ended the watch (after the
    responses received before it). ``with client.watch(...) as w:`` waits until the watch is
    created and cancels it on exit. :meth:`get` takes a timeout. Thread-safe."""

    def __init__(self, stream: _SyncStream, watcher: Watcher) -> None:
        self._stream = stream
        self._watcher = watcher

    def __iter__(self) -> Iterator[WatchResponse]:
        return self

    def __next__(self) -> WatchResponse:
        response = self._stream.get(self._watcher, None)
        if response is None:
            raise StopIteration
        return response

    def get(self, timeout: float | None = None) -> WatchResponse | None:
        """The next response, waiting up to ``timeout`` seconds (None: no limit) and raising
        ``DeadlineExceededError`` past it; None once the watch is canceled; the watch's
        error once it has ended with one."""
        return self._stream.get(self._watcher, timeout)

    def events(self) -> Iterator[Event]:
        """Iterate over the events of the responses (skipping created and progress ones)."""
        return _core.EventIterator(self.__next__)

    def wait_created(self, timeout: float | None = None) -> None:
        """Wait until etcd has created the watch (events written after this are seen);
        raise the watch's error if it ended, ``DeadlineExceededError`` after ``timeout``."""
        self._stream.wait_created(self._watcher, timeout)

    def cancel(self) -> None:
        """Stop watching: iteration ends (responses not yet taken are dropped)."""
        self._stream.cancel(self._watcher)

    @property
    def done(self) -> bool:
        """True once the watch has ended (canceled, or with an error)."""
        return self._watcher.done

    @property
    def next_revision(self) -> int:
        """The revision the watch resumes from after a broken stream (0 before creation)."""
        return self._watcher.next_revision

    @property
    def watch_id(self) -> int:
        """etcd's id of the watch on the current stream (-1 while not created)."""
        return self._watcher.watch_id

    def __enter__(self) -> Watch:
        try:
            self.wait_created(self._stream._client.timeout)
        except BaseException:
            self.cancel()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def __del__(self) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None and not watcher.done:
            try:
                self._stream.abandon(watcher)
            except Exception:  # interpreter shutdown
                pass

    def __repr__(self) -> str:
        w = self._watcher
        return f"<Watch key={w.key!r} range_end={w.range_end!r} next_revision={w.next_revision}>"


def _sync_stream(client: Client, require_leader: bool) -> _SyncStream:
    streams: dict[bool, _SyncStream] | None = client.__dict__.get("_watch_streams")
    if streams is None:
        with _STREAMS_LOCK:
            streams = client.__dict__.setdefault("_watch_streams", {})
    stream = streams.get(require_leader)
    if stream is None:
        with _STREAMS_LOCK:
            stream = streams.setdefault(require_leader, _SyncStream(client, require_leader))
    return stream


_STREAMS_LOCK = threading.Lock()


def _requires_leader(client: Client | AsyncClient, plan: WatchPlan) -> bool:
    """Whether the watch goes on the ``require_leader`` stream: its own flag, else the
    client's."""
    if plan.require_leader is None:
        return client._require_leader
    return plan.require_leader


def open_watch(client: Client, plan: WatchPlan) -> Watch:
    """Start a watch of a blocking client (``Client.watch``)."""
    stream = _sync_stream(client, _requires_leader(client, plan))
    return Watch(stream, stream.add(plan))


def request_progress(client: Client) -> None:
    """Ask etcd for a progress notification on the client's watch streams."""
    streams: dict[bool, _SyncStream] = client.__dict__.get("_watch_streams") or {}
    for stream in list(streams.values()):
        stream.request_progress()


def watch_once(client: Client, plan: WatchPlan, timeout: float | None) -> Event:
    """``Client.watch_once``."""
    if timeout is None:
        timeout = client.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    w = open_watch(client, plan)
    try:
        w.wait_created(timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            response = w.get(left)
            if response is None:
                raise CancelledError("the watch was canceled")
            if response.events:
                return response.events[0]
    finally:
        w.cancel()


def add_callback(
    client: Client,
    plan: WatchPlan,
    callback: Callable[[WatchResponse], object],
    on_error: Callable[[EtcdError], object] | None,
) -> Watch:
    """``Client.add_watch_callback``: a daemon thread feeds ``callback``."""
    w = open_watch(client, plan)

    def run() -> None:
        try:
            for response in w:
                callback(response)
        except EtcdError as exc:
            if on_error is not None:
                on_error(exc)
            else:
                _log.warning("fastetcd watch callback: the watch ended: %s", exc)
        except Exception:
            _log.exception("fastetcd watch callback raised; the watch is canceled")
            w.cancel()

    threading.Thread(target=run, name="fastetcd-watch-callback", daemon=True).start()
    return w


# --------------------------------------------------------------------------- asyncio driver


class _AsyncStream:
    """The watches of a :class:`fastetcd.AsyncClient` on one Watch stream: one reader task
    and one writer task per connection (started with the first watch, ended with the last)."""

    def __init__(self, client: AsyncClient, require_leader: bool) -> None:
        self._client = client
        self._metadata = _HAS_LEADER if require_leader else None
        self._core = _new_core(require_leader)
        self._stream: Any = None
        self._closed_by_us: Any = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[bytes] = deque()  # requests the writer task sends, in order
        self._outbox = asyncio.Event()  # set when _pending has requests
        self._space = asyncio.Event()  # set whenever the reader may go on

    def _flush(self) -> None:
        core = self._core
        requests = core.take_requests()
        if requests and self._stream is not None:
            self._pending.extend(requests)
            self._outbox.set()
        for watcher in core.take_woken():
            watcher.waker.set()  # type: ignore[attr-defined]

    def _cancel_now(self, watcher: Watcher) -> None:
        core = self._core
        core.cancel(watcher)
        self._flush()
        self._space.set()
        if core.active == 0 and self._stream is not None:
            self._closed_by_us = self._stream
            self._stream.close()

    # ----------------------------------------------------------------- consumers' side

    def add(self, plan: WatchPlan) -> Watcher:
        loop = asyncio.get_running_loop()
        watcher = self._core.add(*plan.args)
        watcher.waker = asyncio.Event()
        self._flush()
        if self._task is None:
            self._loop = loop
            self._task = loop.create_task(self._run())
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        self._cancel_now(watcher)

    def abandon(self, watcher: Watcher) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_now, watcher)

    def request_progress(self) -> None:
        self._core.request_progress()
        self._flush()

    async def get(self, watcher: Watcher, timeout: float | None) -> WatchResponse | None:
        core = self._core
        waker: asyncio.Event = watcher.waker  # type: ignore[assignment]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            paused = core.paused
            response = core.pop(watcher)
            if response is not None:
                if paused and not core.paused:
                    self._space.set()
                return response
            if watcher.done:
                if watcher.error is not None:
                    raise watcher.error
                return None
            waker.clear()
            if deadline is None:
                await waker.wait()
            else:
                try:
                    await asyncio.wait_for(waker.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    if not watcher.buffered and not watcher.done:
                        raise DeadlineExceededError(
                            f"no watch response within {timeout} s"
                        ) from None

    async def wait_created(self, watcher: Watcher, timeout: float | None) -> None:
        waker: asyncio.Event = watcher.waker  # type: ignore[assignment]
        deadline = None if timeout is None else time.monotonic() + timeout
        while not watcher.created:
            if watcher.done:
                if watcher.error is not None:
                    raise watcher.error
                return
            waker.clear()
            if deadline is None:
                await waker.wait()
            else:
                try:
                    await asyncio.wait_for(waker.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    if not watcher.created and not watcher.done:
                        raise DeadlineExceededError(
                            f"watch not created within {timeout} s"
                        ) from None

    # ----------------------------------------------------------------- reader and writer

    async def _write(self, stream: Any) -> None:
        pending = self._pending
        try:
            while True:
                await self._outbox.wait()
                self._outbox.clear()
                while pending:
                    await stream.send(pending.popleft())
        except EtcdError:
            pass  # the stream is broken: the reader sees it and resumes

    async def _run(self) -> None:
        core = self._core
        try:
            while core.active:
                try:
                    stream = self._client._transport.stream(WATCH_METHOD, self._metadata)
                except EtcdError as exc:
                    delay = _open_failed(core, exc)
                    self._flush()
                    if delay:
                        await asyncio.sleep(delay)
                    continue
                self._stream = stream
                self._pending.clear()  # requests for the previous stream
                core.on_connect()
                writer = asyncio.ensure_future(self._write(stream))
                self._flush()
                try:
                    error = await self._pump(stream)
                finally:
                    writer.cancel()
                    self._stream = None
                    stream.close()
                ours = self._closed_by_us is stream
                self._closed_by_us = None
                delay = core.on_disconnect(None if ours else error)
                self._flush()
                if delay and not ours and core.active:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            core.fail(CancelledError("the watch stream's task was cancelled"))
            self._flush()
            raise
        except BaseException as exc:  # a bug: never leave consumers waiting for ever
            core.fail(_unexpected(exc))
            self._flush()
        finally:
            self._task = None

    async def _pump(self, stream: Any) -> EtcdError | None:
        """Read responses until the stream ends; return its error (None: clean end). The
        responses one read brought (``recv_many``) are applied together and each consumer
        is woken once for them."""
        core = self._core
        recv_many = getattr(stream, "recv_many", None)
        try:
            while True:
                try:
                    if recv_many is not None:
                        batch = await recv_many(_ASYNC_BATCH_BYTES)
                    else:
                        data = await stream.recv()
                        batch = None if data is None else (data,)
                except asyncio.CancelledError:
                    # grpc.aio raises it when the call is cancelled (by us, by the client's
                    # close, by a transport swap): that ends the stream, not this task —
                    # unless the task itself is being cancelled (only Python 3.11+ can tell
                    # the two apart; before, a cancelled call ends the watches).
                    if self._closed_by_us is stream:
                        return None
                    task = asyncio.current_task()
                    if sys.version_info >= (3, 11) and task is not None and not task.cancelling():
                        return CancelledError("the watch stream was cancelled")
                    raise
                if batch is None:
                    return None
                try:
                    core.feed_many(batch)
                finally:  # a DecodeError: what came before it is delivered first
                    self._flush()
                if sum(map(len, batch)) >= _YIELD_BYTES:
                    await asyncio.sleep(0)  # the consumers take it before more is decoded
                while core.paused and core.active:
                    self._space.clear()
                    await self._space.wait()
                if core.active == 0:
                    return None
        except EtcdError as exc:
            return exc


class AsyncWatch:
    """A watch of a :class:`fastetcd.AsyncClient` (made by :meth:`fastetcd.AsyncClient.watch`).

    ``async for`` over it for :class:`WatchResponse` objects (the first is the ``created``
    one); iteration ends after :meth:`cancel`, and raises the error that ended the watch
    (after the responses received before it). ``async with client.watch(...) as w:`` waits
    until the watch is created and cancels it on exit. :meth:`get` takes a timeout. Use it
    on the event loop that made it."""

    def __init__(self, stream: _AsyncStream, watcher: Watcher) -> None:
        self._stream = stream
        self._watcher = watcher

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchResponse:
        response = await self._stream.get(self._watcher, None)
        if response is None:
            raise StopAsyncIteration
        return response

    async def get(self, timeout: float | None = None) -> WatchResponse | None:
        """The next response, waiting up to ``timeout`` seconds (None: no limit) and raising
        ``DeadlineExceededError`` past it; None once the watch is canceled; the watch's
        error once it has ended with one."""
        return await self._stream.get(self._watcher, timeout)

    async def events(self) -> AsyncIterator[Event]:
        """Iterate (``async for``) over the events of the responses (skipping created and
        progress ones)."""
        async for response in self:
            for event in response.events:
                yield event

    async def wait_created(self, timeout: float | None = None) -> None:
        """Wait until etcd has created the watch (events written after this are seen);
        raise the watch's error if it ended, ``DeadlineExceededError`` after ``timeout``."""
        await self._stream.wait_created(self._watcher, timeout)

    def cancel(self) -> None:
        """Stop watching: iteration ends (responses not yet taken are dropped)."""
        self._stream.cancel(self._watcher)

    @property
    def done(self) -> bool:
        """True once the watch has ended (canceled, or with an error)."""
        return self._watcher.done

    @property
    def next_revision(self) -> int:
        """The revision the watch resumes from after a broken stream (0 before creation)."""
        return self._watcher.next_revision

    @property
    def watch_id(self) -> int:
        """etcd's id of the watch on the current stream (-1 while not created)."""
        return self._watcher.watch_id

    async def __aenter__(self) -> AsyncWatch:
        try:
            await self.wait_created(self._stream._client.timeout)
        except BaseException:
            self.cancel()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def __del__(self) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None and not watcher.done:
            try:
                self._stream.abandon(watcher)
            except Exception:  # interpreter shutdown, closed loop
                pass

    def __repr__(self) -> str:
        w = self._watcher
        return (
            f"<AsyncWatch key={w.key!r} range_end={w.range_end!r} next_revision={w.next_revision}>"
        )


def _async_stream(client: AsyncClient, require_leader: bool) -> _AsyncStream:
    streams: dict[bool, _AsyncStream] = client.__dict__.setdefault("_watch_streams", {})
    stream = streams.get(require_leader)
    if stream is None:
        stream = streams[require_leader] = _AsyncStream(client, require_leader)
    return stream


def open_async_watch(client: AsyncClient, plan: WatchPlan) -> AsyncWatch:
    """Start a watch of an asyncio client (``AsyncClient.watch``; needs a running loop)."""
    stream = _async_stream(client, _requires_leader(client, plan))
    return AsyncWatch(stream, stream.add(plan))


def async_request_progress(client: AsyncClient) -> None:
    """Ask etcd for a progress notification on the client's watch streams."""
    streams: dict[bool, _AsyncStream] = client.__dict__.get("_watch_streams") or {}
    for stream in list(streams.values()):
        stream.request_progress()


async def async_watch_once(client: AsyncClient, plan: WatchPlan, timeout: float | None) -> Event:
    """``AsyncClient.watch_once``."""
    if timeout is None:
        timeout = client.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    w = open_async_watch(client, plan)
    try:
        await w.wait_created(timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            response = await w.get(left)
            if response is None:
                raise CancelledError("the watch was canceled")
            if response.events:
                return response.events[0]
    finally:
        w.cancel()


def async_add_callback(
    client: AsyncClient,
    plan: WatchPlan,
    callback: Callable[[WatchResponse], object],
    on_error: Callable[[EtcdError], object] | None,
) -> AsyncWatch:
    """``AsyncClient.add_watch_callback``: a task feeds ``callback`` (awaited when it returns
    an awaitable)."""
    w = open_async_watch(client, plan)

    async def run() -> None:
        try:
            async for response in w:
                result = callback(response)
                if inspect.isawaitable(result):
                    await result
        except EtcdError as exc:
            if on_error is not None:
                result = on_error(exc)
                if inspect.isawaitable(result):
                    await result
            else:
                _log.warning("fastetcd watch callback: the watch ended: %s", exc)
        except Exception:
            _log.exception("fastetcd watch callback raised; the watch is canceled")
            w.cancel()

    task = asyncio.get_running_loop().create_task(run())
    _CALLBACK_TASKS.add(task)
    task.add_done_callback(_CALLBACK_TASKS.discard)
    return w


# Strong references to callback tasks (the loop only keeps weak ones).
_CALLBACK_TASKS: set[asyncio.Task[None]] = set()
