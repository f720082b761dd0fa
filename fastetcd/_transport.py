"""The transport interface: bytes in, bytes (or a typed ``fastetcd.errors`` error) out.

A transport knows nothing of etcd's messages: it moves the request bytes of a gRPC method
path to the server and returns the response bytes, or raises the error that
``fastetcd.errors.from_status`` builds from the gRPC status. The codec, planning and client
layers only ever see these two protocols, so transports are interchangeable (grpcio now;
a native HTTP/2 transport later).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Protocol, Union

from .errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "Metadata",
    "Endpoint",
    "TLSConfig",
    "TransportConfig",
    "Stream",
    "AsyncStream",
    "Transport",
    "AsyncTransport",
    "parse_endpoints",
    "load_tls",
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

#: A file path, as the TLS options take it.
PathLike = Union[str, "os.PathLike[str]"]

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


def _parse_endpoint(text: object, default_secure: bool = False) -> Endpoint:
    if not isinstance(text, str):
        raise ArgumentTypeError(f"an endpoint must be a str, not {type(text).__name__}")
    rest = text.strip()
    secure = default_secure
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


def parse_endpoints(
    endpoints: str | Sequence[str], *, default_secure: bool = False
) -> tuple[Endpoint, ...]:
    """Parse ``"host:port"``, ``"http://host:port"``, a comma-separated list of those, or a
    list of them. The port defaults to 2379; an endpoint without a scheme is https when
    ``default_secure`` (the client was given TLS options), else http."""
    items: Sequence[object]
    if isinstance(endpoints, str):
        items = [part for part in endpoints.split(",") if part.strip()]
    elif isinstance(endpoints, (list, tuple)):
        items = endpoints
    else:
        raise ArgumentTypeError("endpoints must be a str or a list of str")
    parsed = tuple(_parse_endpoint(item, default_secure) for item in items)
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


def _no_password() -> bytes:
    raise InvalidArgumentError("cert_key is encrypted; give an unencrypted PEM private key")


def _path(name: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a path (str or os.PathLike), not {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise ArgumentTypeError(f"{name} must be a str path, not {path!r}")
    return path


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {name} {path!r}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class TLSConfig:
    """The client's TLS material, read and checked once when the client is created.

    ``ca_cert`` is a PEM CA bundle (None: the system's trust store); ``cert_cert`` and
    ``cert_key`` are the client certificate (chain) and its unencrypted private key, PEM, for
    mutual TLS. The PEM bytes feed grpcio (``grpc.ssl_channel_credentials``); ``context``,
    an ``ssl.SSLContext`` built from the same files (ALPN ``h2``, server certificate and host
    name verified), feeds the native transport. Build it with :func:`load_tls`."""

    ca_cert: str | None = None
    cert_cert: str | None = None
    cert_key: str | None = None
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


def load_tls(
    ca_cert: PathLike | None = None,
    cert_cert: PathLike | None = None,
    cert_key: PathLike | None = None,
) -> TLSConfig:
    """Read and check the TLS files. Raises ``InvalidArgumentError`` naming the file when
    one cannot be read or holds no usable PEM (a CA bundle without a certificate, a
    certificate that does not match its key, an encrypted key), and when only one of
    ``cert_cert`` and ``cert_key`` is given."""
    if (cert_cert is None) != (cert_key is None):
        raise InvalidArgumentError(
            "mutual TLS needs both cert_cert and cert_key (the client certificate and its "
            "private key), or neither"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and host
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # HTTP/2 (RFC 9113 §9.2) needs 1.2+
    context.set_alpn_protocols(["h2"])
    ca_path = ca_pem = None
    if ca_cert is None:
        context.load_default_certs()
    else:
        ca_path = _path("ca_cert", ca_cert)
        ca_pem = _read("ca_cert", ca_path)
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        except (UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
            raise InvalidArgumentError(
                f"ca_cert {ca_path!r} is not a PEM certificate bundle ({exc})"
            ) from None
    cert_path = key_path = cert_pem = key_pem = None
    if cert_cert is not None and cert_key is not None:
        cert_path, key_path = _path("cert_cert", cert_cert), _path("cert_key", cert_key)
        cert_pem, key_pem = _read("cert_cert", cert_path), _read("cert_key", key_path)
        try:
            context.load_cert_chain(cert_path, key_path, password=_no_password)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cert_cert {cert_path!r} and cert_key {key_path!r} are not a PEM certificate "
                f"and its matching private key ({exc})"
            ) from None
        except OSError as exc:  # the file went away between the two reads
            raise InvalidArgumentError(f"cannot read cert_cert/cert_key: {exc}") from None
    return TLSConfig(ca_path, cert_path, key_path, ca_pem, cert_pem, key_pem, context)


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
    #: TLS material for https endpoints (None with https endpoints: the system trust
    #: store, no client certificate).
    tls: TLSConfig | None = None


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
