"""What the blocking and the asyncio client share: configuration and the checks done on a
planned call before it is sent. The drivers themselves live in ``client.py`` and ``aio.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, TypeVar

from ._plan import Call
from ._transport import TRANSPORTS, Endpoint, TransportConfig, parse_endpoints
from .errors import InvalidArgumentError, RequestTooLargeError

__all__ = ["ClientBase", "doc_of"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_ENDPOINT = "127.0.0.1:2379"
#: etcd's Go client default send limit (the server accepts --max-request-bytes, 1.5 MiB by
#: default, plus gRPC overhead).
DEFAULT_MAX_SEND_BYTES = 2 * 1024 * 1024
#: etcd's Go client default receive limit (math.MaxInt32), far above gRPC's 4 MiB.
DEFAULT_MAX_RECV_BYTES = 2**31 - 1


def doc_of(operation: Callable[..., Any]) -> Callable[[F], F]:
    """Give a client method the docstring of the planning function it drives."""

    def apply(method: F) -> F:
        method.__doc__ = operation.__doc__
        return method

    return apply


class ClientBase:
    """Configuration shared by :class:`fastetcd.Client` and :class:`fastetcd.AsyncClient`."""

    def __init__(
        self,
        endpoints: str | Sequence[str] = DEFAULT_ENDPOINT,
        *,
        timeout: float | None = None,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
        keepalive_time: float | None = None,
        keepalive_timeout: float = 20.0,
        transport: str = "grpcio",
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds or None, not {timeout!r}")
        if not 0 < max_send_bytes <= 2**31 - 1 or not 0 < max_recv_bytes <= 2**31 - 1:
            raise InvalidArgumentError("max_send_bytes and max_recv_bytes must be in (0, 2**31)")
        if transport not in TRANSPORTS:
            raise InvalidArgumentError(
                f"unknown transport {transport!r} (available: {', '.join(TRANSPORTS)})"
            )
        self._transport_name = transport
        self._config = TransportConfig(
            endpoints=parse_endpoints(endpoints),
            max_recv_bytes=max_recv_bytes,
            max_send_bytes=max_send_bytes,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
        )
        self._timeout = timeout
        self._max_send_bytes = max_send_bytes
        self._connect()

    def _connect(self) -> None:
        """Create the transport (each driver creates its own kind)."""
        raise NotImplementedError

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints this client connects to."""
        return self._config.endpoints

    @property
    def timeout(self) -> float | None:
        """The deadline, in seconds, applied to every call (None: no deadline)."""
        return self._timeout

    def _checked(self, call: Call[T]) -> Call[T]:
        """Refuse a request larger than the send limit before anything is sent."""
        if len(call.request) > self._max_send_bytes:
            raise RequestTooLargeError(
                f"request of {len(call.request)} bytes exceeds the client's send limit of "
                f"{self._max_send_bytes} bytes (max_send_bytes)"
            )
        return call

    def __repr__(self) -> str:
        endpoints = ",".join(ep.address for ep in self._config.endpoints)
        return f"{type(self).__name__}({endpoints!r})"
