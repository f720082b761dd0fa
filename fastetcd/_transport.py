"""The transport interface: bytes in, bytes (or a typed ``fastetcd.errors`` error) out.

A transport knows nothing of etcd's messages: it moves the request bytes of a gRPC method
path to the server and returns the response bytes, or raises the error that
``fastetcd.errors.from_status`` builds from the gRPC status. The codec, planning and client
layers only ever see these two protocols, so transports are interchangeable (grpcio now;
a native HTTP/2 transport later).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Protocol

from .errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "Metadata",
    "Endpoint",
    "TransportConfig",
    "Stream",
    "AsyncStream",
    "Transport",
    "AsyncTransport",
    "parse_endpoints",
    "TRANSPORTS",
    "open_transport",
    "open_async_transport",
]

#: The transports a client can be built on (``Client(..., transport=NAME)``).
#: "native" needs the compiled core ``fastetcd._h2`` (else opening it raises
#: ``InvalidArgumentError``).
TRANSPORTS = ("grpcio", "native")

#: gRPC metadata: (key, value) pairs sent with a call.
Metadata = Optional[Sequence[tuple[str, str]]]

DEFAULT_PORT = 2379


@dataclass(frozen=True)
class Endpoint:
    """One etcd member's client URL, split into its parts."""

    host: str
    port: int
    secure: bool = False

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 hosts in brackets), as gRPC targets write it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse_endpoint(text: object) -> Endpoint:
    if not isinstance(text, str):
        raise ArgumentTypeError(f"an endpoint must be a str, not {type(text).__name__}")
    rest = text.strip()
    secure = False
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme not in ("http", "https"):
            raise InvalidArgumentError(f"endpoint {text!r}: scheme must be http or https")
        secure = scheme == "https"
    rest = rest.rstrip("/")
    if not rest or "/" in rest:
        raise InvalidArgumentError(f"endpoint {text!r} is not host:port or a URL")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise InvalidArgumentError(f"endpoint {text!r} is not host:port or a URL")
    elif rest.count(":") > 1:  # a bare IPv6 address without a port
        host, port_text = rest, ""
    else:
        host, _, port_text = rest.partition(":")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise InvalidArgumentError(f"endpoint {text!r}: bad port {port_text!r}") from None
    if not host or not 0 < port < 65536:
        raise InvalidArgumentError(f"endpoint {text!r} is not host:port or a URL")
    return Endpoint(host, port, secure)


def parse_endpoints(endpoints: str | Sequence[str]) -> tuple[Endpoint, ...]:
    """Parse ``"host:port"``, ``"http://host:port"``, a comma-separated list of those, or a
    list of them. The port defaults to 2379."""
    items: Sequence[object]
    if isinstance(endpoints, str):
        items = [part for part in endpoints.split(",") if part.strip()]
    elif isinstance(endpoints, (list, tuple)):
        items = endpoints
    else:
        raise ArgumentTypeError("endpoints must be a str or a list of str")
    parsed = tuple(_parse_endpoint(item) for item in items)
    if not parsed:
        raise InvalidArgumentError("no endpoints given")
    if len({ep.secure for ep in parsed}) > 1:
        raise InvalidArgumentError("endpoints must be all http:// or all https://")
    return parsed


def is_ip_literal(host: str) -> bool:
    """True when ``host`` is an IPv4 or IPv6 address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TransportConfig:
    """What a transport needs to know to connect; built by the client from its arguments."""

    endpoints: tuple[Endpoint, ...]
    #: Largest response accepted (etcd's Go client: 2**31-1; gRPC's own default is 4 MiB).
    max_recv_bytes: int = 2**31 - 1
    #: Largest request sent; checked by the client before sending.
    max_send_bytes: int = 2 * 1024 * 1024
    #: HTTP/2 keepalive ping interval in seconds (None = no pings), and the ack timeout.
    keepalive_time: float | None = None
    keepalive_timeout: float = 20.0
    #: Extra gRPC channel options, for the grpcio transport.
    grpc_options: tuple[tuple[str, int | str], ...] = field(default=())


class Stream(Protocol):
    """A blocking bidirectional gRPC stream (Watch, LeaseKeepAlive; Snapshot sends one
    request then ``done_writing``)."""

    def send(self, request: bytes) -> None:
        """Queue one request message for sending."""

    def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""

    def recv(self) -> bytes | None:
        """Block for the next response message; None when the server ended the stream
        cleanly. Raises the stream's error as an ``EtcdError``."""

    def close(self) -> None:
        """Cancel the stream; a blocked ``recv`` raises ``CancelledError``."""


class AsyncStream(Protocol):
    """An asyncio bidirectional gRPC stream."""

    async def send(self, request: bytes) -> None:
        """Send one request message."""

    async def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""

    async def recv(self) -> bytes | None:
        """Wait for the next response message; None when the server ended the stream
        cleanly. Raises the stream's error as an ``EtcdError``."""

    def close(self) -> None:
        """Cancel the stream; a pending ``recv`` raises ``CancelledError``."""


class Transport(Protocol):
    """A blocking transport (used by :class:`fastetcd.Client`)."""

    def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request to ``method`` and return the response bytes."""

    def stream(self, method: str, metadata: Metadata = None) -> Stream:
        """Open a bidirectional stream to ``method``."""

    def close(self) -> None:
        """Close connections; calls in flight fail with ``CancelledError``."""


class AsyncTransport(Protocol):
    """An asyncio transport (used by :class:`fastetcd.AsyncClient`)."""

    async def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request to ``method`` and return the response bytes."""

    def stream(self, method: str, metadata: Metadata = None) -> AsyncStream:
        """Open a bidirectional stream to ``method`` (call from a running loop)."""

    async def close(self) -> None:
        """Close connections; calls in flight fail with ``CancelledError``."""


def open_transport(config: TransportConfig, name: str) -> Transport:
    """Create the blocking transport called ``name`` (see ``TRANSPORTS``)."""
    if name == "grpcio":
        from ._grpcio import GrpcioTransport

        return GrpcioTransport(config)
    if name == "native":
        from ._native import NativeTransport

        return NativeTransport(config)
    raise InvalidArgumentError(f"unknown transport {name!r} (available: {', '.join(TRANSPORTS)})")


def open_async_transport(config: TransportConfig, name: str) -> AsyncTransport:
    """Create the asyncio transport called ``name`` (see ``TRANSPORTS``)."""
    if name == "grpcio":
        from ._grpcio import AioGrpcioTransport

        return AioGrpcioTransport(config)
    if name == "native":
        from ._native import NativeAsyncTransport

        return NativeAsyncTransport(config)
    raise InvalidArgumentError(f"unknown transport {name!r} (available: {', '.join(TRANSPORTS)})")
