"""The grpcio transport (the reference transport): ``grpc.Channel`` for the blocking client,
``grpc.aio.Channel`` for the asyncio one.

Each method path is registered once per channel with no serializer and no deserializer:
bytes in, bytes out. Encoding happens before the call and decoding after it, in the client,
so a codec error never surfaces inside grpcio (which would turn it into an INTERNAL status).
"""

from __future__ import annotations

import json
import queue
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio

from ._transport import Metadata, TransportConfig, is_ip_literal, load_tls
from .errors import CancelledError, EtcdError, StatusCode, UnavailableError, from_status

__all__ = ["GrpcioTransport", "AioGrpcioTransport", "GrpcioStream", "AioGrpcioStream"]

_END_OF_REQUESTS = object()

#: How grpc-core words the UNAVAILABLE status of a call that was never assigned to a
#: connection: its load-balancing picker fails the call before anything is written (calls are
#: made with wait_for_ready=False and gRPC's own retries off, so no call is re-queued after it
#: started). Seen with grpcio 1.60-1.85 against a real etcd that was killed, cut, refused or
#: reset by a proxy before the handshake; a call that lost its connection after being
#: started reports "Stream removed", "Socket closed", "Connection reset" … instead. Such a
#: request provably never left the client, so even a write may be retried
#: (``UnavailableError.sent = False``); anything else stays ``sent = None`` (unknown).
NOT_SENT_PREFIXES = (
    "failed to connect to all addresses",  # pick_first (one endpoint)
    "connections to all backends failing",  # round_robin (several endpoints)
    "errors resolving",  # name resolution failed
    "DNS resolution failed",  # the same, older grpc-core wording
    "empty address list",  # the resolver returned no address
)

#: grpc-core reconnects a failed subchannel after 1 s, then 1.6x more each time up to 120 s;
#: start sooner and cap lower so a member that comes back is used again within 2 s.
RECONNECT_BACKOFF_INITIAL_MS = 100
RECONNECT_BACKOFF_MAX_MS = 2000


def _target(config: TransportConfig) -> str:
    """The gRPC target string: the endpoint itself, or a static list of addresses."""
    endpoints = config.endpoints
    if len(endpoints) == 1:
        return endpoints[0].address
    addresses: list[tuple[int, str]] = []
    for ep in endpoints:
        if is_ip_literal(ep.host):
            family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
            addresses.append((int(family), ep.address))
            continue
        try:
            infos = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnavailableError(f"cannot resolve endpoint {ep.address}: {exc}") from exc
        for info_family, _, _, _, sockaddr in infos:
            ip = str(sockaddr[0])
            host = f"[{ip}]" if info_family == socket.AF_INET6 else ip
            addresses.append((int(info_family), f"{host}:{ep.port}"))
    first = addresses[0][0]
    scheme = "ipv6" if first == socket.AF_INET6 else "ipv4"
    unique = list(dict.fromkeys(addr for fam, addr in addresses if fam == first))
    return f"{scheme}:{','.join(unique)}"


def _options(config: TransportConfig) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", config.max_recv_bytes),
        # The client checks sizes itself and raises RequestTooLargeError; leave gRPC a margin.
        ("grpc.max_send_message_length", config.max_send_bytes + 1024),
        # Retries are the client's decision (by RPC class), never gRPC's.
        ("grpc.enable_retries", 0),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_INITIAL_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ]
    if len(config.endpoints) > 1:
        options.append(
            ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))
        )
        if config.endpoints[0].secure:
            # One channel over a static address list has one authority, by default the
            # whole list, which no certificate names: check every member's certificate
            # against the first endpoint's host (the native transport checks each against
            # its own).
            options.append(("grpc.ssl_target_name_override", config.endpoints[0].host))
    if config.keepalive_time is not None:
        options += [
            ("grpc.keepalive_time_ms", int(config.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
            # grpc-core waits for a ping's ack up to ping_timeout_ms (60 s by default) when
            # the ping in flight is not a keepalive one; without this a stalled connection
            # was detected only after a minute, whatever keepalive_timeout said.
            ("grpc.http2.ping_timeout_ms", int(config.keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    options += list(config.grpc_options)
    return options


def _system_roots() -> bytes | None:
    """The system's PEM CA bundle (OpenSSL's default file), or None when there is none:
    grpcio then falls back to the roots it ships."""
    path = ssl.get_default_verify_paths().cafile
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read() or None
    except OSError:
        return None


def _credentials(config: TransportConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials for https endpoints (None: plaintext). Without ``ca_cert`` the
    system's trust store is used, as the native transport does, rather than the roots
    grpcio ships."""
    if not config.endpoints[0].secure:
        return None
    tls = config.tls or load_tls()
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem if tls.ca_pem is not None else _system_roots(),
        private_key=tls.key_pem,
        certificate_chain=tls.cert_pem,
    )


#: grpc-core's words for a TLS alert read after its side of the handshake was done. With TLS 1.3
#: (etcd 3.4, or 3.6; etcd 3.5 caps TLS at 1.2) the server checks the client certificate only
#: then, so this is how a refused or missing client certificate shows, without saying so.
_TLS_ALERT_AFTER_HANDSHAKE = "TSI_DATA_CORRUPTED"
_TLS_ALERT_HINT = (
    " (TLS: the server ended the session with an alert; right after the handshake, with TLS 1.3,"
    " that is how a server refuses the client certificate, or its absence)"
)


def never_sent(code: int, details: str) -> bool:
    """True when grpcio's status says the call was never given to a connection."""
    return code == StatusCode.UNAVAILABLE and details.startswith(NOT_SENT_PREFIXES)


def _error(exc: grpc.RpcError) -> EtcdError:
    """Map a grpcio error to fastetcd's error tree (``sent=False`` when provably unsent)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    number = code.value[0] if code is not None else StatusCode.UNKNOWN
    if _TLS_ALERT_AFTER_HANDSHAKE in details:
        details += _TLS_ALERT_HINT
    error = from_status(number, details)
    if isinstance(error, UnavailableError) and never_sent(number, details):
        error.sent = False
    return error


class GrpcioStream:
    """A bidi stream over ``grpc.Channel``: requests are fed to grpcio from a queue."""

    def __init__(self, method: grpc.StreamStreamMultiCallable, metadata: Metadata) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._call = method(self._request_iterator(), metadata=metadata)

    def _request_iterator(self) -> Iterator[bytes]:
        while True:
            item = self._requests.get()
            if item is _END_OF_REQUESTS:
                return
            yield item  # type: ignore[misc]

    def send(self, request: bytes) -> None:
        """Queue one request message for sending."""
        self._requests.put(request)

    def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""
        self._requests.put(_END_OF_REQUESTS)

    def recv(self) -> bytes | None:
        """Block for the next response; None at a clean end of stream."""
        try:
            response: bytes = next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return response

    def close(self) -> None:
        """Cancel the stream."""
        self._call.cancel()
        self._requests.put(_END_OF_REQUESTS)


class AioGrpcioStream:
    """A bidi stream over ``grpc.aio.Channel``."""

    def __init__(self, method: Any, metadata: Metadata) -> None:
        self._call = method(metadata=metadata)

    async def send(self, request: bytes) -> None:
        """Send one request message."""
        try:
            await self._call.write(request)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def done_writing(self) -> None:
        """Half-close: no more requests will be sent."""
        await self._call.done_writing()

    async def recv(self) -> bytes | None:
        """Wait for the next response; None at a clean end of stream."""
        try:
            response = await self._call.read()
        except grpc.RpcError as exc:
            raise _error(exc) from None
        if response is grpc.aio.EOF:
            return None
        return response  # type: ignore[no-any-return]

    def close(self) -> None:
        """Cancel the stream."""
        self._call.cancel()


class GrpcioTransport:
    """Blocking transport over one ``grpc.Channel`` (thread-safe)."""

    def __init__(self, config: TransportConfig) -> None:
        credentials = _credentials(config)
        target, options = _target(config), _options(config)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options)
        self._methods: dict[str, grpc.UnaryUnaryMultiCallable] = {}
        self._closed = False

    def _method(self, path: str) -> grpc.UnaryUnaryMultiCallable:
        method = self._channel.unary_unary(path, None, None, _registered_method=True)
        self._methods[path] = method
        return method

    def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``)."""
        if self._closed:
            raise CancelledError("the client is closed")
        callable_ = self._methods.get(method) or self._method(method)
        try:
            response: bytes = callable_(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        except ValueError as exc:  # grpcio raises it for calls on a closed channel
            if self._closed:
                raise CancelledError("the client is closed") from exc
            raise
        return response

    def stream(self, method: str, metadata: Metadata = None) -> GrpcioStream:
        """Open a bidirectional stream to ``method``."""
        if self._closed:
            raise CancelledError("the client is closed")
        multicallable = self._channel.stream_stream(method, None, None, _registered_method=True)
        return GrpcioStream(multicallable, metadata)

    def close(self) -> None:
        """Close the channel; calls in flight fail with ``CancelledError``."""
        self._closed = True
        self._channel.close()


class AioGrpcioTransport:
    """asyncio transport over one ``grpc.aio.Channel``."""

    def __init__(self, config: TransportConfig) -> None:
        credentials = _credentials(config)
        target, options = _target(config), _options(config)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options)
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._closed = False

    def _method(self, path: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(
            path, None, None, _registered_method=True
        )
        self._methods[path] = method
        return method

    async def unary(
        self, method: str, request: bytes, timeout: float | None, metadata: Metadata = None
    ) -> bytes:
        """Send one request and return the response bytes (raises ``EtcdError``)."""
        if self._closed:
            raise CancelledError("the client is closed")
        callable_ = self._methods.get(method) or self._method(method)
        try:
            response: bytes = await callable_(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return response

    def stream(self, method: str, metadata: Metadata = None) -> AioGrpcioStream:
        """Open a bidirectional stream to ``method`` (from a running loop)."""
        if self._closed:
            raise CancelledError("the client is closed")
        multicallable = self._channel.stream_stream(method, None, None, _registered_method=True)
        return AioGrpcioStream(multicallable, metadata)

    async def close(self) -> None:
        """Close the channel; calls in flight fail with ``CancelledError``."""
        self._closed = True
        await self._channel.close()
