"""What the blocking and the asyncio client share: configuration, the checks done on a
planned call before it is sent, endpoint bookkeeping for failover and auto-sync. The drivers
themselves live in ``client.py`` and ``aio.py``; the retry policy lives in the retry core
(``fastetcd._retry`` / ``_retry_py``), which both drivers step through."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Callable, Generic, TypeVar

from . import _retry_py
from ._impl import retry
from ._plan import Call
from ._transport import (
    TRANSPORTS,
    Endpoint,
    PathLike,
    TransportConfig,
    load_tls,
    parse_endpoints,
)
from .cluster import MemberListResult
from .errors import EtcdError, InvalidArgumentError, RequestTooLargeError

__all__ = ["ClientBase", "TransportSlot", "doc_of"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
TransportT = TypeVar("TransportT")

DEFAULT_ENDPOINT = "127.0.0.1:2379"
#: etcd's Go client default send limit (the server accepts --max-request-bytes, 1.5 MiB by
#: default, plus gRPC overhead).
DEFAULT_MAX_SEND_BYTES = 2 * 1024 * 1024
#: etcd's Go client default receive limit (math.MaxInt32), far above gRPC's 4 MiB.
DEFAULT_MAX_RECV_BYTES = 2**31 - 1
#: Deadline of each MemberList call made by auto-sync (etcd's Go client: 5 s).
AUTO_SYNC_TIMEOUT = 5.0
#: gRPC metadata that makes etcd refuse requests while the member has no leader (etcd's Go
#: client: ``WithRequireLeader``); the refusal (``NoLeaderError``) is retried elsewhere.
REQUIRE_LEADER_METADATA: tuple[tuple[str, str], ...] = (("hasleader", "true"),)


def doc_of(operation: Callable[..., Any]) -> Callable[[F], F]:
    """Give a client method the docstring of the planning function it drives."""

    def apply(method: F) -> F:
        method.__doc__ = operation.__doc__
        return method

    return apply


class TransportSlot(Generic[TransportT]):
    """A transport and the calls using it. When auto-sync replaces the transport, the old
    slot is retired and its transport closed once its last call in flight has finished, so no
    call is cut. Each attempt holds the slot it was sent on in a local variable: the blocking
    driver, on many threads, lets CPython's reference count tell when the last one is done
    (a ``weakref.finalize`` on the retired slot closes its transport; nothing is counted per
    call); the asyncio driver, on one thread, counts ``calls`` itself."""

    __slots__ = ("transport", "calls", "retired", "closed", "__weakref__")

    def __init__(self, transport: TransportT) -> None:
        self.transport = transport
        self.calls = 0
        self.retired = False
        self.closed = False


def _check_policy(backoff: object, max_retries: int | None) -> Any:
    policy: Any
    if backoff is None:
        policy = retry.RetryPolicy()
    elif isinstance(backoff, (retry.RetryPolicy, _retry_py.RetryPolicy)) or (
        type(backoff).__module__ == "fastetcd._retry" and type(backoff).__name__ == "RetryPolicy"
    ):  # either twin's: the retry state only reads the policy's fields
        policy = backoff
    else:
        raise InvalidArgumentError(
            f"backoff must be a fastetcd.RetryPolicy or None, not {type(backoff).__name__}"
        )
    if max_retries is not None:
        policy = policy.replace(max_retries=max_retries)
    return policy


def default_transport() -> str:
    """The transport a client uses when none is named: "native" when its compiled core
    (``fastetcd._h2``) is available, else "grpcio" (pure-Python installs, or
    ``FASTETCD_NO_EXTENSIONS=1``)."""
    from . import _native

    return "native" if _native.available() else "grpcio"


class ClientBase:
    """Configuration shared by :class:`fastetcd.Client` and :class:`fastetcd.AsyncClient`."""

    def __init__(
        self,
        endpoints: str | Sequence[str] = DEFAULT_ENDPOINT,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: retry.RetryPolicy | None = None,
        require_leader: bool = False,
        auto_sync_interval: float | None = None,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
        keepalive_time: float | None = None,
        keepalive_timeout: float = 20.0,
        transport: str | None = None,
        ca_cert: PathLike | None = None,
        cert_cert: PathLike | None = None,
        cert_key: PathLike | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds or None, not {timeout!r}")
        if auto_sync_interval is not None and not auto_sync_interval > 0:
            raise InvalidArgumentError(
                f"auto_sync_interval must be > 0 seconds or None, not {auto_sync_interval!r}"
            )
        if not 0 < max_send_bytes <= 2**31 - 1 or not 0 < max_recv_bytes <= 2**31 - 1:
            raise InvalidArgumentError("max_send_bytes and max_recv_bytes must be in (0, 2**31)")
        if transport is None:
            transport = default_transport()
        if transport not in TRANSPORTS:
            raise InvalidArgumentError(
                f"unknown transport {transport!r} (available: {', '.join(TRANSPORTS)})"
            )
        self._retry_policy = _check_policy(backoff, max_retries)
        #: every call (and a watch that does not say otherwise) requires a leader
        self._require_leader = bool(require_leader)
        self._metadata = REQUIRE_LEADER_METADATA if require_leader else None
        self._auto_sync_interval = auto_sync_interval
        self._transport_name = transport
        tls_given = ca_cert is not None or cert_cert is not None or cert_key is not None
        parsed = parse_endpoints(endpoints, default_secure=tls_given)
        if tls_given and not parsed[0].secure:
            raise InvalidArgumentError(
                "TLS options (ca_cert, cert_cert, cert_key) were given but the endpoints are "
                "http://; use https:// endpoints (or host:port)"
            )
        self._config = TransportConfig(
            endpoints=parsed,
            max_recv_bytes=max_recv_bytes,
            max_send_bytes=max_send_bytes,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            tls=load_tls(ca_cert, cert_cert, cert_key) if parsed[0].secure else None,
        )
        self._timeout = timeout
        self._max_send_bytes = max_send_bytes
        self._connect()
        if auto_sync_interval is not None:
            self._start_auto_sync(auto_sync_interval)

    def _connect(self) -> None:
        """Create the transport (each driver creates its own kind)."""
        raise NotImplementedError

    def _start_auto_sync(self, interval: float) -> None:
        """Start the background endpoint refresher (a thread or a task)."""
        raise NotImplementedError

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints this client connects to (refreshed by auto-sync)."""
        return self._config.endpoints

    @property
    def timeout(self) -> float | None:
        """The deadline, in seconds, applied to every call (None: no deadline)."""
        return self._timeout

    @property
    def retry_policy(self) -> retry.RetryPolicy:
        """How failed calls are retried (``max_retries`` and ``backoff`` given at creation)."""
        return self._retry_policy  # type: ignore[no-any-return]

    def _too_large(self, call: Call[T]) -> RequestTooLargeError:
        """The error for a request larger than the send limit (refused before sending)."""
        return RequestTooLargeError(
            f"request of {len(call.request)} bytes exceeds the client's send limit of "
            f"{self._max_send_bytes} bytes (max_send_bytes)"
        )

    def _synced_config(self, result: MemberListResult) -> TransportConfig | None:
        """The transport config for the members in ``result``, or None to keep the current
        one: the client URLs of started voting members (a member with no name has not
        started; learners serve no client requests), as etcd's Go client ``Sync`` does,
        keeping only URLs of the current scheme (never downgrade https to http)."""
        secure = self._config.endpoints[0].secure
        found: list[Endpoint] = []
        for member in result.members:
            if not member.name or member.is_learner:
                continue
            for url in member.client_urls:
                try:
                    (endpoint,) = parse_endpoints([url])
                except EtcdError:
                    continue
                if endpoint.secure == secure and endpoint not in found:
                    found.append(endpoint)
        if not found or set(found) == set(self._config.endpoints):
            return None
        return dataclasses.replace(self._config, endpoints=tuple(found))

    def __repr__(self) -> str:
        endpoints = ",".join(ep.address for ep in self._config.endpoints)
        return f"{type(self).__name__}({endpoints!r})"
