"""Retry and backoff decisions, sans I/O (pure-Python twin of ``src/_retry.pyx``).

The drivers (sync and async, unary calls and stream reconnects) step through these objects:
given an error and the time, they say "retry after d seconds" or raise. Nothing here sleeps,
reads a clock or touches a socket, so every decision is unit-testable and identical for
``Client`` and ``AsyncClient``. ``fastetcd/_retry.pyi`` is the interface both twins export;
given the same injected ``random.Random`` they make the same decisions, float for float.

Semantics follow etcd's Go client (``client/v3/retry.go``, ``retry_interceptor.go``):

* only errors whose gRPC code is ``UNAVAILABLE`` are ever retried — which includes etcd's
  "no leader", "leader changed", "server stopped" and "request timed out" errors; every
  other code (a compaction, a bad request, ``DEADLINE_EXCEEDED``, ``CANCELLED`` …) is raised
  at once;
* a *repeatable* call (reads, and writes the caller marked idempotent) is retried on any of
  them;
* a *non-repeatable* call (writes) is retried only when the transport proves the request
  never left the client (``UnavailableError.sent is False``), so a write is applied at most
  once;
* at most ``max_retries`` retries, waiting per :class:`Backoff` between them;
* the caller's deadline always wins: a retry whose wait would end at or past the deadline
  raises ``DeadlineExceededError`` (with the last error as its cause) instead of waiting.
"""

from __future__ import annotations

import random

from .errors import DeadlineExceededError, EtcdError, InvalidArgumentError, StatusCode

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

#: Retries of one unary call (etcd's Go client: ``MaxUnaryRetries`` = 100).
DEFAULT_MAX_RETRIES = 100
#: First wait between attempts, in seconds (Go: ``BackoffWaitBetween`` = 25 ms).
DEFAULT_INITIAL_BACKOFF = 0.025
#: Longest wait between attempts, in seconds.
DEFAULT_MAX_BACKOFF = 1.0
#: Each wait is this many times the previous one, up to the maximum.
DEFAULT_BACKOFF_MULTIPLIER = 2.0
#: Each wait is scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (Go: 0.10).
DEFAULT_BACKOFF_JITTER = 0.1

_UNAVAILABLE = StatusCode.UNAVAILABLE
# Shared by every Backoff without an injected rng (seeding a Random per call costs µs).
_RANDOM = random.Random()


class Backoff:
    """Exponential backoff with jitter and a cap: ``initial * multiplier**n``, capped at
    ``maximum``, each wait scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    ``next_delay()`` returns the wait before the next attempt and advances; ``reset()``
    starts over (after a success). ``rng`` (a ``random.Random``) makes the jitter
    deterministic; by default a process-wide generator is used."""

    __slots__ = ("initial", "multiplier", "maximum", "jitter", "_current", "_random")

    def __init__(
        self,
        initial: float,
        multiplier: float,
        maximum: float,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if not (0 <= initial <= maximum and multiplier >= 1 and 0 <= jitter < 1):
            raise ValueError("need 0 <= initial <= maximum, multiplier >= 1, 0 <= jitter < 1")
        self.initial = float(initial)
        self.multiplier = float(multiplier)
        self.maximum = float(maximum)
        self.jitter = float(jitter)
        self._current = self.initial
        self._random = rng if rng is not None else _RANDOM

    @property
    def current(self) -> float:
        """The wait (before jitter) that the next :meth:`next_delay` returns."""
        return self._current

    def next_delay(self) -> float:
        """The wait before the next attempt; grows the following one."""
        base = self._current
        self._current = min(self.maximum, self._current * self.multiplier)
        if self.jitter:
            base *= 1 + self.jitter * (self._random.random() * 2 - 1)
        return base

    def reset(self) -> None:
        """Start over from ``initial``."""
        self._current = self.initial

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial!r}, multiplier={self.multiplier!r}, "
            f"maximum={self.maximum!r}, jitter={self.jitter!r})"
        )


class RetryPolicy:
    """How unary calls are retried: at most ``max_retries`` retries (0 disables retrying),
    waiting ``initial_backoff`` seconds before the first, ``multiplier`` times longer before
    each next one up to ``max_backoff``, each wait scaled by a random factor in
    ``[1 - jitter, 1 + jitter]`` (defaults: 100 retries, 25 ms doubling to 1 s, ±10%).

    Which errors are retried is not configurable: see :func:`is_retryable`. ``rng`` (a
    ``random.Random``) makes the jitter deterministic (for tests). Immutable; ``replace()``
    returns a modified copy. Give it to a client as ``Client(..., backoff=RetryPolicy(...))``.
    """

    __slots__ = ("_max_retries", "_initial", "_maximum", "_multiplier", "_jitter", "_rng")

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        multiplier: float = DEFAULT_BACKOFF_MULTIPLIER,
        jitter: float = DEFAULT_BACKOFF_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidArgumentError(f"max_retries must be an int >= 0, not {max_retries!r}")
        for name, value in (
            ("initial_backoff", initial_backoff),
            ("max_backoff", max_backoff),
            ("multiplier", multiplier),
            ("jitter", jitter),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgumentError(f"{name} must be a number, not {value!r}")
        if not (
            0 <= initial_backoff <= max_backoff and multiplier >= 1 and 0 <= jitter < 1
        ):  # also rejects NaN
            raise InvalidArgumentError(
                "need 0 <= initial_backoff <= max_backoff, multiplier >= 1, 0 <= jitter < 1"
            )
        self._max_retries = max_retries
        self._initial = float(initial_backoff)
        self._maximum = float(max_backoff)
        self._multiplier = float(multiplier)
        self._jitter = float(jitter)
        self._rng = rng

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt (0: never retry)."""
        return self._max_retries

    @property
    def initial_backoff(self) -> float:
        """Seconds to wait before the first retry."""
        return self._initial

    @property
    def max_backoff(self) -> float:
        """The longest wait between two attempts, in seconds."""
        return self._maximum

    @property
    def multiplier(self) -> float:
        """Growth factor of the wait from one retry to the next."""
        return self._multiplier

    @property
    def jitter(self) -> float:
        """Relative random spread of each wait."""
        return self._jitter

    @property
    def rng(self) -> random.Random | None:
        """The injected random generator, or None for the process-wide one."""
        return self._rng

    def backoff(self) -> Backoff:
        """A fresh :class:`Backoff` with this policy's shape."""
        return Backoff(self._initial, self._multiplier, self._maximum, self._jitter, self._rng)

    def replace(
        self,
        *,
        max_retries: int | None = None,
        initial_backoff: float | None = None,
        max_backoff: float | None = None,
        multiplier: float | None = None,
        jitter: float | None = None,
    ) -> RetryPolicy:
        """A copy with the given fields changed."""
        return RetryPolicy(
            self._max_retries if max_retries is None else max_retries,
            self._initial if initial_backoff is None else initial_backoff,
            self._maximum if max_backoff is None else max_backoff,
            self._multiplier if multiplier is None else multiplier,
            self._jitter if jitter is None else jitter,
            self._rng,
        )

    def _key(self) -> tuple[int, float, float, float, float]:
        return (self._max_retries, self._initial, self._maximum, self._multiplier, self._jitter)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, RetryPolicy)
        return self._key() == other._key() and self._rng is other._rng

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_retries={self._max_retries!r}, "
            f"initial_backoff={self._initial!r}, max_backoff={self._maximum!r}, "
            f"multiplier={self._multiplier!r}, jitter={self._jitter!r})"
        )


def is_retryable(error: EtcdError, repeatable: bool) -> bool:
    """Whether ``error`` may be followed by another attempt of the same request.

    Only a gRPC ``UNAVAILABLE`` status qualifies; then a repeatable request may always be
    sent again, a non-repeatable one only when ``error.sent is False`` (it never left)."""
    if error.code != _UNAVAILABLE:
        return False
    return repeatable or getattr(error, "sent", None) is False


class RetryState:
    """The retry state of one unary call.

    ``deadline`` is a ``time.monotonic()`` value (None: no deadline). After a failed attempt
    the driver calls ``on_error(error, now)``, which returns the seconds to wait before the
    next attempt or raises (the error itself, or ``DeadlineExceededError`` when the wait
    would reach the deadline); after waiting, ``timeout(now)`` gives the next attempt's
    timeout (the time left until the deadline)."""

    __slots__ = ("_policy", "_repeatable", "_deadline", "_retries", "_backoff", "_last")

    def __init__(self, policy: RetryPolicy, repeatable: bool, deadline: float | None) -> None:
        self._policy = policy
        self._repeatable = bool(repeatable)
        self._deadline = deadline
        self._retries = 0
        self._backoff = policy.backoff()
        self._last: EtcdError | None = None

    @property
    def retries(self) -> int:
        """Retries granted so far."""
        return self._retries

    @property
    def repeatable(self) -> bool:
        """Whether the call may be sent again after an ambiguous failure."""
        return self._repeatable

    @property
    def deadline(self) -> float | None:
        """The call's deadline (``time.monotonic()`` seconds), or None."""
        return self._deadline

    def on_error(self, error: EtcdError, now: float) -> float:
        """Decide what follows ``error``: return a wait in seconds, or raise."""
        if not is_retryable(error, self._repeatable):
            raise error
        if self._retries >= self._policy.max_retries:
            raise error
        delay = self._backoff.next_delay()
        if self._deadline is not None and now + delay >= self._deadline:
            raise DeadlineExceededError(
                f"deadline exceeded while retrying after: {error}", details=str(error)
            ) from error
        self._retries += 1
        self._last = error
        return delay

    def timeout(self, now: float) -> float | None:
        """The timeout of the next attempt: the time left until the deadline (None: no
        deadline). Raises ``DeadlineExceededError`` if the deadline has passed."""
        if self._deadline is None:
            return None
        left = self._deadline - now
        if left <= 0:
            last = self._last
            raise DeadlineExceededError(
                f"deadline exceeded while retrying after: {last}", details=str(last or "")
            ) from last
        return left
