"""The retry core, without a server: backoff shapes, the decision for every gRPC status code and
every etcd error, deadlines, the compiled and the pure twin deciding identically, and both
client drivers stepping through it over a scripted fake transport."""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import random
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import fastetcd
from fastetcd import _base, _plan, errors
from fastetcd._base import TransportSlot
from fastetcd._grpcio import NOT_SENT_PREFIXES, never_sent
from fastetcd.cluster import Member, MemberListResult
from fastetcd.errors import StatusCode
from fastetcd.kv import ResponseHeader

from .test_api_parity import awaited


def _retry_impls() -> list[tuple[str, ModuleType]]:
    impls = [("pure", importlib.import_module("fastetcd._retry_py"))]
    try:
        impls.append(("compiled", importlib.import_module("fastetcd._retry")))
    except ImportError:
        if os.environ.get("FASTETCD_REQUIRE_EXTENSIONS"):
            raise
    return impls


RETRY_IMPLS = _retry_impls()


@pytest.fixture(params=[m for _, m in RETRY_IMPLS], ids=[n for n, _ in RETRY_IMPLS])
def rt(request: pytest.FixtureRequest) -> ModuleType:
    """Each available retry core in turn (pure twin, compiled)."""
    return request.param  # type: ignore[no-any-return]


UNAVAILABLE = StatusCode.UNAVAILABLE

# etcd's server errors as they arrive: (gRPC code, exact status message), from etcd's
# api/v3rpc/rpctypes/error.go (3.5) plus the context errors of v3rpc/util.go.
ETCD_ERRORS: list[tuple[StatusCode, str]] = [
    (StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: key not found"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: value is provided"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: invalid sort option"),
    (StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    (StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    (StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"),
    (StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    (StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: member ID already exist"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
    ),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"),
    (StatusCode.NOT_FOUND, "etcdserver: member not found"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    ),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: root user does not exist"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: root user does not have root role"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: user name already exists"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: user name not found"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: role name already exists"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: role name not found"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: role name is empty"),
    (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    ),
    (StatusCode.PERMISSION_DENIED, "etcdserver: permission denied"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: role is not granted to the user"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"),
    (StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: invalid auth management"),
    (StatusCode.INVALID_ARGUMENT, "etcdserver: revision of auth store is old"),
    (StatusCode.UNAVAILABLE, "etcdserver: no leader"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: not leader"),
    (StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
    (StatusCode.UNAVAILABLE, "etcdserver: not capable"),
    (StatusCode.UNAVAILABLE, "etcdserver: server stopped"),
    (StatusCode.UNAVAILABLE, "etcdserver: request timed out"),
    (
        StatusCode.UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure",
    ),
    (StatusCode.UNAVAILABLE, "etcdserver: request timed out, possibly due to connection lost"),
    (
        StatusCode.UNAVAILABLE,
        "etcdserver: request timed out, waiting for the applied index took too long",
    ),
    (StatusCode.UNAVAILABLE, "etcdserver: unhealthy cluster"),
    (StatusCode.DATA_LOSS, "etcdserver: corrupt cluster"),
    (StatusCode.UNAVAILABLE, "etcdserver: rpc not supported for learner"),
    (StatusCode.FAILED_PRECONDITION, "etcdserver: bad leader transferee"),
    (StatusCode.CANCELLED, "etcdserver: request canceled"),
    (StatusCode.DEADLINE_EXCEEDED, "etcdserver: context deadline exceeded"),
]

# What grpcio reports when the transport fails (seen against a real etcd, see _grpcio.py).
TRANSPORT_ERRORS: list[tuple[str, bool]] = [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
     "Failed to connect to remote host: Connection refused", False),
    ("connections to all backends failing; last error: UNKNOWN: ipv4:127.0.0.1:1: "
     "Failed to connect to remote host: Connection refused", False),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
     "recvmsg:Connection reset by peer (104)", False),
    ("errors resolving nonexistent.invalid:2379: [field:hostname lookup error]", False),
    ("Stream removed (recvmsg:Connection reset by peer (104))", True),
    ("Socket closed", True),
    ("Connection reset by peer", True),
    ("GOAWAY received", True),
    ("", True),
]  # fmt: skip


def _error(code: int, message: str, sent: bool | None = None) -> errors.EtcdError:
    error = errors.from_status(code, message)
    if sent is not None:
        assert isinstance(error, errors.UnavailableError)
        error.sent = sent
    return error


# --------------------------------------------------------------------------- Backoff


def test_twins_export_the_same_names() -> None:
    names = [set(m.__all__) for _, m in RETRY_IMPLS]
    assert all(n == names[0] for n in names)
    for _, module in RETRY_IMPLS:
        assert module.DEFAULT_MAX_RETRIES == 100
        assert module.DEFAULT_INITIAL_BACKOFF == 0.025
        assert module.DEFAULT_MAX_BACKOFF == 1.0
        assert module.DEFAULT_BACKOFF_MULTIPLIER == 2.0
        assert module.DEFAULT_BACKOFF_JITTER == 0.1
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                assert obj.__doc__, f"{module.__name__}.{name}"


def test_backoff_grows_and_caps(rt: ModuleType) -> None:
    b = rt.Backoff(0.1, 2, 1.0)
    assert [b.next_delay() for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    b.reset()
    assert b.current == 0.1
    assert b.next_delay() == 0.1
    assert b.current == 0.2


def test_backoff_positional_api_and_attributes(rt: ModuleType) -> None:
    # The API stream reconnect loops rely on: Backoff(initial, multiplier, maximum, jitter, rng).
    b = rt.Backoff(0.001, 1.25, 0.1, 0.0, None)
    assert (b.initial, b.multiplier, b.maximum, b.jitter) == (0.001, 1.25, 0.1, 0.0)
    delays = [b.next_delay() for _ in range(40)]
    assert delays[0] == 0.001 and delays[-1] == 0.1
    assert all(x <= y for x, y in zip(delays, delays[1:]))
    assert "Backoff(" in repr(b)


@pytest.mark.parametrize(
    "args", [(-1, 2, 1), (2, 2, 1), (0.1, 0.5, 1), (0.1, 2, 1, 1.0), (0.1, 2, 1, -0.1)]
)
def test_backoff_rejects_bad_shapes(rt: ModuleType, args: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        rt.Backoff(*args)


def test_backoff_jitter_stays_in_bounds(rt: ModuleType) -> None:
    b = rt.Backoff(0.5, 1, 0.5, 0.2, random.Random(7))
    samples = [b.next_delay() for _ in range(2000)]
    assert min(samples) >= 0.4 and max(samples) <= 0.6
    assert max(samples) - min(samples) > 0.15  # it does spread
    unseeded = rt.Backoff(0.5, 1, 0.5, 0.2)  # the process-wide generator
    assert 0.4 <= unseeded.next_delay() <= 0.6


def test_backoff_twins_agree_float_for_float() -> None:
    if len(RETRY_IMPLS) < 2:
        pytest.skip("compiled retry core not built")
    (_, pure), (_, compiled) = RETRY_IMPLS
    shapes = random.Random(1234)
    for seed in range(50):
        args = (
            shapes.uniform(0, 0.1),
            shapes.uniform(1, 3),
            shapes.uniform(0.1, 5),
            shapes.choice([0.0, 0.1, 0.5, 0.99]),
        )
        a = pure.Backoff(*args, rng=random.Random(seed))
        b = compiled.Backoff(*args, rng=random.Random(seed))
        for step in range(30):
            if step == 17:
                a.reset()
                b.reset()
            assert a.next_delay() == b.next_delay()  # exactly equal, not approximately


# --------------------------------------------------------------------------- RetryPolicy


def test_policy_defaults_and_immutability(rt: ModuleType) -> None:
    p = rt.RetryPolicy()
    assert (p.max_retries, p.initial_backoff, p.max_backoff, p.multiplier, p.jitter) == (
        100,
        0.025,
        1.0,
        2.0,
        0.1,
    )
    assert p.rng is None
    with pytest.raises(AttributeError):
        p.max_retries = 3
    q = p.replace(max_retries=3, jitter=0.0)
    assert (q.max_retries, q.jitter, q.initial_backoff) == (3, 0.0, 0.025)
    assert p == rt.RetryPolicy() and hash(p) == hash(rt.RetryPolicy())
    assert p != q
    assert repr(q) == (
        "RetryPolicy(max_retries=3, initial_backoff=0.025, max_backoff=1.0, "
        "multiplier=2.0, jitter=0.0)"
    )
    b = q.backoff()
    assert isinstance(b, rt.Backoff)
    assert [b.next_delay() for _ in range(3)] == [0.025, 0.05, 0.1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"initial_backoff": -0.1},
        {"initial_backoff": 2.0},
        {"max_backoff": math.nan},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"jitter": "0.1"},
    ],
)
def test_policy_rejects_bad_values(rt: ModuleType, kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        rt.RetryPolicy(**kwargs)


# --------------------------------------------------------------------------- decisions


CODE_CASES = [(code, None) for code in StatusCode if code != StatusCode.OK] + [
    (StatusCode.UNAVAILABLE, False)  # only an UnavailableError carries `sent`
]


@pytest.mark.parametrize("code,sent", CODE_CASES, ids=[f"{c.name}-sent-{s}" for c, s in CODE_CASES])
def test_every_grpc_code(rt: ModuleType, code: StatusCode, sent: bool | None) -> None:
    error = _error(code, "some transport message", sent)
    for repeatable in (True, False):
        expected = code == UNAVAILABLE and (repeatable or sent is False)
        assert rt.is_retryable(error, repeatable) is expected
        state = rt.RetryState(rt.RetryPolicy(), repeatable, None)
        if expected:
            assert state.on_error(error, 0.0) == pytest.approx(0.025, rel=0.1)
            assert state.retries == 1
        else:
            with pytest.raises(type(error)) as info:
                state.on_error(error, 0.0)
            assert info.value is error
            assert state.retries == 0


def test_etcd_error_table_covers_the_mapping() -> None:
    assert {message for _, message in ETCD_ERRORS} == set(errors._BY_MESSAGE)


@pytest.mark.parametrize(
    "code,message", ETCD_ERRORS, ids=[m.replace("etcdserver: ", "") for _, m in ETCD_ERRORS]
)
def test_every_etcd_error(rt: ModuleType, code: StatusCode, message: str) -> None:
    error = errors.from_status(code, message)
    retried = code == UNAVAILABLE
    # etcd's UNAVAILABLE errors are exactly the UnavailableError subclasses.
    assert isinstance(error, errors.UnavailableError) is retried
    assert rt.is_retryable(error, True) is retried  # a read
    assert rt.is_retryable(error, False) is False  # a write: the server got it, may apply it
    state = rt.RetryState(rt.RetryPolicy(), True, None)
    if retried:
        assert state.on_error(error, 0.0) > 0
    else:
        with pytest.raises(type(error)):
            state.on_error(error, 0.0)
    write = rt.RetryState(rt.RetryPolicy(), False, None)
    with pytest.raises(type(error)):
        write.on_error(error, 0.0)


@pytest.mark.parametrize("details,maybe_sent", TRANSPORT_ERRORS)
def test_transport_errors_and_sent(rt: ModuleType, details: str, maybe_sent: bool) -> None:
    assert never_sent(UNAVAILABLE, details) is (not maybe_sent)
    assert not never_sent(StatusCode.DEADLINE_EXCEEDED, details)
    error = _error(UNAVAILABLE, details, None if maybe_sent else False)
    assert rt.is_retryable(error, True)
    assert rt.is_retryable(error, False) is (not maybe_sent)


def test_not_sent_prefixes_are_grpc_core_wordings() -> None:
    assert all(p and not p.startswith("etcdserver") for p in NOT_SENT_PREFIXES)


def test_idempotent_write_is_retried_like_a_read(rt: ModuleType) -> None:
    ambiguous = _error(UNAVAILABLE, "Stream removed")
    with pytest.raises(errors.UnavailableError):
        rt.RetryState(rt.RetryPolicy(), False, None).on_error(ambiguous, 0.0)
    # idempotent=True makes the planned call repeatable.
    call = _plan.put(b"k", b"v", idempotent=True)
    assert call.repeatable
    assert rt.RetryState(rt.RetryPolicy(), call.repeatable, None).on_error(ambiguous, 0.0) > 0


def test_max_retries(rt: ModuleType) -> None:
    error = _error(UNAVAILABLE, "etcdserver: no leader")
    state = rt.RetryState(rt.RetryPolicy(max_retries=3, jitter=0.0), True, None)
    assert [state.on_error(error, 0.0) for _ in range(3)] == [0.025, 0.05, 0.1]
    with pytest.raises(errors.NoLeaderError):
        state.on_error(error, 0.0)
    assert state.retries == 3
    none = rt.RetryState(rt.RetryPolicy(max_retries=0), True, None)
    with pytest.raises(errors.NoLeaderError):
        none.on_error(error, 0.0)


def test_deadline_wins(rt: ModuleType) -> None:
    error = _error(UNAVAILABLE, "connections to all backends failing", False)
    policy = rt.RetryPolicy(jitter=0.0, initial_backoff=0.5, max_backoff=0.5)
    state = rt.RetryState(policy, False, 10.0)
    assert state.deadline == 10.0 and not state.repeatable
    assert state.on_error(error, 9.0) == 0.5  # 9.5 < 10
    assert state.timeout(9.5) == pytest.approx(0.5)
    with pytest.raises(errors.DeadlineExceededError) as info:
        state.on_error(error, 9.5)  # 9.5 + 0.5 reaches the deadline: do not wait for nothing
    assert info.value.__cause__ is error
    assert info.value.code == StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(errors.DeadlineExceededError) as info:
        state.timeout(10.0)
    assert info.value.__cause__ is error
    assert rt.RetryState(policy, True, None).timeout(1e9) is None


def test_twins_decide_identically() -> None:
    """Random error sequences, clocks and policies: both twins return the same waits, the
    same timeouts and raise the same errors, step for step."""
    if len(RETRY_IMPLS) < 2:
        pytest.skip("compiled retry core not built")
    (_, pure), (_, compiled) = RETRY_IMPLS
    pick = random.Random(99)
    pool = [
        (StatusCode.UNAVAILABLE, "etcdserver: leader changed", None),
        (StatusCode.UNAVAILABLE, "Stream removed", None),
        (StatusCode.UNAVAILABLE, "failed to connect to all addresses", False),
        (StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", None),
        (StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", None),
    ]
    for seed in range(200):
        kwargs = {
            "max_retries": pick.randrange(0, 12),
            "initial_backoff": pick.uniform(0.001, 0.1),
            "max_backoff": pick.uniform(0.1, 2),
            "multiplier": pick.uniform(1, 3),
            "jitter": pick.uniform(0, 0.5),
        }
        repeatable = pick.random() < 0.5
        deadline = None if pick.random() < 0.3 else pick.uniform(0.5, 5)
        states = [
            m.RetryState(m.RetryPolicy(**kwargs, rng=random.Random(seed)), repeatable, deadline)
            for m in (pure, compiled)
        ]
        now = 0.0
        for _ in range(20):
            code, message, sent = pick.choice(pool)
            outcomes = []
            for state in states:
                try:
                    delay = state.on_error(_error(code, message, sent), now)
                    outcomes.append(("wait", delay, state.timeout(now + delay), state.retries))
                except errors.EtcdError as exc:
                    outcomes.append(("raise", type(exc), str(exc), state.retries))
            assert outcomes[0] == outcomes[1], (seed, kwargs, outcomes)
            if outcomes[0][0] == "raise":
                break
            now += outcomes[0][1] + pick.uniform(0, 0.05)


def test_selected_retry_core_follows_the_flags() -> None:
    from fastetcd import _impl

    if os.environ.get("FASTETCD_NO_EXTENSIONS"):
        assert _impl.retry.__name__ == "fastetcd._retry_py"
        assert not fastetcd.EXTENSIONS_LOADED
    elif len(RETRY_IMPLS) == 2:
        assert _impl.retry.__name__ == "fastetcd._retry"
    assert fastetcd.RetryPolicy is _impl.retry.RetryPolicy
    assert fastetcd.Backoff is _impl.retry.Backoff


# --------------------------------------------------------------------------- plan


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, "1", True])
def test_per_call_timeout_is_checked(bad: object) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        _plan.get(b"k", timeout=bad)  # type: ignore[arg-type]


def test_calls_carry_timeout_and_repeatable() -> None:
    assert _plan.get(b"k").repeatable and _plan.get(b"k").timeout is None
    assert _plan.range(b"k", timeout=2).timeout == 2.0
    assert _plan.get_prefix(b"k", timeout=1.5).timeout == 1.5
    assert _plan.member_list().repeatable
    for call in (
        _plan.put(b"k", b"v"),
        _plan.delete(b"k"),
        _plan.txn(),
        _plan.compact(1),
    ):
        assert not call.repeatable
    for call in (
        _plan.put(b"k", b"v", idempotent=True),
        _plan.delete(b"k", idempotent=True),
        _plan.txn(idempotent=True),
        _plan.compact(1, idempotent=True, timeout=3),
    ):
        assert call.repeatable
    assert "timeout=3.0" in repr(_plan.compact(1, timeout=3))


def test_cluster_methods_match_between_clients() -> None:
    import inspect

    for name in ("member_list", "sync_endpoints"):
        sync, aio = getattr(fastetcd.Client, name), getattr(fastetcd.AsyncClient, name)
        assert inspect.signature(sync).parameters == inspect.signature(aio).parameters
        assert sync.__doc__ and sync.__doc__ == aio.__doc__
        assert awaited(aio) and not awaited(sync)
    assert fastetcd.Client.member_list.__doc__ == _plan.member_list.__doc__


def test_member_list_decodes() -> None:
    from fastetcd._pb import rpc_pb2

    data = rpc_pb2.MemberListResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4),
        members=[
            rpc_pb2.Member(ID=7, name="m0", peerURLs=["http://p"], clientURLs=["http://c:1"]),
            rpc_pb2.Member(ID=2**64 - 1, isLearner=True),
        ],
    ).SerializeToString()
    result = _plan.member_list().decode(data)
    assert result == MemberListResult(
        ResponseHeader(1, 2, 3, 4),
        (
            Member(7, "m0", ("http://p",), ("http://c:1",), False),
            Member(2**64 - 1, "", (), (), True),
        ),
    )
    with pytest.raises(AttributeError):
        result.members = ()  # type: ignore[misc]
    import pickle

    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(errors.DecodeError):
        _plan.member_list().decode(b"\x0a\x05ab")


# --------------------------------------------------------------------------- drivers


class FakeTransport:
    """Plays a script of outcomes (bytes to return, or errors to raise) and records each
    attempt's (method, timeout, metadata)."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.attempts: list[tuple[str, float | None, object]] = []
        self.closed = False

    def _next(self, method: str, timeout: float | None, metadata: object) -> bytes:
        self.attempts.append((method, timeout, metadata))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, bytes)
        return outcome

    def unary(  # type: ignore[no-untyped-def]
        self, method: str, request: bytes, timeout: float | None, metadata: object = None
    ):
        return self._next(method, timeout, metadata)

    def close(self) -> None:
        self.closed = True


class AsyncFakeTransport(FakeTransport):
    async def unary(  # type: ignore[no-untyped-def,override]
        self, method: str, request: bytes, timeout: float | None, metadata: object = None
    ):
        await asyncio.sleep(0)
        return self._next(method, timeout, metadata)

    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


def _unused_endpoint() -> str:
    from fastetcd.testing import free_ports

    return f"127.0.0.1:{free_ports(1)[0]}"


class Driver:
    """One client (sync, or async run on a private loop) whose transport is a fake."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        if self.loop is None:
            self.client: Any = fastetcd.Client(_unused_endpoint(), **options)
        else:

            async def make() -> fastetcd.AsyncClient:
                return fastetcd.AsyncClient(_unused_endpoint(), **options)

            self.client = self.loop.run_until_complete(make())

    def fake(self, *outcomes: object, install: bool = True) -> FakeTransport:
        fake = (AsyncFakeTransport if self.loop else FakeTransport)(*outcomes)
        if install:
            self.use(fake)
        return fake

    def use(self, transport: object) -> None:
        if not isinstance(self.client._transport, FakeTransport):
            # the grpcio transport made by the constructor (it never connected)
            if self.loop is None:
                self.client._transport.close()
            else:
                self.loop.run_until_complete(self.client._transport.close())
        self.client._slot = TransportSlot(transport)
        self.client._transport = transport

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        if self.loop is not None:
            result = self.loop.run_until_complete(result)
        return result

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
        elif not self.loop.is_closed():
            self.loop.run_until_complete(self.client.close())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Driver] = []

    def make(**options: Any) -> Driver:
        d = Driver(request.param, **options)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


NO_LEADER = "etcdserver: no leader"


def test_driver_retries_reads(driver: Any) -> None:
    d = driver(backoff=fastetcd.RetryPolicy(initial_backoff=0.001, max_backoff=0.001))
    fake = d.fake(
        _error(UNAVAILABLE, NO_LEADER),
        _error(UNAVAILABLE, "Stream removed"),
        _error(UNAVAILABLE, "etcdserver: request timed out"),
        b"",
    )
    assert d("get", b"k") is None
    assert len(fake.attempts) == 4
    assert all(a == ("/etcdserverpb.KV/Range", None, None) for a in fake.attempts)


def test_driver_never_repeats_an_ambiguous_write(driver: Any) -> None:
    d = driver()
    fake = d.fake(_error(UNAVAILABLE, "Stream removed"), b"")
    with pytest.raises(errors.UnavailableError) as info:
        d("put", b"k", b"v")
    assert info.value.sent is None
    assert len(fake.attempts) == 1
    fake = d.fake(_error(UNAVAILABLE, "etcdserver: request timed out"), b"")
    with pytest.raises(errors.TimeoutError):
        d("txn")
    assert len(fake.attempts) == 1


def test_driver_repeats_an_unsent_write(driver: Any) -> None:
    d = driver(backoff=fastetcd.RetryPolicy(initial_backoff=0.001))
    fake = d.fake(_error(UNAVAILABLE, "connections to all backends failing", False), b"")
    d("put", b"k", b"v")
    d("delete", b"k")
    assert [a[0] for a in fake.attempts] == [
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
    ]


def test_driver_repeats_an_idempotent_write(driver: Any) -> None:
    d = driver(backoff=fastetcd.RetryPolicy(initial_backoff=0.001))
    fake = d.fake(_error(UNAVAILABLE, "Stream removed"), _error(UNAVAILABLE, NO_LEADER), b"")
    d("put", b"k", b"v", idempotent=True)
    assert len(fake.attempts) == 3


def test_driver_raises_other_errors_at_once(driver: Any) -> None:
    d = driver()
    fake = d.fake(_error(StatusCode.OUT_OF_RANGE, ETCD_ERRORS[7][1]))
    with pytest.raises(errors.CompactedError):
        d("get", b"k", revision=1)
    assert len(fake.attempts) == 1


def test_driver_max_retries_option(driver: Any) -> None:
    d = driver(max_retries=2, backoff=fastetcd.RetryPolicy(initial_backoff=0.001))
    assert d.client.retry_policy.max_retries == 2
    fake = d.fake(_error(UNAVAILABLE, NO_LEADER))
    with pytest.raises(errors.NoLeaderError):
        d("range", b"k")
    assert len(fake.attempts) == 3
    d0 = driver(max_retries=0)
    fake = d0.fake(_error(UNAVAILABLE, NO_LEADER))
    with pytest.raises(errors.NoLeaderError):
        d0("get", b"k")
    assert len(fake.attempts) == 1


def test_driver_deadline_wins(driver: Any) -> None:
    d = driver(timeout=5.0, backoff=fastetcd.RetryPolicy(initial_backoff=0.02, jitter=0))
    fake = d.fake(_error(UNAVAILABLE, NO_LEADER))
    start = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError) as info:
        d("get", b"k", timeout=0.3)  # the per-call timeout overrides the client's
    elapsed = time.monotonic() - start
    assert elapsed <= 0.3 + 0.1
    assert isinstance(info.value.__cause__, errors.NoLeaderError)
    timeouts = [a[1] for a in fake.attempts]
    assert timeouts[0] == 0.3
    assert all(0 < b < a for a, b in zip(timeouts, timeouts[1:]))  # what is left, each time
    fake = d.fake(b"")
    d("get", b"k")
    assert fake.attempts[0][1] == 5.0  # the client's timeout when the call gives none


def test_driver_require_leader_metadata(driver: Any) -> None:
    d = driver(require_leader=True)
    fake = d.fake(b"")
    d("put", b"k", b"v")
    d("member_list")
    assert [a[2] for a in fake.attempts] == [(("hasleader", "true"),)] * 2


def test_driver_rejects_bad_options(driver: Any) -> None:
    with pytest.raises(errors.InvalidArgumentError):
        driver(backoff=0.1)
    with pytest.raises(errors.InvalidArgumentError):
        driver(max_retries=-1)
    with pytest.raises(errors.InvalidArgumentError):
        driver(auto_sync_interval=0)


def test_driver_accepts_either_twin_policy(driver: Any) -> None:
    for _, module in RETRY_IMPLS:
        d = driver(backoff=module.RetryPolicy(initial_backoff=0.001), max_retries=1)
        fake = d.fake(_error(UNAVAILABLE, NO_LEADER), b"")
        d("get", b"k")
        assert len(fake.attempts) == 2


def _members(*urls: tuple[str, ...], learner: int = -1, unnamed: int = -1) -> MemberListResult:
    return MemberListResult(
        ResponseHeader(),
        tuple(
            Member(i, "" if i == unnamed else f"m{i}", (), u, i == learner)
            for i, u in enumerate(urls)
        ),
    )


def test_synced_endpoints_filtering(driver: Any) -> None:
    d = driver()
    client: _base.ClientBase = d.client
    current = client.endpoints
    assert client._synced_config(_members((f"http://{current[0].address}",))) is None
    config = client._synced_config(
        _members(
            ("http://127.0.0.1:1", "http://127.0.0.1:2"),
            ("https://127.0.0.1:3",),  # another scheme: never switch http <-> https
            ("http://127.0.0.1:4",),  # a learner
            ("http://127.0.0.1:5",),  # not started yet
            ("unix://x", "http://127.0.0.1:1"),  # unparsable, duplicate
            learner=2,
            unnamed=3,
        )
    )
    assert config is not None
    assert [e.address for e in config.endpoints] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert client._synced_config(_members(("https://127.0.0.1:3",))) is None


def test_swap_lets_calls_in_flight_finish(driver: Any) -> None:
    """Auto-sync's transport swap: a call in flight finishes on the old transport, which is
    closed right after; new calls use the new one."""
    d = driver()
    old = d.fake(b"")
    new = d.fake(b"", install=False)
    client = d.client
    config = client._config.__class__(endpoints=fastetcd._transport.parse_endpoints("127.0.0.1:9"))
    if d.loop is None:
        gate, entered = threading.Event(), threading.Event()
        real = old.unary

        def slow(*args: Any, **kwargs: Any) -> bytes:
            entered.set()
            gate.wait(5)
            return real(*args, **kwargs)  # type: ignore[no-any-return]

        old.unary = slow  # type: ignore[method-assign]
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(client.get(b"k")))
        worker.start()
        assert entered.wait(5)
        import fastetcd.client as client_module

        original = client_module.open_transport
        client_module.open_transport = lambda config, name: new  # type: ignore[assignment]
        try:
            client._swap(config)
        finally:
            client_module.open_transport = original
        assert client._transport is new and not old.closed  # still in use
        client.get(b"k")
        assert len(new.attempts) == 1
        gate.set()
        worker.join(5)
        assert results == [None] and old.closed
    else:
        loop = d.loop
        assert loop is not None

        async def scenario() -> None:
            gate = asyncio.Event()
            real = old.unary

            async def slow(*args: Any, **kwargs: Any) -> bytes:
                await gate.wait()
                return await real(*args, **kwargs)  # type: ignore[no-any-return]

            old.unary = slow  # type: ignore[method-assign]
            task = asyncio.ensure_future(client.get(b"k"))
            await asyncio.sleep(0.01)
            import fastetcd.aio as aio_module

            original = aio_module.open_async_transport
            aio_module.open_async_transport = lambda config, name: new  # type: ignore[assignment]
            try:
                await client._swap(config)
            finally:
                aio_module.open_async_transport = original
            assert client._transport is new and not old.closed
            await client.get(b"k")
            assert len(new.attempts) == 1
            gate.set()
            assert await task is None
            assert old.closed

        loop.run_until_complete(scenario())


def _member_list_bytes(*ports: int) -> bytes:
    from fastetcd._pb import rpc_pb2

    return rpc_pb2.MemberListResponse(
        members=[
            rpc_pb2.Member(ID=i + 1, name=f"m{i}", clientURLs=[f"http://127.0.0.1:{port}"])
            for i, port in enumerate(ports)
        ]
    ).SerializeToString()


def test_auto_sync_swaps_endpoints_and_stops_on_close(driver: Any) -> None:
    from fastetcd.testing import free_ports

    ports = free_ports(2)
    d = driver(auto_sync_interval=0.05)
    d.fake(_member_list_bytes(*ports))
    wanted = {f"127.0.0.1:{p}" for p in ports}
    deadline = time.monotonic() + 10
    while {e.address for e in d.client.endpoints} != wanted:
        assert time.monotonic() < deadline, d.client.endpoints
        if d.loop is None:
            time.sleep(0.02)
        else:
            d.loop.run_until_complete(asyncio.sleep(0.02))
    assert not isinstance(d.client._transport, FakeTransport)  # a new channel, swapped in
    d.close()
    if d.loop is None:
        deadline = time.monotonic() + 5
        while any(t.name == "fastetcd-auto-sync" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the auto-sync thread outlived close()"
            time.sleep(0.02)
    else:
        assert d.client._sync_task is None


def test_async_auto_sync_starts_with_the_first_call_when_made_outside_a_loop() -> None:
    import warnings

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the loop grpc.aio binds the channel to; not running yet
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = fastetcd.AsyncClient(_unused_endpoint(), auto_sync_interval=30)
        assert client._sync_task is None and client._sync_pending == 30

        async def scenario() -> None:
            await client._transport.close()
            fake = AsyncFakeTransport(b"")
            client._slot = TransportSlot(fake)
            client._transport = fake
            await client.get(b"k")
            assert client._sync_task is not None and client._sync_pending is None
            await client.close()
            assert client._sync_task is None

        loop.run_until_complete(scenario())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
