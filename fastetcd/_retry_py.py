"""Retry and backoff decisions, sans I/O (pure-Python twin of ``src/_retry.pyx``).

The drivers (sync and async, unary calls and stream reconnects) step through these objects:
given an error and the time, they say "retry after d seconds" or raise. Nothing here sleeps,
reads a clock or touches a socket, so every decision is unit-testable and identical for
``Client`` and ``AsyncClient``.

Semantics follow etcd's Go client (``client/v3/retry.go``, ``retry_interceptor.go``):

* a *repeatable* call (reads, and writes the caller marked idempotent) is retried on
  ``UNAVAILABLE`` — which includes etcd's "no leader", "leader changed" and "request timed
  out" errors;
* a *non-repeatable* call (writes) is retried only when the transport proves the request
  never left the client (``UnavailableError.sent is False``), so a write is applied at most
  once;
* every other error is raised at once; the caller's deadline always wins: a retry whose
  wait would end past the deadline raises ``DeadlineExceededError`` instead.
"""

from __future__ import annotations

import random

from .errors import DeadlineExceededError, EtcdError, UnavailableError

__all__ = ["Backoff", "RetryPolicy", "RetryState"]


class Backoff:
    """Exponential backoff with jitter and a cap: ``initial * multiplier**n``, capped at
    ``maximum``, each wait scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    ``next_delay()`` returns the wait before the next attempt and advances; ``reset()``
    starts over (after a success)."""

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
        self.initial = initial
        self.multiplier = multiplier
        self.maximum = maximum
        self.jitter = jitter
        self._current = initial
        self._random = rng or random.Random()

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


class RetryPolicy:
    """How unary calls are retried: at most ``max_retries`` retries, waiting per
    :class:`Backoff` (defaults: 25 ms doubling to 1 s, ±10% jitter)."""

    __slots__ = ("max_retries", "initial_backoff", "max_backoff", "multiplier", "jitter")

    def __init__(
        self,
        max_retries: int = 100,
        initial_backoff: float = 0.025,
        max_backoff: float = 1.0,
        multiplier: float = 2.0,
        jitter: float = 0.1,
    ) -> None:
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.multiplier = multiplier
        self.jitter = jitter


class RetryState:
    """The retry state of one unary call.

    ``on_error(error, now)`` returns the seconds to wait before the next attempt, or raises
    (the error itself, or ``DeadlineExceededError`` when the wait would pass ``deadline``,
    a ``time.monotonic()`` value or None)."""

    __slots__ = ("_policy", "_repeatable", "_deadline", "_attempts", "_backoff")

    def __init__(self, policy: RetryPolicy, repeatable: bool, deadline: float | None) -> None:
        self._policy = policy
        self._repeatable = repeatable
        self._deadline = deadline
        self._attempts = 0
        self._backoff = Backoff(
            policy.initial_backoff, policy.multiplier, policy.max_backoff, policy.jitter
        )

    def on_error(self, error: EtcdError, now: float) -> float:
        """Decide what follows ``error``: return a wait in seconds, or raise."""
        if not isinstance(error, UnavailableError):
            raise error
        if not self._repeatable and error.sent is not False:
            raise error
        if self._attempts >= self._policy.max_retries:
            raise error
        self._attempts += 1
        delay = self._backoff.next_delay()
        if self._deadline is not None and now + delay >= self._deadline:
            raise DeadlineExceededError(
                f"deadline exceeded while retrying after: {error}", details=str(error)
            ) from error
        return delay
