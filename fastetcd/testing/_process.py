"""Process plumbing: free ports, health probes, spawning, reaping, exit-time cleanup.

Every etcd child is

* started in its own session (``start_new_session``), so a Ctrl-C aimed at the test
  run does not hit etcd before the harness can stop it cleanly, and the whole process
  group can be signalled;
* on Linux, armed with ``PR_SET_PDEATHSIG(SIGKILL)`` so it dies with the Python
  process even if that is SIGKILLed (a crashed or cancelled test run never leaves
  etcd running); children are forked by the main thread or by a process-long
  "spawner" thread, because the signal fires when the forking *thread* ends;
* tracked in a registry that an ``atexit`` hook SIGKILLs and reaps (and whose temp
  directories it removes) when the interpreter exits without stopping them.

Temp directories (an etcd data dir holds >100 MB of preallocated WAL) carry an owner
marker; directories left behind by a process that was SIGKILLed are swept on Linux
the first time this module creates a new one (see :func:`sweep_stale_dirs`).
"""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

__all__ = [
    "LOOPBACK",
    "free_ports",
    "make_temp_dir",
    "probe_health",
    "read_log_tail",
    "signal_process",
    "spawn",
    "stop_process",
    "sweep_stale_dirs",
    "track_dir",
    "untrack_dir",
]

LOOPBACK = "127.0.0.1"
_SIGKILL: int = int(getattr(signal, "SIGKILL", signal.SIGTERM))

_lock = threading.Lock()
_procs: dict[int, subprocess.Popen[bytes]] = {}
_dirs: set[str] = set()
_recent_ports: collections.deque[int] = collections.deque(maxlen=512)


def _forget_after_fork() -> None:
    # A forked child must never kill or delete what its parent started.
    global _lock, _spawner
    _lock = threading.Lock()
    _spawner = _Spawner()
    _procs.clear()
    _dirs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _track(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _procs[proc.pid] = proc


def _untrack(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        if _procs.get(proc.pid) is proc:
            del _procs[proc.pid]


def track_dir(path: str) -> None:
    """Remove ``path`` at interpreter exit unless :func:`untrack_dir` is called first."""
    with _lock:
        _dirs.add(path)


def untrack_dir(path: str, remove: bool = True) -> None:
    """Stop tracking ``path`` (and remove it now if ``remove``)."""
    with _lock:
        _dirs.discard(path)
    if remove:
        shutil.rmtree(path, ignore_errors=True)


def _cleanup_at_exit() -> None:
    with _lock:
        procs = list(_procs.values())
        dirs = list(_dirs)
        _procs.clear()
        _dirs.clear()
    for proc in procs:
        signal_process(proc, _SIGKILL)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_cleanup_at_exit)


_TEMP_PREFIX = "fastetcd-"
_OWNER_FILE = ".fastetcd-owner"
_swept = False


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_start_time(pid: int) -> str | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _owner_identity(pid: int) -> dict[str, str | int | None]:
    try:
        pid_ns: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {
        "pid": pid,
        "start": _proc_start_time(pid),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
    }


def _is_stale(path: str) -> bool:
    raw = _read(os.path.join(path, _OWNER_FILE))
    if raw is None:
        return False
    try:
        owner = json.loads(raw)
        pid = int(owner["pid"])
    except (ValueError, KeyError, TypeError):
        return False
    me = _owner_identity(os.getpid())
    if owner.get("boot") is None or me["boot"] is None:
        return False
    if owner["boot"] != me["boot"]:
        return True  # written before the last reboot: nothing can be using it
    if owner.get("pid_ns") != me["pid_ns"]:
        return False  # another PID namespace shares this /tmp: cannot judge
    start = _proc_start_time(pid)
    return start is None or start != owner.get("start")


def sweep_stale_dirs(base: str | None = None) -> list[str]:
    """Remove ``fastetcd-*`` temp dirs whose creating process is gone (Linux only).

    Only directories carrying this module's owner marker are considered, and only
    when the owner provably died (its PID is gone or was reused, or the machine
    rebooted since) and no process has the path on its command line. This catches
    dirs left by test runs that were SIGKILLed. Returns the removed paths.
    """
    if not os.path.isdir("/proc/self"):
        return []
    base = base or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(_TEMP_PREFIX)]
    except OSError:
        return []
    uid = os.getuid()
    stale = []
    for name in names:
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_uid != uid or not os.path.isdir(path):
                continue
        except OSError:
            continue
        if _is_stale(path):
            stale.append(path)
    if not stale:
        return []
    in_use = _paths_in_use(stale)
    removed = []
    for path in stale:
        if path not in in_use:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _paths_in_use(paths: list[str]) -> set[str]:
    used: set[str] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return set(paths)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        used.update(p for p in paths if p in cmdline)
    return used


def make_temp_dir(kind: str) -> str:
    """Create a tracked ``fastetcd-<kind>-*`` temp dir with an owner marker.

    The first call in a process also sweeps stale dirs of dead processes.
    """
    global _swept
    if not _swept:
        _swept = True
        try:
            sweep_stale_dirs()
        except Exception:  # sweeping is best effort and must never break a test
            pass
    kind = re.sub(r"[^A-Za-z0-9_.-]+", "_", kind)[:40] or "etcd"
    path = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{kind}-")
    track_dir(path)
    try:
        with open(os.path.join(path, _OWNER_FILE), "w") as f:
            json.dump(_owner_identity(os.getpid()), f)
    except OSError:
        pass
    return path


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """Return ``n`` distinct currently-free TCP ports on ``host`` (bind to port 0).

    Ports handed out recently by this process are skipped, so two servers created
    back to back never get the same port. The ports are released before returning;
    callers must cope with losing the race (etcd then fails with "address already in
    use" and the harness retries).
    """
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        attempts = 0
        while len(ports) < n:
            attempts += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            with _lock:
                fresh = port not in _recent_ports and port not in ports
            if fresh or attempts > 50 * n:
                ports.append(port)
    finally:
        for sock in socks:
            sock.close()
    with _lock:
        _recent_ports.extend(ports)
    return ports


def probe_health(
    host: str, port: int, timeout: float = 1.0, ssl_context: ssl.SSLContext | None = None
) -> bool:
    """True when ``GET http://host:port/health`` answers ``{"health": "true"}``; with
    ``ssl_context``, ``GET https://host:port/health`` over TLS.

    Uses :mod:`http.client` directly, so no HTTP proxy is ever involved.
    """
    conn = (
        http.client.HTTPConnection(host, port, timeout=timeout)
        if ssl_context is None
        else http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    )
    try:
        conn.request("GET", "/health", headers={"Connection": "close"})
        body = conn.getresponse().read()
        data = json.loads(body.decode("utf-8", "replace"))
        return isinstance(data, dict) and data.get("health") in ("true", True)
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


def read_log_tail(path: str, offset: int = 0, max_bytes: int = 8192, max_lines: int = 40) -> str:
    """The last ``max_lines`` lines (at most ``max_bytes``) of ``path`` after ``offset``."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(offset, size - max_bytes, 0)
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    if start > offset and lines:
        lines = lines[1:]  # first line is probably cut
    return "\n".join(lines[-max_lines:])


_setpriv_prefix: list[str] | None = None


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` (util-linux) to put in front of a command, or [].

    It arms PR_SET_PDEATHSIG(SIGKILL) in the child, so etcd dies with the thread that
    started it. This used to be a ``preexec_fn`` calling prctl through ctypes, but running
    Python code between fork and exec is not safe in a process with other threads: with a
    gRPC client busy in the same process, about one child in five crashed (SIGSEGV or
    SIGABRT) before exec, e.g. a restarted cluster member "exited with status -11 during
    startup". With no preexec_fn, Popen can also use vfork. Off Linux, or without a
    setpriv that knows ``--pdeathsig``, nothing is armed (atexit still cleans up).
    """
    global _setpriv_prefix
    if _setpriv_prefix is None:
        prefix: list[str] = []
        path = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if path is not None:
            try:
                usage = subprocess.run(
                    [path, "--help"], capture_output=True, text=True, timeout=10, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                usage = ""
            if "--pdeathsig" in usage:
                prefix = [path, "--pdeathsig", "KILL", "--"]
        _setpriv_prefix = prefix
    return _setpriv_prefix


class _Spawner:
    """A daemon thread that lives as long as the process and forks children for others.

    The parent-death signal fires when the *thread* that forked the child exits, not
    the process. Children spawned from the main thread are fine (it lives as long as
    the process); spawning from a short-lived thread (``asyncio.to_thread``, a pool
    worker) would kill etcd when that thread ends, so such spawns are delegated here.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="fastetcd-spawner", daemon=True
                )
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._queue.put((fn, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            fn, future = self._queue.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)


_spawner = _Spawner()


def spawn(cmd: Sequence[str], log_path: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout+stderr appended to ``log_path``; track it for cleanup."""
    posix = os.name == "posix"
    argv = [*_pdeathsig_prefix(), *cmd]

    def popen() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                close_fds=True,
                start_new_session=posix,
            )

    linux = sys.platform.startswith("linux")
    if linux and threading.current_thread() is not threading.main_thread():
        proc = _spawner.run(popen)
    else:
        proc = popen()
    _track(proc)
    return proc


def signal_process(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to ``proc``'s process group (POSIX) if it is still running."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        elif sig == _SIGKILL:
            proc.kill()
        else:
            proc.terminate()
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen[bytes], timeout: float, graceful: bool = True) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout`` s, then SIGKILL; always reap it."""
    try:
        if graceful and proc.poll() is None:
            signal_process(proc, int(signal.SIGTERM))
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            signal_process(proc, _SIGKILL)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is not None:
            _untrack(proc)
