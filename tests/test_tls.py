"""TLS against a real etcd: server-authenticated and mutual TLS, on both transports and both
clients, plus every way the handshake can go wrong (a CA that does not trust the server, a
missing or foreign client certificate, a name the certificate does not cover, TLS against a
plaintext port and the reverse, a server that will not speak HTTP/2). Each failure must be a
typed ``fastetcd`` error that says what went wrong, within the client's timeout.

The certificates are made per module with ``trustme``; etcd is started by the test harness
with ``EtcdServer(tls=ServerTLS(...))`` (``https://127.0.0.1:<port>``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import fastetcd
from fastetcd import errors
from fastetcd.testing import EtcdServer, ServerTLS, etcdctl

from .conftest import TEST_TRANSPORTS

TIMEOUT = 2.0  # the clients' timeout in the failure tests
SLACK = 3.0  # what a loaded 2-core machine may add to it
WAIT = 20.0  # the longest any successful step may take


# --------------------------------------------------------------------------- certificates


@dataclass
class Certs:
    ca: str  # the CA that issued the server and client certificates
    server_cert: str
    server_key: str
    server_der: bytes
    client_cert: str  # issued by ``ca``
    client_key: str
    other_ca: str  # an unrelated CA
    other_client_cert: str  # issued by ``other_ca``
    other_client_key: str


def _write_chain(cert: Any, cert_path: Path, key_path: Path) -> None:
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    other.cert_pem.write_to_path(str(d / "other-ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    _write_chain(server, d / "server.pem", d / "server.key")
    _write_chain(ca.issue_cert("fastetcd-client"), d / "client.pem", d / "client.key")
    _write_chain(other.issue_cert("fastetcd-client"), d / "other.pem", d / "other.key")
    der = x509.load_pem_x509_certificate(server.cert_chain_pems[0].bytes())
    san = der.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    return Certs(
        ca=str(d / "ca.pem"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"),
        server_der=der.public_bytes(serialization.Encoding.DER),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client.key"),
        other_ca=str(d / "other-ca.pem"),
        other_client_cert=str(d / "other.pem"),
        other_client_key=str(d / "other.key"),
    )


@pytest.fixture(scope="module")
def tls_server(certs: Certs) -> Iterator[EtcdServer]:
    """etcd serving https://127.0.0.1:<port> (server certificate only)."""
    tls = ServerTLS(certs.server_cert, certs.server_key, certs.ca)
    with EtcdServer(tls=tls, use_env_endpoint=False) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(certs: Certs) -> Iterator[EtcdServer]:
    """etcd requiring client certificates issued by ``certs.ca`` (--client-cert-auth)."""
    tls = ServerTLS(
        certs.server_cert,
        certs.server_key,
        certs.ca,
        client_ca_file=certs.ca,
        client_cert_file=certs.client_cert,
        client_key_file=certs.client_key,
    )
    with EtcdServer(tls=tls, use_env_endpoint=False) as server:
        yield server


# --------------------------------------------------------------------------- one interface


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "async":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


class Side:
    """A blocking view of ``Client`` or of ``AsyncClient`` (run on a private loop: uvloop when
    installed for "async", the standard loop for "asyncio")."""

    def __init__(self, kind: str, endpoint: str, **kw: Any) -> None:
        self.kind = kind
        self.loop = None if kind == "sync" else _new_loop(kind)
        if self.loop is None:
            self.client: Any = fastetcd.Client(endpoint, **kw)
        else:

            async def make() -> fastetcd.AsyncClient:
                return fastetcd.AsyncClient(endpoint, **kw)

            self.client = self.run(make())

    def run(self, coro: Any) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(asyncio.wait_for(coro, WAIT + 10))

    def call(self, name: str, *args: Any, **kw: Any) -> Any:
        if self.loop is None:
            return getattr(self.client, name)(*args, **kw)

        async def invoke() -> Any:
            return await getattr(self.client, name)(*args, **kw)

        return self.run(invoke())

    def watch_events(self, key: bytes, put: Any, count: int) -> list[Any]:
        """Watch ``key``, call ``put()`` once the watch is created, return ``count`` events."""
        if self.loop is None:
            with self.client.watch(key) as w:
                w.wait_created(WAIT)
                put()
                return _events(lambda t: w.get(t), count)

        async def run() -> list[Any]:
            w = self.client.watch(key)
            try:
                await w.wait_created(WAIT)
                await asyncio.get_running_loop().run_in_executor(None, put)
                out: list[Any] = []
                deadline = time.monotonic() + WAIT
                while len(out) < count:
                    response = await w.get(max(0.01, deadline - time.monotonic()))
                    assert response is not None, "the watch ended"
                    out += response.events
                return out
            finally:
                w.cancel()

        return self.run(run())  # type: ignore[no-any-return]

    def ssl_object(self) -> Any:
        """The TLS session of the native transport's connection."""
        transport = self.client._transport
        conn = transport._conn
        assert conn is not None, "no connection"
        if self.loop is None:
            return conn.sock
        return conn.transport.get_extra_info("ssl_object")

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
            return
        self.run(self.client.close())
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


def _events(get: Any, count: int) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + WAIT
    while len(out) < count:
        response = get(max(0.01, deadline - time.monotonic()))
        assert response is not None, "the watch ended"
        out += response.events
    return out


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """The blocking or the asyncio client."""
    return request.param  # type: ignore[no-any-return]


def _failure(kind: str, endpoint: str, transport: str, **kw: Any) -> tuple[BaseException, float]:
    """Make a client, call ``get``, return the error it raised and how long that took."""
    side = Side(kind, endpoint, transport=transport, timeout=TIMEOUT, **kw)
    try:
        start = time.monotonic()
        with pytest.raises(errors.EtcdError) as info:
            side.call("get", b"k")
        return info.value, time.monotonic() - start
    finally:
        side.close()


def _message(exc: BaseException) -> str:
    """The error's text and its cause's (a retried failure ends as DeadlineExceededError
    carrying the last attempt's error)."""
    parts = [str(exc)]
    if exc.__cause__ is not None:
        parts.append(str(exc.__cause__))
    return " | ".join(parts)


def _assert_unavailable(exc: BaseException, elapsed: float, *needles: str) -> None:
    """A failed connection: UNAVAILABLE (or the deadline, after retrying one), in time,
    saying each of ``needles`` (case-insensitive)."""
    assert isinstance(exc, (errors.UnavailableError, errors.DeadlineExceededError)), repr(exc)
    if isinstance(exc, errors.DeadlineExceededError):
        assert isinstance(exc.__cause__, errors.UnavailableError), repr(exc.__cause__)
    assert elapsed < TIMEOUT + SLACK, f"took {elapsed:.1f}s"
    text = _message(exc).lower()
    for needle in needles:
        assert needle.lower() in text, _message(exc)


# --------------------------------------------------------------------------- working TLS


@pytest.mark.parametrize("loop_kind", ["sync", "async", "asyncio"])
def test_kv_round_trip(
    tls_server: EtcdServer, certs: Certs, transport: str, loop_kind: str, etcd_prefix: bytes
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    side = Side(loop_kind, tls_server.url, transport=transport, ca_cert=certs.ca, timeout=WAIT)
    try:
        assert side.client.endpoints[0].secure
        key = etcd_prefix + b"k"
        revision = side.call("put", key, b"over tls").header.revision
        got = side.call("get", key)
        assert (got.value, got.mod_revision) == (b"over tls", revision)
        side.call("put", etcd_prefix + b"k2", "two")
        values = [kv.value for kv in side.call("get_prefix", etcd_prefix).kvs]
        assert values == [b"over tls", b"two"]
        assert side.call("delete", key).deleted == 1
        assert side.call("get", key) is None
    finally:
        side.close()


def test_scheme_less_endpoint_with_ca_cert_means_tls(
    tls_server: EtcdServer, certs: Certs, transport: str, kind: str, etcd_prefix: bytes
) -> None:
    side = Side(kind, tls_server.endpoint, transport=transport, ca_cert=certs.ca, timeout=WAIT)
    try:
        assert side.client.endpoints[0].secure
        side.call("put", etcd_prefix + b"k", b"v")
        assert side.call("get", etcd_prefix + b"k").value == b"v"
    finally:
        side.close()


def test_watch(
    tls_server: EtcdServer, certs: Certs, transport: str, kind: str, etcd_prefix: bytes
) -> None:
    key = etcd_prefix + b"w"
    side = Side(kind, tls_server.url, transport=transport, ca_cert=certs.ca, timeout=WAIT)
    try:
        with fastetcd.Client(tls_server.url, ca_cert=certs.ca, timeout=WAIT) as writer:

            def put() -> None:
                writer.put(key, b"one")
                writer.put(key, b"two")
                writer.delete(key)

            events = side.watch_events(key, put, 3)
        assert [(e.type.name, e.kv.key, e.kv.value) for e in events] == [
            ("PUT", key, b"one"),
            ("PUT", key, b"two"),
            ("DELETE", key, b""),
        ]
    finally:
        side.close()


@pytest.mark.skipif("native" not in TEST_TRANSPORTS, reason="the native transport is not built")
@pytest.mark.parametrize("loop_kind", ["sync", "async", "asyncio"])
def test_native_negotiates_h2_with_the_servers_certificate(
    tls_server: EtcdServer, certs: Certs, loop_kind: str
) -> None:
    side = Side(loop_kind, tls_server.url, transport="native", ca_cert=certs.ca, timeout=WAIT)
    try:
        side.call("get", b"k")
        tls = side.ssl_object()
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.getpeercert(binary_form=True) == certs.server_der
    finally:
        side.close()


def test_mutual_tls(
    mtls_server: EtcdServer, certs: Certs, transport: str, kind: str, etcd_prefix: bytes
) -> None:
    side = Side(
        kind,
        mtls_server.url,
        transport=transport,
        ca_cert=certs.ca,
        cert_cert=certs.client_cert,
        cert_key=Path(certs.client_key),  # os.PathLike works too
        timeout=WAIT,
    )
    try:
        side.call("put", etcd_prefix + b"k", b"mutual")
        assert side.call("get", etcd_prefix + b"k").value == b"mutual"
    finally:
        side.close()


def test_etcdctl_interop(mtls_server: EtcdServer, certs: Certs, etcd_prefix: bytes) -> None:
    key = (etcd_prefix + b"ctl").decode()
    flags = [f"--cacert={certs.ca}", f"--cert={certs.client_cert}", f"--key={certs.client_key}"]
    etcdctl([mtls_server.url], *flags, "put", key, "from etcdctl")
    with fastetcd.Client(
        mtls_server.url,
        ca_cert=certs.ca,
        cert_cert=certs.client_cert,
        cert_key=certs.client_key,
        timeout=WAIT,
    ) as client:
        assert client.get(key).value == b"from etcdctl"
        client.put(key, "from fastetcd")
    assert etcdctl([mtls_server.url], *flags, "get", key, "--print-value-only").strip() == (
        "from fastetcd"
    )


# --------------------------------------------------------------------------- failures


def test_mutual_tls_without_a_client_certificate(
    mtls_server: EtcdServer, certs: Certs, transport: str, kind: str
) -> None:
    exc, elapsed = _failure(kind, mtls_server.url, transport, ca_cert=certs.ca)
    _assert_unavailable(exc, elapsed, "tls", "certificate")


def test_mutual_tls_with_a_foreign_client_certificate(
    mtls_server: EtcdServer, certs: Certs, transport: str, kind: str
) -> None:
    exc, elapsed = _failure(
        kind,
        mtls_server.url,
        transport,
        ca_cert=certs.ca,
        cert_cert=certs.other_client_cert,
        cert_key=certs.other_client_key,
        max_retries=0,
    )
    assert isinstance(exc, errors.UnavailableError), repr(exc)
    _assert_unavailable(exc, elapsed, "tls", "certificate")


def test_wrong_ca(tls_server: EtcdServer, certs: Certs, transport: str, kind: str) -> None:
    exc, elapsed = _failure(kind, tls_server.url, transport, ca_cert=certs.other_ca)
    _assert_unavailable(exc, elapsed, "tls", "certificate")


def test_wrong_ca_without_retries_fails_at_once(
    tls_server: EtcdServer, certs: Certs, transport: str, kind: str
) -> None:
    exc, elapsed = _failure(kind, tls_server.url, transport, ca_cert=certs.other_ca, max_retries=0)
    assert isinstance(exc, errors.UnavailableError), repr(exc)
    assert exc.sent is False  # nothing left the client: even a write may be retried
    _assert_unavailable(exc, elapsed, "tls", "certificate")
    assert elapsed < TIMEOUT, f"took {elapsed:.1f}s"


def test_system_trust_store_does_not_trust_a_private_ca(
    tls_server: EtcdServer, transport: str, kind: str
) -> None:
    exc, elapsed = _failure(kind, tls_server.url, transport, max_retries=0)
    _assert_unavailable(exc, elapsed, "tls", "certificate")


def test_name_not_in_the_certificate(
    tls_server: EtcdServer, certs: Certs, transport: str, kind: str
) -> None:
    # The certificate names only the IP 127.0.0.1, not "localhost".
    url = f"https://localhost:{tls_server.client_port}"
    exc, elapsed = _failure(kind, url, transport, ca_cert=certs.ca, max_retries=0)
    _assert_unavailable(exc, elapsed, "hostname")


def test_https_to_a_plaintext_etcd(
    etcd_server: EtcdServer, certs: Certs, transport: str, kind: str
) -> None:
    url = f"https://{etcd_server.endpoint}"
    exc, elapsed = _failure(kind, url, transport, ca_cert=certs.ca)
    _assert_unavailable(exc, elapsed, "handshake")


def test_http_to_a_tls_etcd(tls_server: EtcdServer, transport: str, kind: str) -> None:
    exc, elapsed = _failure(kind, f"http://{tls_server.endpoint}", transport)
    # the native transport says why (grpcio only says "Socket closed")
    _assert_unavailable(exc, elapsed, *(["TLS endpoint"] if transport == "native" else []))


def test_server_that_never_answers_the_handshake(transport: str, kind: str) -> None:
    # The kernel completes the TCP handshake from the listen backlog; nobody ever reads.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        exc, elapsed = _failure(kind, url, transport)
    assert isinstance(exc, errors.DeadlineExceededError), repr(exc)
    assert TIMEOUT - 0.5 < elapsed < TIMEOUT + SLACK, f"took {elapsed:.1f}s"


@pytest.mark.skipif("native" not in TEST_TRANSPORTS, reason="the native transport is not built")
@pytest.mark.parametrize("loop_kind", ["sync", "async", "asyncio"])
def test_native_handshake_is_bounded_without_a_timeout(
    loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastetcd import _native

    monkeypatch.setattr(_native, "_TLS_HANDSHAKE_TIMEOUT", 0.5)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        side = Side(loop_kind, url, transport="native", max_retries=0)  # no timeout
        try:
            start = time.monotonic()
            with pytest.raises(errors.UnavailableError) as info:
                side.call("get", b"k")
            elapsed = time.monotonic() - start
        finally:
            side.close()
    assert elapsed < 0.5 + SLACK, f"took {elapsed:.1f}s"
    assert "TLS handshake" in str(info.value), str(info.value)


class _NoH2Server:
    """A TLS server (the etcd test certificate) that does not offer HTTP/2 by ALPN."""

    def __init__(self, certs: Certs) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        self.context.set_alpn_protocols(["http/1.1"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            sock.settimeout(5)
            try:
                with self.context.wrap_socket(sock, server_side=True) as tls:
                    self.handshakes += 1
                    while tls.recv(65536):
                        pass
            except OSError:
                pass
            finally:
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def no_h2_server(certs: Certs) -> Iterator[_NoH2Server]:
    server = _NoH2Server(certs)
    yield server
    server.close()


def test_server_without_alpn_h2(
    no_h2_server: _NoH2Server, certs: Certs, transport: str, kind: str
) -> None:
    url = f"https://127.0.0.1:{no_h2_server.port}"
    exc, elapsed = _failure(kind, url, transport, ca_cert=certs.ca)
    if transport == "native":
        _assert_unavailable(exc, elapsed, "TLS", "ALPN", "HTTP/2")
    else:  # grpc-core's wording: "Cannot check peer: missing selected ALPN property."
        _assert_unavailable(exc, elapsed, "ALPN")
    assert no_h2_server.handshakes >= 1  # the refusal came after a completed handshake


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("cls", [fastetcd.Client, fastetcd.AsyncClient])
def test_client_certificate_needs_both_halves(cls: Any, certs: Certs) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="both cert_cert and cert_key"):
        cls("https://127.0.0.1:2379", cert_cert=certs.client_cert)
    with pytest.raises(errors.InvalidArgumentError, match="both cert_cert and cert_key"):
        cls("https://127.0.0.1:2379", ca_cert=certs.ca, cert_key=certs.client_key)


@pytest.mark.parametrize("cls", [fastetcd.Client, fastetcd.AsyncClient])
def test_unreadable_files_are_named(cls: Any, certs: Certs, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(errors.InvalidArgumentError, match="ca_cert") as info:
        cls("https://127.0.0.1:2379", ca_cert=missing)
    assert missing in str(info.value) and "No such file" in str(info.value)
    with pytest.raises(errors.InvalidArgumentError) as info:
        cls("https://127.0.0.1:2379", cert_cert=certs.client_cert, cert_key=missing)
    assert "cert_key" in str(info.value) and missing in str(info.value)
    with pytest.raises(errors.InvalidArgumentError, match="ca_cert"):
        cls("https://127.0.0.1:2379", ca_cert=str(tmp_path))  # a directory


def test_files_that_are_not_pem(certs: Certs, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(errors.InvalidArgumentError, match="not a PEM certificate bundle"):
        fastetcd.Client("https://127.0.0.1:2379", ca_cert=junk)
    # a key that is not the certificate's
    with pytest.raises(errors.InvalidArgumentError, match="matching private key"):
        fastetcd.Client(
            "https://127.0.0.1:2379", cert_cert=certs.client_cert, cert_key=certs.other_client_key
        )
    # an encrypted key: refused (never an interactive password prompt)
    key = serialization.load_pem_private_key(Path(certs.client_key).read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(errors.InvalidArgumentError, match="encrypted"):
        fastetcd.Client("https://127.0.0.1:2379", cert_cert=certs.client_cert, cert_key=encrypted)
    with pytest.raises(errors.ArgumentTypeError):
        fastetcd.Client("https://127.0.0.1:2379", ca_cert=123)  # type: ignore[arg-type]


def test_mixed_schemes_are_refused(certs: Certs) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="all http:// or all https://"):
        fastetcd.Client(["https://127.0.0.1:2379", "http://127.0.0.1:2380"])
    # TLS options make scheme-less endpoints https, so an explicit http:// one is mixed in
    with pytest.raises(errors.InvalidArgumentError, match="all http:// or all https://"):
        fastetcd.Client(["127.0.0.1:2379", "http://127.0.0.1:2380"], ca_cert=certs.ca)
    with pytest.raises(errors.InvalidArgumentError, match="http://"):
        fastetcd.Client("http://127.0.0.1:2379", ca_cert=certs.ca)


def test_plaintext_stays_plaintext_and_keys_stay_out_of_reprs(certs: Certs) -> None:
    with fastetcd.Client("127.0.0.1:2379") as client:
        assert not client.endpoints[0].secure and client._config.tls is None
    with fastetcd.Client(
        "127.0.0.1:2379", ca_cert=certs.ca, cert_cert=certs.client_cert, cert_key=certs.client_key
    ) as client:
        config = client._config
        assert config.endpoints[0].secure and config.tls is not None
        assert config.tls.key_pem is not None and b"PRIVATE KEY" in config.tls.key_pem
        assert "PRIVATE KEY" not in repr(config) and "BEGIN" not in repr(config)
        assert os.path.basename(certs.client_key) in repr(config)


# --------------------------------------------------------------------------- the harness


def test_harness_health_probe_speaks_tls(tls_server: EtcdServer, mtls_server: EtcdServer) -> None:
    from fastetcd.testing._process import probe_health

    assert tls_server.url == f"https://{tls_server.endpoint}"
    assert tls_server.is_healthy() and mtls_server.is_healthy()
    # plaintext probes get nowhere on a TLS port
    assert not probe_health(tls_server.host, tls_server.client_port)
    # without the client certificate, etcd --client-cert-auth refuses even /health
    assert tls_server.tls is not None
    no_client_cert = ServerTLS(tls_server.tls.cert_file, tls_server.tls.key_file)
    assert probe_health(
        tls_server.host, tls_server.client_port, ssl_context=no_client_cert.probe_context()
    )
    assert not probe_health(
        mtls_server.host, mtls_server.client_port, ssl_context=no_client_cert.probe_context()
    )


def test_server_tls_arguments(certs: Certs) -> None:
    tls = ServerTLS(
        Path(certs.server_cert),
        certs.server_key,
        client_ca_file=certs.ca,
        client_cert_file=certs.client_cert,
        client_key_file=certs.client_key,
    )
    assert tls.cert_file == certs.server_cert and tls.client_cert_auth
    assert tls.etcd_args() == [
        f"--cert-file={certs.server_cert}",
        f"--key-file={certs.server_key}",
        "--client-cert-auth",
        f"--trusted-ca-file={certs.ca}",
    ]
    assert not ServerTLS(certs.server_cert, certs.server_key).client_cert_auth
    with pytest.raises(ValueError, match="health probe"):
        ServerTLS(certs.server_cert, certs.server_key, client_ca_file=certs.ca)
    with pytest.raises(ValueError, match="both"):
        ServerTLS(certs.server_cert, certs.server_key, client_cert_file=certs.client_cert)


def test_auto_sync_keeps_tls(certs: Certs) -> None:
    from fastetcd.cluster import Member, MemberListResult
    from fastetcd.kv import ResponseHeader

    members = MemberListResult(
        ResponseHeader(),
        (
            Member(1, "m1", (), ("https://127.0.0.1:5", "http://127.0.0.1:6")),
            Member(2, "m2", (), ("https://127.0.0.1:7",)),
        ),
    )
    with fastetcd.Client("127.0.0.1:1", ca_cert=certs.ca) as client:
        config = client._synced_config(members)
        assert config is not None
        assert [(e.address, e.secure) for e in config.endpoints] == [
            ("127.0.0.1:5", True),
            ("127.0.0.1:7", True),
        ]
        assert config.tls is client._config.tls and config.tls is not None
        assert config.tls.ca_cert == certs.ca
