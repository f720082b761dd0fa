"""Data written by fastetcd is read back byte-exact by etcd's own etcdctl, and the reverse."""

from __future__ import annotations

import base64
import json

import fastetcd
from fastetcd.testing import etcdctl


def _etcdctl_get(server, key: bytes) -> list[dict]:  # type: ignore[no-untyped-def]
    out = etcdctl(server, "get", key.decode("latin-1"), "-w", "json")
    return json.loads(out).get("kvs", [])


def test_fastetcd_writes_etcdctl_reads(kv, etcd_server, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"interop-a"
    value = bytes(range(1, 256)) + b"\x00 tail \xff"
    put = kv.put(key, value)
    kvs = _etcdctl_get(etcd_server, key)
    assert len(kvs) == 1
    assert base64.b64decode(kvs[0]["key"]) == key
    assert base64.b64decode(kvs[0]["value"]) == value
    assert int(kvs[0]["mod_revision"]) == put.header.revision
    assert int(kvs[0]["version"]) == 1


def test_etcdctl_writes_fastetcd_reads(kv, etcd_server, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"interop-b"
    value = "unicode ✓ and spaces\ttabs"
    etcdctl(etcd_server, "put", key.decode(), value)
    got = kv.get(key)
    assert got is not None
    assert got.value == value.encode("utf-8")
    assert got.version == 1
    # A multi-line value written through etcdctl's stdin.
    etcdctl(etcd_server, "put", key.decode(), input="line1\nline2\n")
    assert kv.get(key).value == b"line1\nline2\n"


def test_etcdctl_txn_visible_to_fastetcd(kv, etcd_server, etcd_prefix: bytes) -> None:
    a, b = (etcd_prefix + b"itx-a").decode(), (etcd_prefix + b"itx-b").decode()
    kv.put(a, b"1")
    script = f'value("{a}") = "1"\n\nput {b} from-etcdctl\n\nput {b} else\n\n'
    out = etcdctl(etcd_server, "txn", input=script)
    assert out.splitlines()[0] == "SUCCESS"
    result = kv.range(etcd_prefix + b"itx-", prefix=True)
    assert [(item.key, item.value) for item in result.kvs] == [
        (a.encode(), b"1"),
        (b.encode(), b"from-etcdctl"),
    ]
    assert isinstance(result, fastetcd.RangeResult)
