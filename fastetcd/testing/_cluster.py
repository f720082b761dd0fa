"""``EtcdCluster``: n real etcd members on loopback, with leader control via etcdctl."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._binaries import etcdctl, find_etcd_binary, run_etcdctl_raw, sibling_binary
from ._errors import EtcdStartError, NoLeaderError
from ._process import free_ports, make_temp_dir, untrack_dir
from ._server import EtcdServer, _AddressInUseError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["EtcdCluster", "EtcdMember"]

_PORT_RETRIES = 5
_STATUS_TIMEOUT = 3.0


class EtcdMember(EtcdServer):
    """One member of an :class:`EtcdCluster` (an :class:`EtcdServer` subclass).

    Its data dir and log live in the cluster's temp dir, so :meth:`stop` keeps the
    data (the member can :meth:`start` again and rejoin); the cluster removes
    everything in :meth:`EtcdCluster.stop` / :meth:`EtcdCluster.close`.
    """

    def __init__(
        self,
        cluster: EtcdCluster,
        index: int,
        client_port: int,
        peer_port: int,
        extra_args: Sequence[str],
        binary: str,
        startup_timeout: float,
        stop_timeout: float,
    ) -> None:
        super().__init__(
            extra_args,
            name=f"m{index}",
            binary=binary,
            client_port=client_port,
            peer_port=peer_port,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
            use_env_endpoint=False,
        )
        self.index = index
        """Position of this member in :attr:`EtcdCluster.members`."""
        self._cluster = cluster

    def _initial_cluster_args(self) -> list[str]:
        return [
            f"--initial-cluster={self._cluster.initial_cluster}",
            f"--initial-cluster-token={self._cluster.token}",
            "--initial-cluster-state=new",
        ]

    def _set_ports(self, client_port: int, peer_port: int) -> None:
        self.client_port, self._peer_port = client_port, peer_port
        self._endpoint = f"{self.host}:{client_port}"
        self._url = f"http://{self._endpoint}"


class EtcdCluster:
    """``n`` real etcd members (separate processes) on 127.0.0.1 forming one cluster.

    Members are named ``m0``..``m<n-1>``, listen on free loopback ports and bootstrap
    with ``--initial-cluster``. :meth:`start` (no argument) launches all of them and
    waits until every member is healthy; ``start(i)``, ``stop(i)``, ``kill(i)`` and
    ``restart(i)`` control single members (their data is kept). :meth:`leader`,
    :meth:`wait_for_leader` and :meth:`move_leader` use the ``etcdctl`` beside the etcd
    binary, so they do not depend on fastetcd's client. ``FASTETCD_TEST_ENDPOINT`` is
    ignored: a cluster always runs its own processes. Usable as a context manager.
    """

    def __init__(
        self,
        n: int = 3,
        extra_args: Sequence[str] = (),
        *,
        binary: str | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one member")
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of strings, not a string")
        self.binary: str = binary if binary is not None else find_etcd_binary("etcd")
        """Path of the etcd binary (etcdctl is the one beside it)."""
        self.token = "fastetcd-" + uuid.uuid4().hex[:16]
        """The ``--initial-cluster-token``, unique per cluster."""
        self.startup_timeout = startup_timeout
        """Seconds :meth:`start` waits for the members to become healthy."""
        self.stop_timeout = stop_timeout
        """Seconds a stopping member gets after SIGTERM before SIGKILL."""
        self._base: str | None = None
        self._ids: dict[int, int] = {}
        ports = free_ports(2 * n)
        self.members: list[EtcdMember] = [
            EtcdMember(
                self,
                i,
                ports[2 * i],
                ports[2 * i + 1],
                extra_args,
                self.binary,
                startup_timeout,
                stop_timeout,
            )
            for i in range(n)
        ]
        """The members, in index order."""

    # ----------------------------------------------------------------- properties

    @property
    def endpoints(self) -> list[str]:
        """Client endpoints (``"127.0.0.1:<port>"``) of all members, in index order."""
        return [m.endpoint for m in self.members]

    @property
    def running_endpoints(self) -> list[str]:
        """Client endpoints of the members whose process is currently alive."""
        return [m.endpoint for m in self.members if m.is_running]

    @property
    def urls(self) -> list[str]:
        """Client URLs (``"http://127.0.0.1:<port>"``) of all members."""
        return [m.url for m in self.members]

    @property
    def initial_cluster(self) -> str:
        """The ``--initial-cluster`` value: ``m0=http://127.0.0.1:<peer>,...``."""
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def etcdctl_binary(self) -> str:
        """Path of the etcdctl beside :attr:`binary`."""
        return sibling_binary(self.binary, "etcdctl")

    def __repr__(self) -> str:
        running = sum(m.is_running for m in self.members)
        return f"<EtcdCluster n={len(self.members)} running={running} {self.endpoints}>"

    # ----------------------------------------------------------------- lifecycle

    def start(self, i: int | None = None) -> Self:
        """Start member ``i`` (waiting until it is healthy), or the whole cluster.

        ``start()`` on a fresh cluster bootstraps all members in parallel and waits
        until every one is healthy (retrying on new ports if a port was taken
        meanwhile); on a running cluster it starts any stopped members. Returns self.
        """
        if i is not None:
            if self._base is None:
                raise RuntimeError("start() the whole cluster before starting single members")
            self.members[i].start()
            return self
        if self._base is None:
            self._bootstrap()
        else:
            for member in self.members:
                if not member.is_running:
                    member.start()
        return self

    def stop(self, i: int | None = None) -> None:
        """Stop member ``i`` gracefully (keeping its data), or, with no argument,
        kill all members and remove the cluster's temp dir. Idempotent."""
        if i is not None:
            self.members[i].stop()
            return
        # The data is discarded, so there is nothing a graceful shutdown would preserve;
        # SIGTERM-ing a whole cluster at once takes ~7 s (the leader tries to hand over
        # leadership to peers that are shutting down too), SIGKILL takes milliseconds.
        self._kill_all()
        if self._base is not None:
            untrack_dir(self._base, remove=True)
            self._base = None
        self._ids.clear()

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (a crash); its data is kept for :meth:`start`."""
        self.members[i].kill()

    def restart(self, i: int) -> None:
        """Gracefully restart member ``i`` on the same ports and data dir."""
        self.members[i].restart()

    def close(self) -> None:
        """Stop everything and remove all temp dirs (same as ``stop()``)."""
        self.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- leadership

    def member_id(self, i: int) -> int:
        """The raft member ID of member ``i`` (``etcdctl member list``, cached)."""
        if i not in self._ids:
            running = self.running_endpoints
            if not running:
                raise RuntimeError("no running member to ask for the member list")
            out = etcdctl(
                running,
                "member",
                "list",
                "-w",
                "json",
                binary=self.etcdctl_binary,
                timeout=_STATUS_TIMEOUT,
            )
            by_peer = {m.peer_url: m.index for m in self.members}
            for info in json.loads(out).get("members", []):
                for url in info.get("peerURLs") or []:
                    if url in by_peer:
                        self._ids[by_peer[url]] = int(info["ID"])
        if i not in self._ids:
            raise RuntimeError(f"member {i} is not in the cluster's member list")
        return self._ids[i]

    def _statuses(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index, status)`` of each running member answering ``endpoint status``."""
        running = [m for m in self.members if m.is_running]
        if not running:
            return []
        _, out, _ = run_etcdctl_raw(
            self.etcdctl_binary,
            [m.endpoint for m in running],
            ["endpoint", "status", "-w", "json"],
            timeout=_STATUS_TIMEOUT,
        )
        try:
            data = json.loads(out)
        except ValueError:
            return []
        by_endpoint = {m.endpoint: m.index for m in running}
        result: list[tuple[int, dict[str, Any]]] = []
        for item in data if isinstance(data, list) else []:
            index = by_endpoint.get(item.get("Endpoint"))
            status = item.get("Status")
            if index is None or not isinstance(status, dict):
                continue
            self._ids[index] = int(status["header"]["member_id"])
            result.append((index, status))
        return result

    @staticmethod
    def _self_leader(statuses: list[tuple[int, dict[str, Any]]]) -> tuple[int, int] | None:
        """``(term, index)`` of the member reporting itself leader with the highest term."""
        leaders = [
            (int(st.get("raftTerm", 0)), index)
            for index, st in statuses
            if st.get("leader") and st.get("leader") == st["header"]["member_id"]
        ]
        return max(leaders) if leaders else None

    def leader(self) -> int:
        """Index of the current leader: the running member that reports itself leader.

        Raises :class:`NoLeaderError` if none does (e.g. during an election).
        """
        statuses = self._statuses()
        found = self._self_leader(statuses)
        if found is None:
            raise NoLeaderError(f"no running member reports itself leader: {statuses!r}")
        return found[1]

    def wait_for_leader(self, timeout: float = 30.0) -> int:
        """Wait until a running member is leader and every answering member agrees.

        Returns the leader's index; raises :class:`TimeoutError` after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        statuses: list[tuple[int, dict[str, Any]]] = []
        while True:
            statuses = self._statuses()
            found = self._self_leader(statuses)
            if found is not None:
                leader_id = self._ids[found[1]]
                if all(st.get("leader") == leader_id for _, st in statuses):
                    return found[1]
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no agreed leader among {self.running_endpoints} within {timeout:g}s; "
                    f"last statuses: {statuses!r}"
                )
            time.sleep(0.1)

    def move_leader(self, to: int, timeout: float = 30.0) -> None:
        """Transfer leadership to member ``to`` (``etcdctl move-leader``) and wait for it."""
        if not self.members[to].is_running:
            raise ValueError(f"member {to} is not running")
        deadline = time.monotonic() + timeout
        if self.wait_for_leader(timeout) == to:
            return
        target = self.member_id(to)
        etcdctl(
            self.running_endpoints,
            "move-leader",
            format(target, "x"),
            binary=self.etcdctl_binary,
            timeout=max(1.0, deadline - time.monotonic()),
        )
        while True:
            current = self.wait_for_leader(max(0.1, deadline - time.monotonic()))
            if current == to:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"leader is still member {current}, not {to}")
            time.sleep(0.1)

    # ----------------------------------------------------------------- internals

    def _bootstrap(self) -> None:
        self._base = make_temp_dir("cluster")
        for m in self.members:
            m._set_paths(
                os.path.join(self._base, m.name, "data"), os.path.join(self._base, f"{m.name}.log")
            )
            os.makedirs(os.path.join(self._base, m.name), exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        try:
            for attempt in range(_PORT_RETRIES):
                for m in self.members:
                    shutil.rmtree(m.data_dir, ignore_errors=True)
                    m._launch()
                try:
                    self._wait_all_ready(deadline)
                    return
                except _AddressInUseError:
                    self._kill_all()
                    if attempt == _PORT_RETRIES - 1 or time.monotonic() >= deadline:
                        raise
                    ports = free_ports(2 * len(self.members))
                    for m in self.members:
                        m._set_ports(ports[2 * m.index], ports[2 * m.index + 1])
        except BaseException:
            self._kill_all()
            untrack_dir(self._base, remove=True)
            self._base = None
            raise

    def _wait_all_ready(self, deadline: float) -> None:
        pending = list(self.members)
        delay = 0.02
        while pending:
            for m in list(pending):
                proc = m.process
                if proc is not None and proc.poll() is not None:
                    raise m._exit_error(proc.returncode)
                if m.is_healthy(timeout=0.5):
                    pending.remove(m)
            if not pending:
                return
            if time.monotonic() >= deadline:
                tails = "\n".join(f"[{m.name}]\n{m._start_log_tail()}" for m in pending)
                raise EtcdStartError(
                    f"cluster members {[m.name for m in pending]} did not become healthy "
                    f"within {self.startup_timeout:g}s (logs in {self._base})",
                    tails,
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _kill_all(self) -> None:
        for m in self.members:
            m._terminate(graceful=False)
