"""Shared fixtures. The etcd server fixtures come from fastetcd's own pytest plugin
(``fastetcd.testing.pytest_plugin``, registered as a pytest11 entry point)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Imported here, at startup, although only some test files use it. Otherwise a run of only
# the files that talk to etcd (CI's etcd 3.4 step) first imports hypothesis at the very end,
# from its plugin's terminal summary, and pytest's assertion rewriter ast.parse()s some 70 of
# its modules there. On CPython 3.11 (seen on 3.11.7) an ast.parse() during which the garbage
# collector runs a finalizer that itself ast.parse()s — for instance by importing a module
# pytest rewrites — fails with "SystemError: AST constructor recursion depth mismatch": the
# depth counter is per interpreter, so the nested parse resets it (reproduced standalone on
# 3.11.7; the same counter's other bug is CPython gh-106905). At the end of a session there
# is plenty of garbage with finalizers; at startup there is none. This crashed one CI run
# after all of its tests had passed.
import hypothesis  # noqa: F401
import pytest


def _codec_impls() -> list[tuple[str, ModuleType]]:
    impls = [("pure", importlib.import_module("fastetcd._codec_py"))]
    try:
        impls.append(("compiled", importlib.import_module("fastetcd._codec")))
    except ImportError:
        if os.environ.get("FASTETCD_REQUIRE_EXTENSIONS"):
            raise
    return impls


CODEC_IMPLS = _codec_impls()


@pytest.fixture(params=[m for _, m in CODEC_IMPLS], ids=[n for n, _ in CODEC_IMPLS])
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """Each available codec implementation in turn (pure twin, compiled)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def codecs() -> list[ModuleType]:
    """All available codec implementations at once (for cross-checks)."""
    return [m for _, m in CODEC_IMPLS]


class SyncView:
    """Runs an AsyncClient's coroutine methods to completion on a private loop, so one test
    body exercises both the blocking and the asyncio client."""

    def __init__(self, client: object, loop: object) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        async def inside(*args: object, **kwargs: object) -> object:
            # called inside the running loop, as an application calls it (the native
            # transport starts a call at once only from its loop)
            return await attr(*args, **kwargs)  # type: ignore[no-any-return]

        def run(*args: object, **kwargs: object) -> object:
            return self._loop.run_until_complete(inside(*args, **kwargs))  # type: ignore[attr-defined]

        return run


def _new_loop():  # type: ignore[no-untyped-def]
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _test_transports() -> list[str]:
    """Transports the ``kv`` fixture runs on: ``FASTETCD_TEST_TRANSPORTS`` (comma-separated),
    default ``grpcio,native``; native is left out when its compiled core is unavailable
    (``FASTETCD_NO_EXTENSIONS=1``)."""
    from fastetcd import _native

    names = os.environ.get("FASTETCD_TEST_TRANSPORTS", "grpcio,native")
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    if "native" in wanted and not _native.available():
        if os.environ.get("FASTETCD_REQUIRE_EXTENSIONS"):
            raise ImportError("FASTETCD_REQUIRE_EXTENSIONS is set but fastetcd._h2 is missing")
        wanted.remove("native")
    return wanted


TEST_TRANSPORTS = _test_transports()


@pytest.fixture(params=TEST_TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport under test in turn (see ``FASTETCD_TEST_TRANSPORTS``)."""
    return request.param  # type: ignore[no-any-return]


def connected(endpoint: str, transport: str, kind: str):  # type: ignore[no-untyped-def]
    """Yield ``(client, loop)`` connected to ``endpoint`` on ``transport``: for ``kind``
    "sync" a blocking ``Client`` (loop None), for "async" an ``AsyncClient`` made inside a
    private loop that drives it; closed after."""
    import fastetcd

    if kind == "sync":
        client = fastetcd.Client(endpoint, transport=transport)
        yield client, None
        client.close()
        return
    loop = _new_loop()

    async def make() -> fastetcd.AsyncClient:
        return fastetcd.AsyncClient(endpoint, transport=transport)

    aclient = loop.run_until_complete(make())
    try:
        yield aclient, loop
    finally:
        loop.run_until_complete(aclient.close())
        loop.close()


@pytest.fixture(params=["sync", "async"])
def kv(request: pytest.FixtureRequest, etcd_server, transport: str):  # type: ignore[no-untyped-def]
    """A client connected to the session's etcd: the blocking ``Client``, then the
    ``AsyncClient`` (driven through ``SyncView``), on each transport under test."""
    for client, loop in connected(etcd_server.endpoint, transport, request.param):
        yield client if loop is None else SyncView(client, loop)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: real-cluster fault tests (tests/test_resilience.py); they run by default and in "
        "CI, `-m 'not slow'` skips them",
    )
