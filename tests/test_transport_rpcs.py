"""The kinds of RPC a transport carries beyond KV and Watch, against a real etcd, on each
transport under test and from both clients: unary calls of the Maintenance, Cluster, Lease
and Auth services, the server-streaming Snapshot (megabytes: many messages, many flow-control
windows), and the auth token sent as call metadata, with etcd's auth errors mapped to
``fastetcd.errors``. Requests are built and responses read with protobuf (the oracle): the
client's own codec is not part of this layer."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fastetcd
from fastetcd import errors
from fastetcd._pb import auth_pb2, rpc_pb2
from fastetcd.testing import EtcdServer

from .conftest import connected

STATUS = "/etcdserverpb.Maintenance/Status"
SNAPSHOT = "/etcdserverpb.Maintenance/Snapshot"
MEMBER_LIST = "/etcdserverpb.Cluster/MemberList"
LEASE_GRANT = "/etcdserverpb.Lease/LeaseGrant"
LEASE_TTL = "/etcdserverpb.Lease/LeaseTimeToLive"
LEASE_REVOKE = "/etcdserverpb.Lease/LeaseRevoke"
RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
AUTH = "/etcdserverpb.Auth/"


class Rpc:
    """A connected client's transport, called the same way whichever client it is: the
    blocking ``Client``'s directly, the ``AsyncClient``'s on a private loop."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.transport = client._transport
        self.loop = loop

    def _run(self, coro: Any) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def unary(self, method: str, request: Any, reply: Any, token: str | None = None) -> Any:
        """``reply`` (a protobuf class) parsed from ``method``'s answer to ``request``."""
        metadata = None if token is None else [("token", token)]
        data = request.SerializeToString()
        if self.loop is None:
            answer = self.transport.unary(method, data, 10.0, metadata)
        else:
            answer = self._run(self.transport.unary(method, data, 10.0, metadata))
        return reply.FromString(answer)

    def server_stream(self, method: str, request: Any) -> list[bytes]:
        """Every message ``method`` streams back to one ``request``, in order."""
        data = request.SerializeToString()
        if self.loop is None:
            stream = self.transport.stream(method)
            stream.send(data)
            stream.done_writing()
            return list(iter(stream.recv, None))

        async def drain() -> list[bytes]:
            stream = self.transport.stream(method)
            await stream.send(data)
            await stream.done_writing()
            messages = []
            while (message := await stream.recv()) is not None:
                messages.append(message)
            return messages

        return self._run(drain())  # type: ignore[no-any-return]


def _connect(endpoint: str, transport: str, kind: str) -> Iterator[Rpc]:
    for client, loop in connected(endpoint, transport, kind):
        yield Rpc(client, loop)


@pytest.fixture(params=["sync", "async"])
def rpc(request: pytest.FixtureRequest, etcd_server: Any, transport: str) -> Iterator[Rpc]:
    """The session etcd's transport, per transport under test, from each client."""
    yield from _connect(etcd_server.endpoint, transport, request.param)


def test_maintenance_status_and_cluster_member_list(rpc: Rpc, etcd_server: Any) -> None:
    status = rpc.unary(STATUS, rpc_pb2.StatusRequest(), rpc_pb2.StatusResponse)
    assert status.version.startswith("3.") and status.dbSize > 0
    assert status.leader == status.header.member_id  # a one-member cluster leads itself
    members = rpc.unary(MEMBER_LIST, rpc_pb2.MemberListRequest(), rpc_pb2.MemberListResponse)
    assert [m.ID for m in members.members] == [status.header.member_id]
    assert any(etcd_server.endpoint in url for url in members.members[0].clientURLs)


def test_lease_grant_time_to_live_revoke(rpc: Rpc) -> None:
    grant = rpc.unary(LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=60), rpc_pb2.LeaseGrantResponse)
    assert grant.ID > 0 and grant.TTL == 60 and not grant.error
    alive = rpc.unary(
        LEASE_TTL, rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID), rpc_pb2.LeaseTimeToLiveResponse
    )
    assert alive.ID == grant.ID and 0 < alive.TTL <= 60 and alive.grantedTTL == 60
    rpc.unary(LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=grant.ID), rpc_pb2.LeaseRevokeResponse)
    gone = rpc.unary(
        LEASE_TTL, rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID), rpc_pb2.LeaseTimeToLiveResponse
    )
    assert gone.TTL == -1  # etcd's answer for a lease that does not exist
    with pytest.raises(errors.LeaseNotFoundError):
        rpc.unary(
            LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=grant.ID), rpc_pb2.LeaseRevokeResponse
        )


def test_snapshot_streams_the_whole_database(rpc: Rpc, etcd_prefix: bytes) -> None:
    # ~3 MiB of values the snapshot must carry, each with a marker to find in it
    values = [
        (b"snapshot-%03d-" % i + etcd_prefix) * (48 * 1024 // (15 + len(etcd_prefix)))
        for i in range(64)
    ]
    for i, value in enumerate(values):
        rpc.unary(
            PUT,
            rpc_pb2.PutRequest(key=etcd_prefix + b"snap/%03d" % i, value=value),
            rpc_pb2.PutResponse,
        )
    size = rpc.unary(STATUS, rpc_pb2.StatusRequest(), rpc_pb2.StatusResponse).dbSize
    replies = [
        rpc_pb2.SnapshotResponse.FromString(m)
        for m in rpc.server_stream(SNAPSHOT, rpc_pb2.SnapshotRequest())
    ]
    assert len(replies) > 64  # etcd sends its database in 32 KiB pieces
    assert replies[-1].remaining_bytes == 0
    data = b"".join(r.blob for r in replies)
    # the database file, then its sha256: what etcdctl snapshot restore checks
    assert len(data) >= size + 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert all(value in data for value in values)


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdServer]:
    """An etcd of its own (auth is server-wide), with auth enabled: ``root`` (password
    ``rootpw``) and ``reader`` (``readerpw``), who may only read keys under ``/r/``."""
    with EtcdServer() as server:
        with fastetcd.Client(server.endpoint, transport="grpcio") as client:
            call: Callable[[str, Any, Any], Any] = lambda name, req, reply: reply.FromString(  # noqa: E731
                client._transport.unary(AUTH + name, req.SerializeToString(), 10.0)
            )
            call("RoleAdd", rpc_pb2.AuthRoleAddRequest(name="reads-r"), rpc_pb2.AuthRoleAddResponse)
            call(
                "RoleGrantPermission",
                rpc_pb2.AuthRoleGrantPermissionRequest(
                    name="reads-r",
                    perm=auth_pb2.Permission(
                        permType=auth_pb2.Permission.READ, key=b"/r/", range_end=b"/r0"
                    ),
                ),
                rpc_pb2.AuthRoleGrantPermissionResponse,
            )
            for user, password, role in (
                ("root", "rootpw", "root"),
                ("reader", "readerpw", "reads-r"),
            ):
                call(
                    "UserAdd",
                    rpc_pb2.AuthUserAddRequest(name=user, password=password),
                    rpc_pb2.AuthUserAddResponse,
                )
                call(
                    "UserGrantRole",
                    rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role),
                    rpc_pb2.AuthUserGrantRoleResponse,
                )
            call("AuthEnable", rpc_pb2.AuthEnableRequest(), rpc_pb2.AuthEnableResponse)
        yield server


@pytest.fixture(params=["sync", "async"])
def auth_rpc(
    request: pytest.FixtureRequest, auth_etcd: EtcdServer, transport: str
) -> Iterator[Rpc]:
    """``auth_etcd``'s transport, per transport under test, from each client."""
    yield from _connect(auth_etcd.endpoint, transport, request.param)


def _token(rpc: Rpc, user: str, password: str) -> str:
    reply = rpc.unary(
        AUTH + "Authenticate",
        rpc_pb2.AuthenticateRequest(name=user, password=password),
        rpc_pb2.AuthenticateResponse,
    )
    assert reply.token
    return reply.token  # type: ignore[no-any-return]


def test_auth_token_as_metadata_and_auth_errors(auth_rpc: Rpc) -> None:
    rpc = auth_rpc
    root, reader = _token(rpc, "root", "rootpw"), _token(rpc, "reader", "readerpw")
    put = rpc_pb2.PutRequest(key=b"/r/k", value=b"v")
    rev = rpc.unary(PUT, put, rpc_pb2.PutResponse, token=root).header.revision
    got = rpc.unary(RANGE, rpc_pb2.RangeRequest(key=b"/r/k"), rpc_pb2.RangeResponse, token=reader)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in got.kvs] == [(b"/r/k", b"v", rev)]
    with pytest.raises(errors.PermissionDeniedError):  # reader may read /r/, not write it
        rpc.unary(PUT, put, rpc_pb2.PutResponse, token=reader)
    with pytest.raises(errors.PermissionDeniedError):  # nor read elsewhere
        rpc.unary(RANGE, rpc_pb2.RangeRequest(key=b"/s/k"), rpc_pb2.RangeResponse, token=reader)
    with pytest.raises(errors.InvalidAuthTokenError):
        rpc.unary(RANGE, rpc_pb2.RangeRequest(key=b"/r/k"), rpc_pb2.RangeResponse, token="bogus")
    with pytest.raises(errors.AuthError):  # no token at all: etcd says the user name is empty
        rpc.unary(RANGE, rpc_pb2.RangeRequest(key=b"/r/k"), rpc_pb2.RangeResponse)
    with pytest.raises(errors.AuthFailedError):
        _token(rpc, "root", "wrong")
    users = rpc.unary(
        AUTH + "UserList", rpc_pb2.AuthUserListRequest(), rpc_pb2.AuthUserListResponse, token=root
    )
    assert sorted(users.users) == ["reader", "root"]
