"""Type stub shared by the compiled retry core (``fastetcd._retry``, built from
``src/_retry.pyx``) and its pure-Python twin (``fastetcd._retry_py``). Both export exactly
these names and behave identically: given the same injected ``random.Random`` they return the
same waits (bit for bit) and raise the same errors, so the twins can be compared decision for
decision. Nothing here does I/O, sleeps or reads a clock: the drivers pass ``now``.

Decisions (etcd's Go client, ``client/v3/retry.go``):
  * only an error whose gRPC ``code`` is UNAVAILABLE is retried (etcd's "no leader", "leader
    changed", "server stopped", "request timed out …" and "unhealthy cluster" arrive so);
  * a repeatable call (reads; writes marked idempotent) is retried on any such error; a
    non-repeatable one (writes) only when ``error.sent is False`` (the request never left);
  * at most ``max_retries`` retries; waits grow per :class:`Backoff`;
  * a wait that would end at or past the deadline raises ``DeadlineExceededError`` (its
    ``__cause__`` is the last error) instead of waiting.
"""

import random

from fastetcd.errors import EtcdError

DEFAULT_MAX_RETRIES: int
DEFAULT_INITIAL_BACKOFF: float
DEFAULT_MAX_BACKOFF: float
DEFAULT_BACKOFF_MULTIPLIER: float
DEFAULT_BACKOFF_JITTER: float

class Backoff:
    """Exponential backoff with jitter and a cap (also used by stream reconnect loops)."""

    initial: float
    multiplier: float
    maximum: float
    jitter: float
    def __init__(
        self,
        initial: float,
        multiplier: float,
        maximum: float,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None: ...
    @property
    def current(self) -> float:
        """The wait (before jitter) that the next ``next_delay()`` returns."""
    def next_delay(self) -> float:
        """The wait before the next attempt; grows the following one."""
    def reset(self) -> None:
        """Start over from ``initial``."""

class RetryPolicy:
    """How unary calls are retried (immutable; see the module docstring)."""

    def __init__(
        self,
        max_retries: int = ...,
        initial_backoff: float = ...,
        max_backoff: float = ...,
        multiplier: float = ...,
        jitter: float = ...,
        rng: random.Random | None = None,
    ) -> None: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def initial_backoff(self) -> float: ...
    @property
    def max_backoff(self) -> float: ...
    @property
    def multiplier(self) -> float: ...
    @property
    def jitter(self) -> float: ...
    @property
    def rng(self) -> random.Random | None: ...
    def backoff(self) -> Backoff:
        """A fresh :class:`Backoff` with this policy's shape."""
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
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def is_retryable(error: EtcdError, repeatable: bool) -> bool:
    """Whether ``error`` may be followed by another attempt of the same request."""

class RetryState:
    """The retry state of one unary call (``deadline``: ``time.monotonic()`` seconds)."""

    def __init__(self, policy: RetryPolicy, repeatable: bool, deadline: float | None) -> None: ...
    @property
    def retries(self) -> int: ...
    @property
    def repeatable(self) -> bool: ...
    @property
    def deadline(self) -> float | None: ...
    def on_error(self, error: EtcdError, now: float) -> float:
        """Return the wait before the next attempt, or raise."""
    def timeout(self, now: float) -> float | None:
        """The next attempt's timeout (time left until the deadline), or None."""
