"""Layers that need no server: request validation, endpoint parsing, error mapping, txn DSL."""

from __future__ import annotations

import pickle

import pytest

from fastetcd import _plan, _requests, errors
from fastetcd._transport import Endpoint, parse_endpoints
from fastetcd.txn import Compare, Delete, Get, Put, Txn, Value, Version


def test_range_bounds_rules() -> None:
    rb = _requests.range_bounds
    assert rb(b"a", None, False, False) == (b"a", b"")
    assert rb(b"a", b"c", False, False) == (b"a", b"c")
    assert rb(b"a", None, True, False) == (b"a", b"b")
    assert rb(b"a\xff", None, True, False) == (b"a\xff", b"b")
    assert rb(b"\xff\xff", None, True, False) == (b"\xff\xff", b"\x00")
    assert rb(b"", None, True, False) == (b"\x00", b"\x00")
    assert rb(b"", None, False, True) == (b"\x00", b"\x00")
    assert rb(b"k", None, False, True) == (b"k", b"\x00")
    assert rb("ké", None, False, False) == ("ké".encode(), b"")
    with pytest.raises(errors.EmptyKeyError):
        rb(b"", None, False, False)
    with pytest.raises(errors.InvalidArgumentError):
        rb(b"a", b"b", True, False)


def test_key_ascend_sort_is_rewritten_to_none() -> None:
    plain = _requests.encode_range(b"a", prefix=True)
    assert _requests.encode_range(b"a", prefix=True, sort_order="ascend") == plain
    assert _requests.encode_range(b"a", prefix=True, sort_order="descend") != plain


def test_int_validation() -> None:
    with pytest.raises(errors.ArgumentTypeError):
        _requests.int64(True, "x")
    with pytest.raises(errors.ArgumentTypeError):
        _requests.int64(1.0, "x")
    with pytest.raises(errors.InvalidArgumentError):
        _requests.int64(-1, "x", 0)
    assert _requests.int64(-(2**63), "x") == -(2**63)


def test_call_plans() -> None:
    call = _plan.put(b"k", b"v")
    assert (call.method, call.repeatable) == ("/etcdserverpb.KV/Put", False)
    assert _plan.get(b"k").repeatable is True
    assert _plan.txn([], [], []).method == "/etcdserverpb.KV/Txn"


def test_parse_endpoints() -> None:
    assert parse_endpoints("127.0.0.1:2379") == (Endpoint("127.0.0.1", 2379),)
    assert parse_endpoints("http://localhost:23") == (Endpoint("localhost", 23),)
    assert parse_endpoints(["a:1", "b"]) == (Endpoint("a", 1), Endpoint("b", 2379))
    assert parse_endpoints("a:1,b:2")[1] == Endpoint("b", 2)
    assert parse_endpoints("[::1]:5")[0].address == "[::1]:5"
    assert parse_endpoints("https://h:1")[0].secure
    for bad in ("", "ftp://x:1", "h:notaport", "h:0", "http://h:1/path"):
        with pytest.raises(errors.InvalidArgumentError):
            parse_endpoints(bad)
    with pytest.raises(errors.ArgumentTypeError):
        parse_endpoints(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "message", "cls"),
    [
        (14, "etcdserver: no leader", errors.NoLeaderError),
        (14, "etcdserver: request timed out", errors.TimeoutError),
        (14, "connection refused", errors.UnavailableError),
        (11, "etcdserver: mvcc: required revision has been compacted", errors.CompactedError),
        (
            11,
            "etcdserver: mvcc: required revision is a future revision",
            errors.FutureRevisionError,
        ),
        (3, "etcdserver: request is too large", errors.RequestTooLargeError),
        (3, "etcdserver: key is not provided", errors.EmptyKeyError),
        (3, "something else", errors.InvalidRequestError),
        (7, "etcdserver: permission denied", errors.PermissionDeniedError),
        (16, "etcdserver: invalid auth token", errors.InvalidAuthTokenError),
        (8, "etcdserver: mvcc: database space exceeded", errors.NoSpaceError),
        (8, "grpc: received message larger than max", errors.ResourceExhaustedError),
        (5, "etcdserver: requested lease not found", errors.LeaseNotFoundError),
        (4, "Deadline Exceeded", errors.DeadlineExceededError),
        (99, "weird", errors.UnknownError),
    ],
)
def test_error_mapping(code: int, message: str, cls: type) -> None:
    err = errors.from_status(code, message)
    assert type(err) is cls
    assert err.details == message
    assert isinstance(err, errors.EtcdError)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and again.code == err.code and str(again) == str(err)


def test_no_leader_and_timeouts_are_unavailable() -> None:
    # Like etcd's Go client: these carry UNAVAILABLE, so reads may retry them.
    for message in (
        "etcdserver: no leader",
        "etcdserver: leader changed",
        "etcdserver: request timed out",
    ):
        err = errors.from_status(14, message)
        assert (
            isinstance(err, errors.UnavailableError) and err.code == errors.StatusCode.UNAVAILABLE
        )


def test_txn_dsl_is_immutable_and_comparable() -> None:
    cmp1 = Value(b"k") == b"v"
    assert isinstance(cmp1, Compare)
    assert cmp1 == (Value("k") == "v")
    assert cmp1 != (Value(b"k") == b"w")
    assert repr(cmp1) == "Value(b'k') == b'v'"
    assert repr(Version(b"k", prefix=True) > 2) == "Version(b'k', range_end=b'l') > 2"
    with pytest.raises(AttributeError):
        cmp1.key = b"x"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cmp1)) == cmp1
    assert Put(b"k", b"v") == Put(b"k", b"v") and Put(b"k", b"v") != Put(b"k", b"w")
    assert Get(b"k") != Delete(b"k")
    nested = Txn([cmp1], [Put(b"k", b"v")], [Get(b"k")])
    with pytest.raises(AttributeError):
        nested._pb = b""  # type: ignore[misc]
