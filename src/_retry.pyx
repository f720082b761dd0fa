# cython: language_level=3
"""Compiled retry and backoff decisions, sans I/O (``fastetcd._retry``).

The twin of ``fastetcd/_retry_py.py``: same names, same behaviour, same floats given the
same injected ``random.Random`` (``fastetcd/_retry.pyi`` is the interface both export).
The drivers of ``Client`` and ``AsyncClient`` step through :class:`RetryState`; stream
reconnect loops use :class:`Backoff`. Nothing here sleeps, reads a clock or does I/O.

Semantics follow etcd's Go client (``client/v3/retry.go``): only gRPC
``UNAVAILABLE`` is retried; a repeatable call (reads, idempotent writes) on any such
error, a non-repeatable one only when the request provably never left the client
(``sent is False``); at most ``max_retries`` retries; the caller's deadline wins.
"""

cimport cython

import random

from fastetcd.errors import DeadlineExceededError, InvalidArgumentError, StatusCode

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_INITIAL_BACKOFF",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_BACKOFF_JITTER",
    "Backoff",
    "RetryPolicy",
    "RetryState",
    "is_retryable",
]

DEFAULT_MAX_RETRIES = 100
DEFAULT_INITIAL_BACKOFF = 0.025
DEFAULT_MAX_BACKOFF = 1.0
DEFAULT_BACKOFF_MULTIPLIER = 2.0
DEFAULT_BACKOFF_JITTER = 0.1

cdef object _UNAVAILABLE = StatusCode.UNAVAILABLE
cdef object _RANDOM = random.Random()
cdef object _DeadlineExceededError = DeadlineExceededError


@cython.final
cdef class Backoff:
    """Exponential backoff with jitter and a cap: ``initial * multiplier**n``, capped at
    ``maximum``, each wait scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    ``next_delay()`` returns the wait before the next attempt and advances; ``reset()``
    starts over (after a success). ``rng`` (a ``random.Random``) makes the jitter
    deterministic; by default a process-wide generator is used."""

    cdef public double initial
    cdef public double multiplier
    cdef public double maximum
    cdef public double jitter
    cdef double _current
    cdef object _random

    def __init__(
        self, initial, multiplier, maximum, jitter=0.0, rng=None
    ):
        if not (0 <= initial <= maximum and multiplier >= 1 and 0 <= jitter < 1):
            raise ValueError(
                "need 0 <= initial <= maximum, multiplier >= 1, 0 <= jitter < 1"
            )
        self.initial = initial
        self.multiplier = multiplier
        self.maximum = maximum
        self.jitter = jitter
        self._current = self.initial
        self._random = rng if rng is not None else _RANDOM

    @property
    def current(self):
        """The wait (before jitter) that the next :meth:`next_delay` returns."""
        return self._current

    cpdef double next_delay(self) except? -1.0:
        """The wait before the next attempt; grows the following one."""
        cdef double base = self._current
        self._current = min(self.maximum, self._current * self.multiplier)
        if self.jitter:
            base *= 1 + self.jitter * (<double>self._random.random() * 2 - 1)
        return base

    cpdef void reset(self):
        """Start over from ``initial``."""
        self._current = self.initial

    def __repr__(self):
        return (
            f"Backoff(initial={self.initial!r}, multiplier={self.multiplier!r}, "
            f"maximum={self.maximum!r}, jitter={self.jitter!r})"
        )


cdef inline bint _is_number(object value):
    return not isinstance(value, bool) and isinstance(value, (int, float))


@cython.final
cdef class RetryPolicy:
    """How unary calls are retried: at most ``max_retries`` retries (0 disables
    retrying), waiting ``initial_backoff`` seconds before the first, ``multiplier``
    times longer before each next one up to ``max_backoff``, each wait scaled by a
    random factor in ``[1 - jitter, 1 + jitter]`` (defaults: 100 retries, 25 ms
    doubling to 1 s, ±10%).

    Which errors are retried is not configurable: see :func:`is_retryable`. ``rng`` (a
    ``random.Random``) makes the jitter deterministic (for tests). Immutable;
    ``replace()`` returns a modified copy. Give it to a client as
    ``Client(..., backoff=RetryPolicy(...))``.
    """

    cdef readonly object max_retries
    cdef readonly double initial_backoff
    cdef readonly double max_backoff
    cdef readonly double multiplier
    cdef readonly double jitter
    cdef readonly object rng

    def __init__(
        self,
        max_retries=DEFAULT_MAX_RETRIES,
        initial_backoff=DEFAULT_INITIAL_BACKOFF,
        max_backoff=DEFAULT_MAX_BACKOFF,
        multiplier=DEFAULT_BACKOFF_MULTIPLIER,
        jitter=DEFAULT_BACKOFF_JITTER,
        rng=None,
    ):
        if (
            isinstance(max_retries, bool)
            or not isinstance(max_retries, int)
            or max_retries < 0
        ):
            raise InvalidArgumentError(
                f"max_retries must be an int >= 0, not {max_retries!r}"
            )
        for name, value in (
            ("initial_backoff", initial_backoff),
            ("max_backoff", max_backoff),
            ("multiplier", multiplier),
            ("jitter", jitter),
        ):
            if not _is_number(value):
                raise InvalidArgumentError(f"{name} must be a number, not {value!r}")
        if not (
            0 <= initial_backoff <= max_backoff and multiplier >= 1 and 0 <= jitter < 1
        ):
            raise InvalidArgumentError(
                "need 0 <= initial_backoff <= max_backoff, multiplier >= 1, "
                "0 <= jitter < 1"
            )
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.multiplier = multiplier
        self.jitter = jitter
        self.rng = rng

    cpdef Backoff backoff(self):
        """A fresh :class:`Backoff` with this policy's shape."""
        return Backoff(
            self.initial_backoff,
            self.multiplier,
            self.max_backoff,
            self.jitter,
            self.rng,
        )

    def replace(
        self,
        *,
        max_retries=None,
        initial_backoff=None,
        max_backoff=None,
        multiplier=None,
        jitter=None,
    ):
        """A copy with the given fields changed."""
        return RetryPolicy(
            self.max_retries if max_retries is None else max_retries,
            self.initial_backoff if initial_backoff is None else initial_backoff,
            self.max_backoff if max_backoff is None else max_backoff,
            self.multiplier if multiplier is None else multiplier,
            self.jitter if jitter is None else jitter,
            self.rng,
        )

    def _key(self):
        return (
            self.max_retries,
            self.initial_backoff,
            self.max_backoff,
            self.multiplier,
            self.jitter,
        )

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef RetryPolicy that = <RetryPolicy>other
        return self._key() == that._key() and self.rng is that.rng

    def __ne__(self, other):
        result = self.__eq__(other)
        if result is NotImplemented:
            return result
        return not result

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            f"RetryPolicy(max_retries={self.max_retries!r}, "
            f"initial_backoff={self.initial_backoff!r}, "
            f"max_backoff={self.max_backoff!r}, "
            f"multiplier={self.multiplier!r}, jitter={self.jitter!r})"
        )


cpdef bint is_retryable(object error, bint repeatable) except -1:
    """Whether ``error`` may be followed by another attempt of the same request.

    Only a gRPC ``UNAVAILABLE`` status qualifies; then a repeatable request may always
    be sent again, a non-repeatable one only when ``error.sent is False`` (it never
    left)."""
    if error.code != _UNAVAILABLE:
        return False
    return repeatable or getattr(error, "sent", None) is False


@cython.final
cdef class RetryState:
    """The retry state of one unary call.

    ``deadline`` is a ``time.monotonic()`` value (None: no deadline). After a failed
    attempt the driver calls ``on_error(error, now)``, which returns the seconds to wait
    before the next attempt or raises (the error itself, or ``DeadlineExceededError``
    when the wait would reach the deadline); after waiting, ``timeout(now)`` gives the
    next attempt's timeout (the time left until the deadline)."""

    cdef bint _repeatable
    cdef object _deadline
    cdef object _max_retries
    cdef object _retries
    cdef object _backoff
    cdef object _last

    def __init__(self, policy, repeatable, deadline):
        self._repeatable = bool(repeatable)
        self._deadline = deadline
        self._max_retries = policy.max_retries
        self._retries = 0
        self._backoff = policy.backoff()
        self._last = None

    @property
    def retries(self):
        """Retries granted so far."""
        return self._retries

    @property
    def repeatable(self):
        """Whether the call may be sent again after an ambiguous failure."""
        return self._repeatable

    @property
    def deadline(self):
        """The call's deadline (``time.monotonic()`` seconds), or None."""
        return self._deadline

    cpdef double on_error(self, object error, double now) except? -1.0:
        """Decide what follows ``error``: return a wait in seconds, or raise."""
        cdef double delay
        if not is_retryable(error, self._repeatable):
            raise error
        if self._retries >= self._max_retries:
            raise error
        delay = self._backoff.next_delay()
        if self._deadline is not None and now + delay >= <double>self._deadline:
            raise _DeadlineExceededError(
                f"deadline exceeded while retrying after: {error}", details=str(error)
            ) from error
        self._retries += 1
        self._last = error
        return delay

    cpdef object timeout(self, double now):
        """The timeout of the next attempt: the time left until the deadline (None: no
        deadline). Raises ``DeadlineExceededError`` if the deadline has passed."""
        cdef double left
        if self._deadline is None:
            return None
        left = <double>self._deadline - now
        if left <= 0:
            last = self._last
            raise _DeadlineExceededError(
                f"deadline exceeded while retrying after: {last}",
                details=str(last or ""),
            ) from last
        return left
