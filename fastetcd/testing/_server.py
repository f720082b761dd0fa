"""``EtcdServer``: one real etcd member on loopback, started and stopped by the tests."""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from ._binaries import child_env, etcd_version, find_etcd_binary
from ._errors import EtcdStartError, ExternalEtcdError
from ._process import (
    LOOPBACK,
    free_ports,
    make_temp_dir,
    probe_health,
    read_log_tail,
    spawn,
    stop_process,
    untrack_dir,
)
from ._tls import ServerTLS
from ._version import fetch_server_version

if TYPE_CHECKING:
    import subprocess

    from typing_extensions import Self

__all__ = ["ENV_TEST_ENDPOINT", "EtcdServer"]

ENV_TEST_ENDPOINT = "FASTETCD_TEST_ENDPOINT"
"""Environment variable naming an existing etcd (``host:port``) to use instead of a child."""

_ADDR_IN_USE = "address already in use"
_PORT_RETRIES = 5


class _AddressInUseError(EtcdStartError):
    """etcd could not bind one of its ports (lost the free-port race)."""


def _parse_endpoint(value: str) -> tuple[str, str, str, int]:
    """``(endpoint, url, host, port)`` of ``host:port`` or ``scheme://host:port``."""
    value = value.strip().rstrip("/")
    if "://" in value:
        scheme, rest = value.split("://", 1)
    else:
        scheme, rest = "http", value
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected an etcd endpoint as host:port, got {value!r}")
    return rest, f"{scheme}://{rest}", host.strip("[]"), int(port)


class EtcdServer:
    """One real etcd process on 127.0.0.1 with free ports and a temporary data dir.

    ``extra_args`` are appended to etcd's command line (after the harness's own
    flags, so they win), e.g. ``["--max-txn-ops=1024", "--auto-compaction-retention=1"]``.

    ``tls`` (a :class:`ServerTLS`) serves the client port over TLS, ``https://127.0.0.1:<port>``
    (:attr:`url`; :attr:`endpoint` stays ``host:port``), optionally requiring client
    certificates; the ``/health`` probe then speaks TLS too.

    Lifecycle: :meth:`start` spawns etcd (output goes to :attr:`log`, never to the
    test's stdout) and waits until ``/health`` reports ``{"health": "true"}``;
    :meth:`stop` terminates it (SIGTERM, then SIGKILL after ``stop_timeout``) and
    removes the temporary directory; :meth:`kill` SIGKILLs it, keeping the data;
    :meth:`restart` stops and starts it again on the same ports and data dir.
    Also usable as a context manager (``with EtcdServer() as srv: ...``).

    If ``FASTETCD_TEST_ENDPOINT`` is set (and ``use_env_endpoint`` is true), or
    ``external_endpoint`` is given, nothing is started: the object only exposes that
    endpoint, :meth:`start` just waits for it to be healthy, and :meth:`stop`,
    :meth:`kill` and :meth:`restart` raise :class:`ExternalEtcdError`.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        name: str = "default",
        binary: str | None = None,
        client_port: int | None = None,
        peer_port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        external_endpoint: str | None = None,
        use_env_endpoint: bool = True,
        tls: ServerTLS | None = None,
    ) -> None:
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of strings, not a string")
        self.name = name
        """The etcd member name (``--name``)."""
        self.extra_args: list[str] = list(extra_args)
        """Extra command-line arguments passed to etcd."""
        self.startup_timeout = startup_timeout
        """Seconds :meth:`start` waits for ``/health`` before giving up."""
        self.stop_timeout = stop_timeout
        """Seconds :meth:`stop` waits after SIGTERM before sending SIGKILL."""
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None
        self._user_data_dir = os.fspath(data_dir) if data_dir is not None else None
        self._user_log_path = os.fspath(log_path) if log_path is not None else None
        self._data_dir: str | None = self._user_data_dir
        self._log_path: str | None = self._user_log_path
        self._log_offset = 0
        self._token = "fastetcd-" + uuid.uuid4().hex[:16]
        self.tls = tls
        """TLS of the client port (:class:`ServerTLS`; None: plaintext ``http://``)."""
        self._scheme = "https" if tls is not None else "http"
        self._probe_context = tls.probe_context() if tls is not None else None

        external = external_endpoint
        if external is None and use_env_endpoint:
            external = os.environ.get(ENV_TEST_ENDPOINT, "").strip() or None
        self._external = external
        self._peer_port: int | None = None
        if external is not None:
            self._auto_ports = False
            endpoint, url, host, port = _parse_endpoint(external)
        else:
            self._auto_ports = client_port is None or peer_port is None
            ports = free_ports(2) if self._auto_ports else [0, 0]
            host, port = LOOPBACK, client_port if client_port is not None else ports[0]
            self._peer_port = peer_port if peer_port is not None else ports[1]
            endpoint = f"{host}:{port}"
            url = f"{self._scheme}://{endpoint}"
        self.host: str = host
        """The host etcd listens on (always 127.0.0.1 unless external)."""
        self.client_port: int = port
        """The client (gRPC + HTTP) port."""
        self._endpoint = endpoint
        self._url = url

    # ----------------------------------------------------------------- properties

    @property
    def external(self) -> bool:
        """True when this object wraps an existing etcd instead of owning a process."""
        return self._external is not None

    @property
    def endpoint(self) -> str:
        """Client endpoint as ``"127.0.0.1:<port>"`` (what fastetcd clients take)."""
        return self._endpoint

    @property
    def endpoints(self) -> list[str]:
        """``[self.endpoint]`` (uniform with :class:`EtcdCluster`)."""
        return [self._endpoint]

    @property
    def url(self) -> str:
        """Client URL as ``"http://127.0.0.1:<port>"`` (``https://`` with ``tls``)."""
        return self._url

    @property
    def peer_port(self) -> int:
        """The raft peer port. Raises :class:`ExternalEtcdError` for external servers."""
        if self._peer_port is None:
            raise ExternalEtcdError(f"the peer port of external etcd {self._endpoint} is unknown")
        return self._peer_port

    @property
    def peer_url(self) -> str:
        """The raft peer URL ``"http://127.0.0.1:<peer port>"``."""
        return f"http://{self.host}:{self.peer_port}"

    @property
    def binary(self) -> str:
        """Path of the etcd binary (etcdctl/etcdutl are looked up beside it)."""
        if self._binary is None:
            self._binary = find_etcd_binary("etcd")
        return self._binary

    @property
    def data_dir(self) -> str:
        """The etcd data directory (created on first :meth:`start`)."""
        if self._data_dir is None:
            raise RuntimeError(f"{self!r} has no data dir (not started, or external)")
        return self._data_dir

    @property
    def log(self) -> str:
        """Path of the file etcd's stdout and stderr go to."""
        if self._log_path is None:
            raise RuntimeError(f"{self!r} has no log file (not started, or external)")
        return self._log_path

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The etcd ``Popen`` object (None when stopped or killed, and for external servers)."""
        return self._proc

    @property
    def pid(self) -> int | None:
        """PID of the running etcd process, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        """True while the etcd process is alive (always True for an external server)."""
        if self._external is not None:
            return True
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        kind = "external" if self.external else f"pid={self.pid}"
        return f"<{type(self).__name__} {self.name!r} {self._endpoint} {kind}>"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start etcd (if not running) and wait until it is healthy; return ``self``.

        Retries with new ports if etcd loses the free-port race ("address already in
        use"; only when the ports were picked automatically and etcd never ran
        on them). Raises :class:`EtcdStartError`, including the tail of etcd's log,
        if etcd exits early or is not healthy within ``startup_timeout`` seconds.
        """
        if self._external is not None:
            self.wait_healthy()
            return self
        if self.is_running:
            return self
        fresh = self._prepare_dirs()
        try:
            self._start_process(reallocate=fresh and self._auto_ports)
        except BaseException:
            if fresh:
                self._remove_workdir()
            raise
        return self

    def stop(self) -> None:
        """Stop etcd (SIGTERM, SIGKILL after ``stop_timeout``), reap it, remove temp dirs.

        Idempotent. A data dir passed in by the caller is kept.
        """
        self._ensure_owned("stop")
        self._terminate(graceful=True)
        self._remove_workdir()

    def kill(self) -> None:
        """SIGKILL etcd (a crash) and reap it; the data dir is kept for :meth:`start`."""
        self._ensure_owned("kill")
        self._terminate(graceful=False)

    def restart(self) -> Self:
        """Stop etcd gracefully and start it again with the same ports and data dir."""
        self._ensure_owned("restart")
        self._terminate(graceful=True)
        self._prepare_dirs()
        self._start_process(reallocate=False)
        return self

    def close(self) -> None:
        """Release the server: :meth:`stop` it if owned, do nothing if external."""
        if self._external is None:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def is_healthy(self, timeout: float = 1.0) -> bool:
        """One ``/health`` probe: True when etcd answers ``{"health": "true"}``."""
        return probe_health(
            self.host, self.client_port, timeout=timeout, ssl_context=self._probe_context
        )

    @property
    def version(self) -> tuple[int, int, int]:
        """``(major, minor, patch)`` of :attr:`binary` (``etcd --version``, run once per binary).

        For an external server this is the local binary's version, not the server's: ask
        the running etcd with :meth:`server_version`.
        """
        return etcd_version(self.binary)

    def server_version(self, timeout: float = 5.0) -> tuple[int, int, int]:
        """``(major, minor, patch)`` the running etcd reports on ``/version`` (works for
        external servers too). Raises :class:`EtcdTestingError` if it does not answer."""
        return fetch_server_version(
            self.host, self.client_port, timeout=timeout, ssl_context=self._probe_context
        )

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Poll ``/health`` until healthy; raise :class:`EtcdStartError` after ``timeout``."""
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        self._wait_ready(deadline)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of etcd's log ("" if there is none)."""
        if self._log_path is None:
            return ""
        return read_log_tail(self._log_path, 0, max_bytes=200 * lines, max_lines=lines)

    # ----------------------------------------------------------------- internals

    def _ensure_owned(self, what: str) -> None:
        if self._external is not None:
            raise ExternalEtcdError(
                f"cannot {what}() the external etcd at {self._endpoint} "
                f"({ENV_TEST_ENDPOINT} is set): the tests did not start it"
            )

    def _initial_cluster_args(self) -> list[str]:
        return [
            f"--initial-cluster={self.name}={self.peer_url}",
            f"--initial-cluster-token={self._token}",
            "--initial-cluster-state=new",
        ]

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            *self._initial_cluster_args(),
            *(self.tls.etcd_args() if self.tls is not None else ()),
            *self.extra_args,
        ]

    def _prepare_dirs(self) -> bool:
        """Make sure data dir and log path exist; True if a new temp dir was created."""
        created = False
        if self._data_dir is None or self._log_path is None:
            if self._workdir is None:
                self._workdir = make_temp_dir(self.name)
                created = True
            if self._data_dir is None:
                self._data_dir = os.path.join(self._workdir, "data")
            if self._log_path is None:
                self._log_path = os.path.join(self._workdir, "etcd.log")
        return created

    def _set_paths(self, data_dir: str, log_path: str) -> None:
        self._user_data_dir = self._data_dir = data_dir
        self._user_log_path = self._log_path = log_path

    def _remove_workdir(self) -> None:
        if self._workdir is not None:
            untrack_dir(self._workdir, remove=True)
            self._workdir = None
        self._data_dir = self._user_data_dir
        self._log_path = self._user_log_path

    def _launch(self) -> None:
        """Spawn etcd without waiting for it (the cluster starts members in parallel)."""
        self._terminate(graceful=False)  # reap a previous process that died on its own
        cmd = self._command()
        log_path = self.log
        with open(log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- fastetcd.testing {stamp}: {shlex.join(cmd)}\n".encode())
            self._log_offset = log.tell()
        self._proc = spawn(cmd, log_path, child_env())

    def _wait_ready(self, deadline: float) -> None:
        delay = 0.02
        while True:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                raise self._exit_error(proc.returncode)
            remaining = deadline - time.monotonic()
            if self.is_healthy(timeout=max(0.2, min(1.0, remaining))):
                return
            if time.monotonic() >= deadline:
                if self._external is not None:
                    raise EtcdStartError(
                        f"external etcd at {self._url} ({ENV_TEST_ENDPOINT}) is not healthy"
                    )
                raise EtcdStartError(
                    f"etcd {self.name!r} on {self._endpoint} did not become healthy "
                    f"within {self.startup_timeout:g}s (log: {self._log_path})",
                    self._start_log_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _start_log_tail(self) -> str:
        if self._log_path is None:
            return ""
        return read_log_tail(self._log_path, self._log_offset)

    def _exit_error(self, returncode: int | None) -> EtcdStartError:
        tail = self._start_log_tail()
        self._reap()
        msg = (
            f"etcd {self.name!r} exited with status {returncode} during startup "
            f"(client {self._endpoint}, peer {self.peer_url}, log: {self._log_path})"
        )
        if _ADDR_IN_USE in tail:
            return _AddressInUseError(msg, tail)
        return EtcdStartError(msg, tail)

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, 0, graceful=False)

    def _terminate(self, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, self.stop_timeout, graceful=graceful)

    def _start_process(self, reallocate: bool) -> None:
        deadline = time.monotonic() + self.startup_timeout
        for attempt in range(_PORT_RETRIES):
            self._launch()
            try:
                self._wait_ready(deadline)
                return
            except _AddressInUseError:
                self._terminate(graceful=False)
                if attempt == _PORT_RETRIES - 1 or time.monotonic() >= deadline:
                    raise
                if reallocate:
                    self._reallocate_ports()
                else:
                    time.sleep(0.25 * (attempt + 1))
            except BaseException:
                self._terminate(graceful=False)
                raise

    def _reallocate_ports(self) -> None:
        self.client_port, self._peer_port = free_ports(2)
        self._endpoint = f"{self.host}:{self.client_port}"
        self._url = f"{self._scheme}://{self._endpoint}"
