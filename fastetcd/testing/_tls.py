"""``ServerTLS``: the certificate files an :class:`EtcdServer` serves its client port with."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Union

__all__ = ["ServerTLS"]

_Path = Union[str, "os.PathLike[str]"]


def _opt(path: _Path | None) -> str | None:
    return None if path is None else os.fspath(path)


@dataclass(frozen=True)
class ServerTLS:
    """TLS for an etcd's client port (``https://127.0.0.1:<port>``); paths to PEM files.

    ``cert_file``/``key_file``: the server's certificate (chain) and key (``--cert-file``,
    ``--key-file``); clients check it against the address they dial, so for the harness's
    servers it needs the IP SAN ``127.0.0.1``. ``ca_file``: the CA that issued it, which
    the harness's ``/health`` probe verifies the server with (None: the probe does not
    verify; it only checks that its own child is up). ``client_ca_file``: when given, etcd
    runs with ``--client-cert-auth --trusted-ca-file=<client_ca_file>`` and refuses clients
    without a certificate issued by that CA; the probe then presents
    ``client_cert_file``/``client_key_file``, which are required with it.

    The files are only named here: make them with e.g. ``trustme`` or ``cryptography``.
    """

    cert_file: str
    key_file: str
    ca_file: str | None = None
    client_ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None

    def __init__(
        self,
        cert_file: _Path,
        key_file: _Path,
        ca_file: _Path | None = None,
        *,
        client_ca_file: _Path | None = None,
        client_cert_file: _Path | None = None,
        client_key_file: _Path | None = None,
    ) -> None:
        if (client_cert_file is None) != (client_key_file is None):
            raise ValueError("give both client_cert_file and client_key_file, or neither")
        if client_ca_file is not None and client_cert_file is None:
            raise ValueError(
                "client_ca_file (--client-cert-auth) needs client_cert_file/client_key_file "
                "for the harness's health probe"
            )
        setter = object.__setattr__
        setter(self, "cert_file", os.fspath(cert_file))
        setter(self, "key_file", os.fspath(key_file))
        setter(self, "ca_file", _opt(ca_file))
        setter(self, "client_ca_file", _opt(client_ca_file))
        setter(self, "client_cert_file", _opt(client_cert_file))
        setter(self, "client_key_file", _opt(client_key_file))

    @property
    def client_cert_auth(self) -> bool:
        """True when etcd requires client certificates (``--client-cert-auth``)."""
        return self.client_ca_file is not None

    def etcd_args(self) -> list[str]:
        """etcd's command-line flags for these files."""
        args = [f"--cert-file={self.cert_file}", f"--key-file={self.key_file}"]
        if self.client_ca_file is not None:
            args += ["--client-cert-auth", f"--trusted-ca-file={self.client_ca_file}"]
        return args

    def probe_context(self) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` the harness's ``/health`` probe connects with."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_file is not None:
            context.load_verify_locations(self.ca_file)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file is not None and self.client_key_file is not None:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context
