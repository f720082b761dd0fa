"""KV operations end to end against a real etcd, through both clients (``kv`` fixture) and,
across CI's two runs, both codecs."""

from __future__ import annotations

import uuid

import pytest

import fastetcd
from fastetcd import SortOrder, SortTarget, errors
from fastetcd.testing import etcdctl


def keys(result: fastetcd.RangeResult) -> list[bytes]:
    return [kv.key for kv in result.kvs]


# ------------------------------------------------------------------------------ put / get


def test_put_get_roundtrip_bytes_and_str(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"k"
    put = kv.put(key, b"v1")
    assert put.header.revision > 0
    assert put.prev_kv is None
    got = kv.get(key)
    assert got == fastetcd.KeyValue(key, b"v1", put.header.revision, put.header.revision, 1, 0)
    kv.put(key.decode(), "vé")
    got2 = kv.get(key.decode())
    assert got2.value == "vé".encode()
    assert got2.version == 2
    assert got2.create_revision == put.header.revision
    assert got2.mod_revision > put.header.revision


def test_get_missing_returns_none(kv, etcd_prefix: bytes) -> None:
    assert kv.get(etcd_prefix + b"absent") is None


def test_binary_keys_and_values_byte_exact(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"\x00\xff\x80bin\xff"
    value = bytes(range(256)) * 4
    kv.put(key, value)
    assert kv.get(key).value == value
    kv.put(key, b"")
    empty = kv.get(key)
    assert empty is not None and empty.value == b"" and empty.version == 2


def test_header_fields(kv, etcd_prefix: bytes) -> None:
    header = kv.put(etcd_prefix + b"h", b"1").header
    assert header.cluster_id > 0 and header.member_id > 0
    assert header.raft_term >= 1 and header.revision >= 1
    assert kv.range(etcd_prefix + b"h").header.cluster_id == header.cluster_id


def test_get_at_revision_and_serializable(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"rev"
    first = kv.put(key, b"old").header.revision
    kv.put(key, b"new")
    assert kv.get(key, revision=first).value == b"old"
    assert kv.get(key).value == b"new"
    assert kv.get(key, serializable=True).value == b"new"
    with pytest.raises(errors.FutureRevisionError) as info:
        kv.get(key, revision=first + 10**9)
    assert info.value.code == errors.StatusCode.OUT_OF_RANGE


def test_put_prev_kv(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"pk"
    kv.put(key, b"a")
    result = kv.put(key, b"b", prev_kv=True)
    assert result.prev_kv is not None
    assert (result.prev_kv.key, result.prev_kv.value, result.prev_kv.version) == (key, b"a", 1)


def test_put_with_lease_and_ignore_lease(kv, etcd_server, etcd_prefix: bytes) -> None:
    out = etcdctl(etcd_server, "lease", "grant", "300")
    lease_id = int(out.split()[1], 16)  # "lease 694d7... granted with TTL(300s)"
    key = etcd_prefix + b"leased"
    kv.put(key, b"v", lease=lease_id)
    assert kv.get(key).lease == lease_id
    kv.put(key, b"w", ignore_lease=True)
    got = kv.get(key)
    assert (got.value, got.lease) == (b"w", lease_id)
    with pytest.raises(errors.LeaseProvidedError):
        kv.put(key, b"x", lease=lease_id, ignore_lease=True)
    with pytest.raises(errors.LeaseNotFoundError):
        kv.put(key, b"x", lease=lease_id + 12345)


def test_put_ignore_value(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"iv"
    with pytest.raises(errors.KeyNotFoundError):
        kv.put(key, b"", ignore_value=True)
    kv.put(key, b"keep")
    kv.put(key, b"", ignore_value=True)
    got = kv.get(key)
    assert (got.value, got.version) == (b"keep", 2)
    with pytest.raises(errors.ValueProvidedError):
        kv.put(key, b"other", ignore_value=True)


# ------------------------------------------------------------------------------ range


@pytest.fixture
def ten(kv, etcd_prefix: bytes) -> list[bytes]:
    """Ten keys p/0..p/9 with values in reverse order, written one by one."""
    ks = [etcd_prefix + b"r/%d" % i for i in range(10)]
    for i, key in enumerate(ks):
        kv.put(key, b"%d" % (9 - i))
    return ks


def test_range_end_prefix_limit_count_more(kv, ten: list[bytes], etcd_prefix: bytes) -> None:
    assert keys(kv.range(ten[2], ten[5])) == ten[2:5]
    result = kv.range(etcd_prefix + b"r/", prefix=True)
    assert keys(result) == ten and result.count == 10 and result.more is False
    limited = kv.range(etcd_prefix + b"r/", prefix=True, limit=3)
    assert keys(limited) == ten[:3] and limited.count == 10 and limited.more is True
    assert keys(kv.get_prefix(etcd_prefix + b"r/")) == ten
    assert keys(kv.get_prefix(etcd_prefix + b"r/", limit=2)) == ten[:2]


def test_range_sorting(kv, ten: list[bytes], etcd_prefix: bytes) -> None:
    prefix = etcd_prefix + b"r/"
    assert keys(kv.range(prefix, prefix=True, sort_order=SortOrder.DESCEND)) == ten[::-1]
    assert keys(kv.range(prefix, prefix=True, sort_order="ascend")) == ten
    by_value = kv.range(prefix, prefix=True, sort_target=SortTarget.VALUE, sort_order="ascend")
    assert keys(by_value) == ten[::-1]
    for target in (SortTarget.CREATE, SortTarget.MOD):
        assert (
            keys(kv.range(prefix, prefix=True, sort_target=target, sort_order="descend"))
            == ten[::-1]
        )
    kv.put(ten[4], b"again")
    by_version = kv.range(prefix, prefix=True, sort_target="version", sort_order="descend")
    assert by_version.kvs[0].key == ten[4]
    by_mod = kv.get_prefix(
        prefix, sort_target=SortTarget.MOD, sort_order=SortOrder.DESCEND, limit=1
    )
    assert keys(by_mod) == [ten[4]]
    with pytest.raises(errors.InvalidArgumentError):
        kv.range(prefix, prefix=True, sort_target="size")


def test_range_keys_only_count_only(kv, ten: list[bytes], etcd_prefix: bytes) -> None:
    only_keys = kv.range(etcd_prefix + b"r/", prefix=True, keys_only=True)
    assert keys(only_keys) == ten and all(item.value == b"" for item in only_keys.kvs)
    counted = kv.range(etcd_prefix + b"r/", prefix=True, count_only=True)
    assert counted.kvs == () and counted.count == 10


def test_range_revision_filters(kv, ten: list[bytes], etcd_prefix: bytes) -> None:
    prefix = etcd_prefix + b"r/"
    all_kvs = kv.get_prefix(prefix).kvs
    revs = [item.mod_revision for item in all_kvs]
    mid = revs[5]
    assert keys(kv.range(prefix, prefix=True, min_mod_revision=mid)) == ten[5:]
    assert keys(kv.range(prefix, prefix=True, max_mod_revision=mid)) == ten[:6]
    assert (
        keys(kv.range(prefix, prefix=True, min_create_revision=mid, max_create_revision=revs[7]))
        == ten[5:8]
    )
    filtered = kv.range(prefix, prefix=True, min_mod_revision=mid)
    assert filtered.count == 10  # filters do not change count (etcd semantics)


def test_range_at_revision(kv, ten: list[bytes], etcd_prefix: bytes) -> None:
    rev = kv.put(ten[0], b"changed").header.revision
    old = kv.range(etcd_prefix + b"r/", prefix=True, revision=rev - 1)
    assert old.kvs[0].value == b"9"
    assert kv.get(ten[0]).value == b"changed"


def test_prefix_with_0xff_bytes(kv, etcd_prefix: bytes) -> None:
    base = etcd_prefix + b"x\xff"
    inside = [base, base + b"\x00", base + b"\xff\xff", base + b"z"]
    outside = [etcd_prefix + b"x\xfe", etcd_prefix + b"y"]
    for key in inside + outside:
        kv.put(key, b"1")
    assert keys(kv.range(base, prefix=True)) == sorted(inside)
    assert fastetcd.prefix_range_end(base) == etcd_prefix + b"y"


def test_from_key_and_all_keys(kv) -> None:
    # Keys under 0xfe sort after every other test's keys, so from_key sees only these.
    top = b"\xfe" + uuid.uuid4().hex.encode()
    ks = [top + b"/a", top + b"/b", top + b"/c"]
    for key in ks:
        kv.put(key, b"v")
    assert keys(kv.range(ks[1], from_key=True)) == ks[1:]
    everything = kv.range(b"", prefix=True, keys_only=True)
    assert set(ks) <= set(keys(everything))
    assert kv.range(b"", from_key=True, count_only=True).count == everything.count
    deleted = kv.delete(ks[1], from_key=True)
    assert deleted.deleted == 2
    assert keys(kv.range(top, prefix=True)) == ks[:1]
    kv.delete(top, prefix=True)


def test_range_option_conflicts_rejected(kv, etcd_prefix: bytes) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        kv.range(etcd_prefix, prefix=True, from_key=True)
    with pytest.raises(errors.InvalidArgumentError):
        kv.range(etcd_prefix, b"z", prefix=True)
    with pytest.raises(errors.InvalidArgumentError):
        kv.range(etcd_prefix, limit=-1)


# ------------------------------------------------------------------------------ delete


def test_delete_single_range_prefix_prev_kv(kv, etcd_prefix: bytes) -> None:
    ks = [etcd_prefix + b"d/%d" % i for i in range(6)]
    for key in ks:
        kv.put(key, key)
    one = kv.delete(ks[0], prev_kv=True)
    assert one.deleted == 1 and [p.key for p in one.prev_kvs] == [ks[0]]
    assert one.prev_kvs[0].value == ks[0]
    assert kv.delete(ks[0]).deleted == 0
    ranged = kv.delete(ks[1], ks[3])
    assert ranged.deleted == 2 and ranged.prev_kvs == ()
    rest = kv.delete(etcd_prefix + b"d/", prefix=True, prev_kv=True)
    assert rest.deleted == 3 and sorted(p.key for p in rest.prev_kvs) == ks[3:]
    assert kv.get_prefix(etcd_prefix + b"d/").count == 0


# ------------------------------------------------------------------------------ txn


def test_txn_compare_targets_and_branches(kv, etcd_prefix: bytes) -> None:
    from fastetcd.txn import CreateRevision, Delete, Get, ModRevision, Put, Value, Version

    key = etcd_prefix + b"t"
    created = kv.put(key, b"v1").header.revision
    ok = kv.txn(
        [
            Value(key) == b"v1",
            Value(key) != b"zz",
            Value(key) < b"v2",
            Value(key) > b"v0",
            Version(key) == 1,
            CreateRevision(key) == created,
            ModRevision(key) < created + 1,
            ModRevision(key) > 0,
        ],
        [Put(key, b"v2", prev_kv=True), Get(key), Delete(etcd_prefix + b"none")],
        [Get(key)],
    )
    assert ok.succeeded is True
    put_result, get_result, del_result = ok.responses
    assert isinstance(put_result, fastetcd.PutResult) and put_result.prev_kv.value == b"v1"
    assert isinstance(get_result, fastetcd.RangeResult) and get_result.kvs[0].value == b"v2"
    assert isinstance(del_result, fastetcd.DeleteResult) and del_result.deleted == 0
    assert ok.header.revision == created + 1

    failed = kv.txn([Version(key) == 1], [Put(key, b"never")], [Get(key)])
    assert failed.succeeded is False
    assert failed.responses[0].kvs[0].value == b"v2"
    assert kv.get(key).value == b"v2"


def test_txn_lease_compare_and_missing_key(kv, etcd_server, etcd_prefix: bytes) -> None:
    from fastetcd.txn import LeaseValue, Put, key_exists, key_missing

    key = etcd_prefix + b"tl"
    assert kv.txn([key_missing(key)], [Put(key, b"created")]).succeeded
    assert not kv.txn([key_missing(key)], [Put(key, b"again")]).succeeded
    assert kv.txn([key_exists(key), LeaseValue(key) == 0]).succeeded
    lease_id = int(etcdctl(etcd_server, "lease", "grant", "300").split()[1], 16)
    kv.put(key, b"x", lease=lease_id)
    assert kv.txn([LeaseValue(key) == lease_id]).succeeded


def test_txn_range_compare_and_nested(kv, etcd_prefix: bytes) -> None:
    from fastetcd.txn import Get, Put, Txn, Value, Version

    prefix = etcd_prefix + b"tr/"
    kv.put(prefix + b"a", b"same")
    kv.put(prefix + b"b", b"same")
    assert kv.txn([Value(prefix, prefix=True) == b"same"]).succeeded
    kv.put(prefix + b"c", b"diff")
    assert not kv.txn([Value(prefix, prefix=True) == b"same"]).succeeded
    assert kv.txn([Value(prefix + b"a", prefix + b"c") == b"same"]).succeeded

    nested = kv.txn(
        [],
        [Txn([Version(prefix + b"a") > 0], [Put(prefix + b"n", b"inner"), Get(prefix + b"a")])],
    )
    assert nested.succeeded
    inner = nested.responses[0]
    assert isinstance(inner, fastetcd.TxnResult) and inner.succeeded
    assert inner.responses[1].kvs[0].value == b"same"
    assert kv.get(prefix + b"n").value == b"inner"


def test_txn_server_errors(kv, etcd_prefix: bytes) -> None:
    from fastetcd.txn import Put

    key = etcd_prefix + b"dup"
    with pytest.raises(errors.DuplicateKeyError):
        kv.txn([], [Put(key, b"1"), Put(key, b"2")])
    with pytest.raises(errors.TooManyOpsError):  # server default --max-txn-ops=128
        kv.txn([], [Put(etcd_prefix + b"many/%d" % i, b"") for i in range(129)])
    assert kv.get(key) is None


def test_txn_bad_input_rejected(kv) -> None:
    from fastetcd.txn import Put, Value

    with pytest.raises(errors.ArgumentTypeError):
        kv.txn(["not a compare"], [])
    with pytest.raises(errors.ArgumentTypeError):
        kv.txn([], [("put", b"k", b"v")])
    with pytest.raises(errors.ArgumentTypeError):
        kv.txn(Value(b"k") == b"v", [])
    with pytest.raises(errors.EmptyKeyError):
        Put(b"", b"v")
    with pytest.raises(errors.ArgumentTypeError):
        Value(b"k") == 3  # noqa: B015 - the comparison builds (and here rejects) a Compare


# ------------------------------------------------------------------------------ compact


def test_compact_then_old_revision_is_compacted(kv, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"c"
    old = kv.put(key, b"1").header.revision
    new = kv.put(key, b"2").header.revision
    result = kv.compact(new, physical=True)
    assert result.header.revision >= new
    with pytest.raises(errors.CompactedError):
        kv.get(key, revision=old)
    assert kv.get(key, revision=new).value == b"2"
    with pytest.raises(errors.CompactedError):  # compacting at or below the last compaction
        kv.compact(old)


# ------------------------------------------------------------------------------ bad input


def test_bad_input_raises_before_sending(kv) -> None:
    with pytest.raises(errors.EmptyKeyError):
        kv.put(b"", b"v")
    with pytest.raises(errors.EmptyKeyError):
        kv.get("")
    with pytest.raises(errors.ArgumentTypeError):
        kv.put(123, b"v")
    with pytest.raises(errors.ArgumentTypeError):
        kv.put(b"k", None)
    with pytest.raises(errors.ArgumentTypeError):
        kv.get(b"k", revision="1")
    with pytest.raises(errors.InvalidArgumentError):
        kv.put(b"k", b"v", lease=2**63)
    with pytest.raises(errors.InvalidArgumentError):
        kv.compact(0)


def test_request_too_large(kv, etcd_prefix: bytes) -> None:
    # Above the client's 2 MiB send limit: refused before sending.
    with pytest.raises(errors.RequestTooLargeError):
        kv.put(etcd_prefix + b"big", b"x" * (2 * 1024 * 1024 + 1))
    # Between etcd's 1.5 MiB --max-request-bytes and the client limit: refused by the server.
    with pytest.raises(errors.RequestTooLargeError) as info:
        kv.put(etcd_prefix + b"big", b"x" * (1024 * 1024 + 700 * 1024))
    assert info.value.code == errors.StatusCode.INVALID_ARGUMENT
    assert kv.get(etcd_prefix + b"big") is None
    # Just under the limit works.
    kv.put(etcd_prefix + b"big", b"y" * (1024 * 1024))
    assert len(kv.get(etcd_prefix + b"big").value) == 1024 * 1024


def test_large_range_response_above_4mib(kv, etcd_prefix: bytes) -> None:
    from fastetcd.txn import Put

    value = b"z" * (512 * 1024)
    prefix = etcd_prefix + b"large/"
    for i in range(12):  # 6 MiB in total, above gRPC's default 4 MiB receive limit
        kv.txn([], [Put(prefix + b"%02d" % i, value)])
    result = kv.get_prefix(prefix)
    assert result.count == 12 and all(item.value == value for item in result.kvs)


def test_unreachable_endpoint_raises_unavailable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # max_retries=0: the error itself, not the deadline that retrying would end at.
    with fastetcd.Client(f"127.0.0.1:{port}", timeout=5, max_retries=0) as client:
        with pytest.raises(errors.UnavailableError):
            client.get(b"k")
