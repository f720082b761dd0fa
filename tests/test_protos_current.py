"""The committed protobuf modules in ``fastetcd/_pb`` match ``protos/`` and etcd's API.

(a) Regenerating with ``scripts/gen_protos.py`` gives the same descriptors as the
    committed modules (descriptor content is compared, not file text, so another
    protoc version does not make this fail).
(b) The hot messages have exactly the field numbers and types of etcd's published
    API; the table below was written from etcd's own rpc.proto / kv.proto, so a
    typo in our .proto files fails here.
(c) Every service has exactly the expected methods, types and streaming flags.

No etcd server is needed.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2, text_format

ROOT = Path(__file__).resolve().parent.parent
PB_DIR = ROOT / "fastetcd" / "_pb"
GEN_SCRIPT = ROOT / "scripts" / "gen_protos.py"

MODULES = ("kv_pb2", "auth_pb2", "rpc_pb2", "v3lock_pb2", "v3election_pb2")


def _import(name: str) -> ModuleType:
    return importlib.import_module(f"fastetcd._pb.{name}")


def _normalize(fdp: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Drop what protoc versions may fill in differently without changing meaning."""

    def strip(msg: descriptor_pb2.DescriptorProto) -> None:
        for field in msg.field:
            field.ClearField("json_name")  # derived from the field name
        for nested in msg.nested_type:
            strip(nested)

    fdp.ClearField("source_code_info")
    for msg in fdp.message_type:
        strip(msg)
    return fdp


def _fdp_of_module(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.ParseFromString(module.DESCRIPTOR.serialized_pb)
    return _normalize(fdp)


def _fdp_of_source(path: Path) -> descriptor_pb2.FileDescriptorProto:
    """The descriptor embedded in a generated ``_pb2.py``, read without importing it.

    Importing would register the same file names in the default descriptor pool a
    second time, which protobuf refuses.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(node.args[0].value)
            return _normalize(fdp)
    raise AssertionError(f"no AddSerializedFile(b'...') call found in {path}")


# ---------------------------------------------------------------------------
# (a) committed modules are current
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate")
    out = tmp_path_factory.mktemp("pb")
    proc = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"gen_protos.py failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_same_set_of_modules(regenerated: Path) -> None:
    fresh = sorted(p.name for p in regenerated.glob("*_pb2.py*"))
    committed = sorted(p.name for p in PB_DIR.glob("*_pb2.py*"))
    assert committed == fresh, "run: python3 scripts/gen_protos.py"
    assert sorted(p.stem for p in PB_DIR.glob("*_pb2.py")) == sorted(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_committed_descriptor_is_current(regenerated: Path, name: str) -> None:
    fresh = _fdp_of_source(regenerated / f"{name}.py")
    committed = _fdp_of_module(_import(name))
    if fresh != committed:
        diff = "\n".join(
            difflib.unified_diff(
                text_format.MessageToString(committed).splitlines(),
                text_format.MessageToString(fresh).splitlines(),
                "committed",
                "regenerated",
                lineterm="",
            )
        )
        pytest.fail(f"fastetcd/_pb/{name}.py is stale; run: python3 scripts/gen_protos.py\n{diff}")


@pytest.mark.parametrize("name", MODULES)
def test_cross_imports_are_relative(name: str) -> None:
    for suffix in (".py", ".pyi"):
        text = (PB_DIR / f"{name}{suffix}").read_text(encoding="utf-8")
        for other in MODULES:
            assert f"\nimport {other} " not in text, f"{name}{suffix}: absolute import of {other}"


# ---------------------------------------------------------------------------
# (b) wire facts, written from etcd's published .proto files
# ---------------------------------------------------------------------------

# field name -> (number, type). Type is a scalar name, a message full name, or
# "enum <full name>"; "repeated " in front for repeated fields.
WIRE: dict[str, dict[str, tuple[int, str]]] = {
    "mvccpb.KeyValue": {
        "key": (1, "bytes"),
        "create_revision": (2, "int64"),
        "mod_revision": (3, "int64"),
        "version": (4, "int64"),
        "value": (5, "bytes"),
        "lease": (6, "int64"),
    },
    "mvccpb.Event": {
        "type": (1, "enum mvccpb.Event.EventType"),
        "kv": (2, "mvccpb.KeyValue"),
        "prev_kv": (3, "mvccpb.KeyValue"),
    },
    "etcdserverpb.ResponseHeader": {
        "cluster_id": (1, "uint64"),
        "member_id": (2, "uint64"),
        "revision": (3, "int64"),
        "raft_term": (4, "uint64"),
    },
    "etcdserverpb.RangeRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "limit": (3, "int64"),
        "revision": (4, "int64"),
        "sort_order": (5, "enum etcdserverpb.RangeRequest.SortOrder"),
        "sort_target": (6, "enum etcdserverpb.RangeRequest.SortTarget"),
        "serializable": (7, "bool"),
        "keys_only": (8, "bool"),
        "count_only": (9, "bool"),
        "min_mod_revision": (10, "int64"),
        "max_mod_revision": (11, "int64"),
        "min_create_revision": (12, "int64"),
        "max_create_revision": (13, "int64"),
    },
    "etcdserverpb.RangeResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "kvs": (2, "repeated mvccpb.KeyValue"),
        "more": (3, "bool"),
        "count": (4, "int64"),
    },
    "etcdserverpb.PutRequest": {
        "key": (1, "bytes"),
        "value": (2, "bytes"),
        "lease": (3, "int64"),
        "prev_kv": (4, "bool"),
        "ignore_value": (5, "bool"),
        "ignore_lease": (6, "bool"),
    },
    "etcdserverpb.PutResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "prev_kv": (2, "mvccpb.KeyValue"),
    },
    "etcdserverpb.DeleteRangeRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "prev_kv": (3, "bool"),
    },
    "etcdserverpb.DeleteRangeResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "deleted": (2, "int64"),
        "prev_kvs": (3, "repeated mvccpb.KeyValue"),
    },
    "etcdserverpb.RequestOp": {
        "request_range": (1, "etcdserverpb.RangeRequest"),
        "request_put": (2, "etcdserverpb.PutRequest"),
        "request_delete_range": (3, "etcdserverpb.DeleteRangeRequest"),
        "request_txn": (4, "etcdserverpb.TxnRequest"),
    },
    "etcdserverpb.ResponseOp": {
        "response_range": (1, "etcdserverpb.RangeResponse"),
        "response_put": (2, "etcdserverpb.PutResponse"),
        "response_delete_range": (3, "etcdserverpb.DeleteRangeResponse"),
        "response_txn": (4, "etcdserverpb.TxnResponse"),
    },
    "etcdserverpb.Compare": {
        "result": (1, "enum etcdserverpb.Compare.CompareResult"),
        "target": (2, "enum etcdserverpb.Compare.CompareTarget"),
        "key": (3, "bytes"),
        "version": (4, "int64"),
        "create_revision": (5, "int64"),
        "mod_revision": (6, "int64"),
        "value": (7, "bytes"),
        "lease": (8, "int64"),
        "range_end": (64, "bytes"),
    },
    "etcdserverpb.TxnRequest": {
        "compare": (1, "repeated etcdserverpb.Compare"),
        "success": (2, "repeated etcdserverpb.RequestOp"),
        "failure": (3, "repeated etcdserverpb.RequestOp"),
    },
    "etcdserverpb.TxnResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "succeeded": (2, "bool"),
        "responses": (3, "repeated etcdserverpb.ResponseOp"),
    },
    "etcdserverpb.CompactionRequest": {
        "revision": (1, "int64"),
        "physical": (2, "bool"),
    },
    "etcdserverpb.CompactionResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
    },
    "etcdserverpb.WatchRequest": {
        "create_request": (1, "etcdserverpb.WatchCreateRequest"),
        "cancel_request": (2, "etcdserverpb.WatchCancelRequest"),
        "progress_request": (3, "etcdserverpb.WatchProgressRequest"),
    },
    "etcdserverpb.WatchCreateRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "start_revision": (3, "int64"),
        "progress_notify": (4, "bool"),
        "filters": (5, "repeated enum etcdserverpb.WatchCreateRequest.FilterType"),
        "prev_kv": (6, "bool"),
        "watch_id": (7, "int64"),
        "fragment": (8, "bool"),
    },
    "etcdserverpb.WatchCancelRequest": {
        "watch_id": (1, "int64"),
    },
    "etcdserverpb.WatchProgressRequest": {},
    "etcdserverpb.WatchResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "watch_id": (2, "int64"),
        "created": (3, "bool"),
        "canceled": (4, "bool"),
        "compact_revision": (5, "int64"),
        "cancel_reason": (6, "string"),
        "fragment": (7, "bool"),
        "events": (11, "repeated mvccpb.Event"),
    },
    "etcdserverpb.LeaseGrantRequest": {
        "TTL": (1, "int64"),
        "ID": (2, "int64"),
    },
    "etcdserverpb.LeaseGrantResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
        "error": (4, "string"),
    },
    "etcdserverpb.LeaseKeepAliveRequest": {
        "ID": (1, "int64"),
    },
    "etcdserverpb.LeaseKeepAliveResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
    },
    "etcdserverpb.LeaseRevokeRequest": {
        "ID": (1, "int64"),
    },
    "etcdserverpb.LeaseTimeToLiveRequest": {
        "ID": (1, "int64"),
        "keys": (2, "bool"),
    },
    "etcdserverpb.LeaseTimeToLiveResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
        "grantedTTL": (4, "int64"),
        "keys": (5, "repeated bytes"),
    },
    "etcdserverpb.Member": {
        "ID": (1, "uint64"),
        "name": (2, "string"),
        "peerURLs": (3, "repeated string"),
        "clientURLs": (4, "repeated string"),
        "isLearner": (5, "bool"),
    },
    "etcdserverpb.MemberListRequest": {
        "linearizable": (1, "bool"),
    },
    "etcdserverpb.HashKVResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "hash": (2, "uint32"),
        "compact_revision": (3, "int64"),
        "hash_revision": (4, "int64"),  # 3.6 addition
    },
    "etcdserverpb.StatusResponse": {
        "header": (1, "etcdserverpb.ResponseHeader"),
        "version": (2, "string"),
        "dbSize": (3, "int64"),
        "leader": (4, "uint64"),
        "raftIndex": (5, "uint64"),
        "raftTerm": (6, "uint64"),
        "raftAppliedIndex": (7, "uint64"),
        "errors": (8, "repeated string"),
        "dbSizeInUse": (9, "int64"),
        "isLearner": (10, "bool"),
        # 3.6 additions
        "storageVersion": (11, "string"),
        "dbSizeQuota": (12, "int64"),
        "downgradeInfo": (13, "etcdserverpb.DowngradeInfo"),
    },
}

# message -> {oneof name: member fields}; messages not listed have no oneof.
ONEOFS: dict[str, dict[str, set[str]]] = {
    "etcdserverpb.RequestOp": {
        "request": {"request_range", "request_put", "request_delete_range", "request_txn"},
    },
    "etcdserverpb.ResponseOp": {
        "response": {"response_range", "response_put", "response_delete_range", "response_txn"},
    },
    "etcdserverpb.Compare": {
        "target_union": {"version", "create_revision", "mod_revision", "value", "lease"},
    },
    "etcdserverpb.WatchRequest": {
        "request_union": {"create_request", "cancel_request", "progress_request"},
    },
}

ENUMS: dict[str, dict[str, int]] = {
    "mvccpb.Event.EventType": {"PUT": 0, "DELETE": 1},
    "etcdserverpb.RangeRequest.SortOrder": {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    "etcdserverpb.RangeRequest.SortTarget": {
        "KEY": 0,
        "VERSION": 1,
        "CREATE": 2,
        "MOD": 3,
        "VALUE": 4,
    },
    "etcdserverpb.Compare.CompareResult": {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3},
    "etcdserverpb.Compare.CompareTarget": {
        "VERSION": 0,
        "CREATE": 1,
        "MOD": 2,
        "VALUE": 3,
        "LEASE": 4,
    },
    "etcdserverpb.WatchCreateRequest.FilterType": {"NOPUT": 0, "NODELETE": 1},
    "etcdserverpb.AlarmType": {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2},
    "etcdserverpb.AlarmRequest.AlarmAction": {"GET": 0, "ACTIVATE": 1, "DEACTIVATE": 2},
    "etcdserverpb.DowngradeRequest.DowngradeAction": {"VALIDATE": 0, "ENABLE": 1, "CANCEL": 2},
    "authpb.Permission.Type": {"READ": 0, "WRITE": 1, "READWRITE": 2},
}

_SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
}


def _index() -> tuple[
    dict[str, descriptor_pb2.DescriptorProto], dict[str, descriptor_pb2.EnumDescriptorProto]
]:
    """Every message and enum of the generated files, by full name (from the descriptors)."""
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}

    def walk(msg: descriptor_pb2.DescriptorProto, prefix: str) -> None:
        full = f"{prefix}.{msg.name}"
        messages[full] = msg
        for enum in msg.enum_type:
            enums[f"{full}.{enum.name}"] = enum
        for nested in msg.nested_type:
            walk(nested, full)

    for name in MODULES:
        fdp = _fdp_of_module(_import(name))
        for msg in fdp.message_type:
            walk(msg, fdp.package)
        for enum in fdp.enum_type:
            enums[f"{fdp.package}.{enum.name}"] = enum
    return messages, enums


MESSAGES, ENUM_DESCRIPTORS = _index()


def _type_of(field: descriptor_pb2.FieldDescriptorProto) -> str:
    kind: str
    if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE:
        kind = field.type_name.lstrip(".")
    elif field.type == descriptor_pb2.FieldDescriptorProto.TYPE_ENUM:
        kind = "enum " + field.type_name.lstrip(".")
    else:
        kind = _SCALARS.get(field.type, f"type#{field.type}")
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        kind = "repeated " + kind
    return kind


@pytest.mark.parametrize("message", sorted(WIRE))
def test_wire_fields(message: str) -> None:
    assert message in MESSAGES, f"{message} is missing"
    actual = {f.name: (f.number, _type_of(f)) for f in MESSAGES[message].field}
    assert actual == WIRE[message]


@pytest.mark.parametrize("message", sorted(WIRE))
def test_wire_oneofs(message: str) -> None:
    msg = MESSAGES[message]
    actual: dict[str, set[str]] = {o.name: set() for o in msg.oneof_decl}
    for f in msg.field:
        if f.HasField("oneof_index"):
            actual[msg.oneof_decl[f.oneof_index].name].add(f.name)
    assert actual == ONEOFS.get(message, {})


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_enum_values(enum: str) -> None:
    assert enum in ENUM_DESCRIPTORS, f"{enum} is missing"
    actual = {v.name: v.number for v in ENUM_DESCRIPTORS[enum].value}
    assert actual == ENUMS[enum]


def test_no_proto3_optional_or_required() -> None:
    """proto3 fields only: no presence-tracking 'optional', no proto2 'required'."""
    for name, msg in MESSAGES.items():
        for f in msg.field:
            assert not f.proto3_optional, f"{name}.{f.name}"
            assert f.label != descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED, f"{name}.{f.name}"


def test_round_trip_nested_txn() -> None:
    rpc = _import("rpc_pb2")
    inner = rpc.TxnRequest(
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=b"k", value=b"v"))]
    )
    outer = rpc.TxnRequest(
        compare=[rpc.Compare(key=b"k", target=rpc.Compare.MOD, mod_revision=5, range_end=b"l")],
        success=[rpc.RequestOp(request_txn=inner)],
    )
    wire = outer.SerializeToString()
    # Compare.range_end (field 64, length-delimited) encodes its tag as two bytes: 0x82 0x04.
    assert b"\x82\x04\x01l" in wire
    assert rpc.TxnRequest.FromString(wire) == outer


# ---------------------------------------------------------------------------
# (c) services: methods, message types, streaming flags
# ---------------------------------------------------------------------------

U, SS, BIDI = "unary", "server-stream", "bidi"

SERVICES: dict[str, dict[str, tuple[str, str, str]]] = {
    "etcdserverpb.KV": {
        "Range": ("RangeRequest", "RangeResponse", U),
        "Put": ("PutRequest", "PutResponse", U),
        "DeleteRange": ("DeleteRangeRequest", "DeleteRangeResponse", U),
        "Txn": ("TxnRequest", "TxnResponse", U),
        "Compact": ("CompactionRequest", "CompactionResponse", U),
    },
    "etcdserverpb.Watch": {
        "Watch": ("WatchRequest", "WatchResponse", BIDI),
    },
    "etcdserverpb.Lease": {
        "LeaseGrant": ("LeaseGrantRequest", "LeaseGrantResponse", U),
        "LeaseRevoke": ("LeaseRevokeRequest", "LeaseRevokeResponse", U),
        "LeaseKeepAlive": ("LeaseKeepAliveRequest", "LeaseKeepAliveResponse", BIDI),
        "LeaseTimeToLive": ("LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", U),
        "LeaseLeases": ("LeaseLeasesRequest", "LeaseLeasesResponse", U),
    },
    "etcdserverpb.Cluster": {
        "MemberAdd": ("MemberAddRequest", "MemberAddResponse", U),
        "MemberRemove": ("MemberRemoveRequest", "MemberRemoveResponse", U),
        "MemberUpdate": ("MemberUpdateRequest", "MemberUpdateResponse", U),
        "MemberList": ("MemberListRequest", "MemberListResponse", U),
        "MemberPromote": ("MemberPromoteRequest", "MemberPromoteResponse", U),
    },
    "etcdserverpb.Maintenance": {
        "Alarm": ("AlarmRequest", "AlarmResponse", U),
        "Status": ("StatusRequest", "StatusResponse", U),
        "Defragment": ("DefragmentRequest", "DefragmentResponse", U),
        "Hash": ("HashRequest", "HashResponse", U),
        "HashKV": ("HashKVRequest", "HashKVResponse", U),
        "Snapshot": ("SnapshotRequest", "SnapshotResponse", SS),
        "MoveLeader": ("MoveLeaderRequest", "MoveLeaderResponse", U),
        "Downgrade": ("DowngradeRequest", "DowngradeResponse", U),
    },
    "etcdserverpb.Auth": {
        "AuthEnable": ("AuthEnableRequest", "AuthEnableResponse", U),
        "AuthDisable": ("AuthDisableRequest", "AuthDisableResponse", U),
        "AuthStatus": ("AuthStatusRequest", "AuthStatusResponse", U),
        "Authenticate": ("AuthenticateRequest", "AuthenticateResponse", U),
        "UserAdd": ("AuthUserAddRequest", "AuthUserAddResponse", U),
        "UserGet": ("AuthUserGetRequest", "AuthUserGetResponse", U),
        "UserList": ("AuthUserListRequest", "AuthUserListResponse", U),
        "UserDelete": ("AuthUserDeleteRequest", "AuthUserDeleteResponse", U),
        "UserChangePassword": (
            "AuthUserChangePasswordRequest",
            "AuthUserChangePasswordResponse",
            U,
        ),
        "UserGrantRole": ("AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", U),
        "UserRevokeRole": ("AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse", U),
        "RoleAdd": ("AuthRoleAddRequest", "AuthRoleAddResponse", U),
        "RoleGet": ("AuthRoleGetRequest", "AuthRoleGetResponse", U),
        "RoleList": ("AuthRoleListRequest", "AuthRoleListResponse", U),
        "RoleDelete": ("AuthRoleDeleteRequest", "AuthRoleDeleteResponse", U),
        "RoleGrantPermission": (
            "AuthRoleGrantPermissionRequest",
            "AuthRoleGrantPermissionResponse",
            U,
        ),
        "RoleRevokePermission": (
            "AuthRoleRevokePermissionRequest",
            "AuthRoleRevokePermissionResponse",
            U,
        ),
    },
    "v3lockpb.Lock": {
        "Lock": ("LockRequest", "LockResponse", U),
        "Unlock": ("UnlockRequest", "UnlockResponse", U),
    },
    "v3electionpb.Election": {
        "Campaign": ("CampaignRequest", "CampaignResponse", U),
        "Proclaim": ("ProclaimRequest", "ProclaimResponse", U),
        "Leader": ("LeaderRequest", "LeaderResponse", U),
        "Observe": ("LeaderRequest", "LeaderResponse", SS),
        "Resign": ("ResignRequest", "ResignResponse", U),
    },
}


def _live_services() -> dict[str, dict[str, tuple[str, str, str]]]:
    found: dict[str, dict[str, tuple[str, str, str]]] = {}
    for name in MODULES:
        module = _import(name)
        for service in module.DESCRIPTOR.services_by_name.values():
            pkg = service.full_name.rsplit(".", 1)[0]
            methods = {}
            for m in service.methods:
                kind = {
                    (False, False): U,
                    (False, True): SS,
                    (True, True): BIDI,
                    (True, False): "client-stream",
                }[(m.client_streaming, m.server_streaming)]
                # Request/response types are named relative to the service's package.
                assert m.input_type.full_name.startswith(pkg + ".")
                assert m.output_type.full_name.startswith(pkg + ".")
                methods[m.name] = (m.input_type.name, m.output_type.name, kind)
            found[service.full_name] = methods
    return found


def test_every_module_imports() -> None:
    for name in MODULES:
        module = _import(name)
        assert module.DESCRIPTOR.name == name[: -len("_pb2")] + ".proto"


def test_service_set() -> None:
    assert sorted(_live_services()) == sorted(SERVICES)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_methods(service: str) -> None:
    assert _live_services()[service] == SERVICES[service]


def test_generated_modules_use_fastetcd_private_pool() -> None:
    """Our descriptors live in fastetcd's own pool, so registering etcd's file and message
    names again (as aetcd or python-etcd3 do in protobuf's default pool) cannot clash."""
    from google.protobuf import descriptor_pool

    from fastetcd import _pb
    from fastetcd._pb import kv_pb2, rpc_pb2

    assert rpc_pb2.DESCRIPTOR.pool is _pb.POOL
    assert kv_pb2.DESCRIPTOR.pool is _pb.POOL
    default = descriptor_pool.Default()
    try:
        found = default.FindFileByName("rpc.proto")
    except KeyError:
        found = None
    assert found is not rpc_pb2.DESCRIPTOR
