"""pytest plugin with real-etcd fixtures (entry point ``pytest11: fastetcd``).

Fixtures:

* ``etcd_server`` (session): one real :class:`~fastetcd.testing.EtcdServer` for the
  whole session, or the etcd named by ``FASTETCD_TEST_ENDPOINT``. Its extra command
  line comes from the session fixture ``etcd_server_args`` (override it in a
  ``conftest.py`` to pass e.g. ``--max-txn-ops``).
* ``etcd_prefix`` (function): a unique key prefix (bytes) per test, e.g.
  ``b"/t/test_put-1f2e3d4c5b6a/"``, so tests sharing the server never interfere.
* ``etcd_client`` / ``async_etcd_client`` (function): ``fastetcd.Client`` /
  ``fastetcd.AsyncClient`` connected to ``etcd_server``, closed after the test. The
  async one needs pytest-asyncio; without it the fixture skips the test.

The report header names the etcd binary and its ``--version``; when ``etcd_server`` was
used, the terminal summary ends with the version that server itself reported on
``/version`` (shown with ``-q`` too), so a log shows which etcd a run really talked to.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import pytest

from ._binaries import etcd_version, find_etcd_binary
from ._errors import EtcdTestingError
from ._server import ENV_TEST_ENDPOINT, EtcdServer

__all__ = [
    "async_etcd_client",
    "etcd_client",
    "etcd_prefix",
    "etcd_server",
    "etcd_server_args",
]


def pytest_report_header(config: pytest.Config) -> str:
    """Report which etcd the fixtures use (binary + version, or the external endpoint)."""
    external = os.environ.get(ENV_TEST_ENDPOINT, "").strip()
    if external:
        return f"fastetcd: external etcd at {external} ({ENV_TEST_ENDPOINT})"
    try:
        binary = find_etcd_binary()
        version = ".".join(map(str, etcd_version(binary)))
    except Exception as exc:  # a header must never break the run
        return f"fastetcd: no usable etcd ({type(exc).__name__}: {exc})"
    return f"fastetcd: etcd {version} at {binary}"


@pytest.fixture(scope="session")
def etcd_server_args() -> list[str]:
    """Extra etcd command-line arguments for ``etcd_server`` (override to customise)."""
    return []


_SERVER_REPORT = pytest.StashKey[str]()


def _describe_server(server: EtcdServer) -> str:
    try:
        reported = ".".join(map(str, server.server_version()))
    except EtcdTestingError as exc:
        reported = f"unknown ({exc})"
    if server.external:
        return (
            f"fastetcd: session etcd at {server.endpoint} reported version {reported} "
            f"(external, {ENV_TEST_ENDPOINT})"
        )
    try:
        built = ".".join(map(str, server.version))
    except Exception as exc:  # a report line must never break the fixture
        built = f"unknown ({type(exc).__name__}: {exc})"
    return (
        f"fastetcd: session etcd at {server.endpoint} reported version {reported} "
        f"(binary {server.binary}, --version {built})"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which etcd version the session's ``etcd_server`` reported (if it was used)."""
    line = config.stash.get(_SERVER_REPORT, None)
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def etcd_server(
    etcd_server_args: list[str], request: pytest.FixtureRequest
) -> Iterator[EtcdServer]:
    """One real etcd for the test session (honours ``FASTETCD_TEST_ENDPOINT``)."""
    server = EtcdServer(etcd_server_args)
    try:
        server.start()
        request.config.stash[_SERVER_REPORT] = _describe_server(server)
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest) -> bytes:
    """A key prefix unique to this test: ``b"/t/<test name>-<random hex>/"``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")[:80]
    return f"/t/{name or 'test'}-{uuid.uuid4().hex[:12]}/".encode()


def _client_class(name: str) -> Any:
    module = importlib.import_module("fastetcd")  # lazily: keeps the plugin importable
    return getattr(module, name)


@pytest.fixture
def etcd_client(etcd_server: EtcdServer) -> Iterator[Any]:
    """A ``fastetcd.Client`` connected to ``etcd_server``; closed after the test."""
    client = _client_class("Client")(etcd_server.endpoint)
    try:
        yield client
    finally:
        client.close()


async def _async_etcd_client(etcd_server: EtcdServer) -> AsyncIterator[Any]:
    """A ``fastetcd.AsyncClient`` connected to ``etcd_server``; closed after the test."""
    client = _client_class("AsyncClient")(etcd_server.endpoint)
    try:
        yield client
    finally:
        closer = getattr(client, "aclose", None) or client.close
        result = closer()
        if inspect.isawaitable(result):
            await result


def _async_etcd_client_unavailable() -> Any:
    """Skips: the ``async_etcd_client`` fixture needs pytest-asyncio."""
    pytest.skip("the async_etcd_client fixture needs pytest-asyncio (pip install pytest-asyncio)")


def _asyncio_fixture() -> Callable[..., Any] | None:
    try:
        module = importlib.import_module("pytest_asyncio")
    except ImportError:
        return None
    return cast("Callable[..., Any]", module.fixture)


_fixture = _asyncio_fixture()
async_etcd_client: Any
"""A ``fastetcd.AsyncClient`` connected to ``etcd_server`` (needs pytest-asyncio)."""
if _fixture is not None:
    async_etcd_client = _fixture(name="async_etcd_client")(_async_etcd_client)
else:
    async_etcd_client = pytest.fixture(name="async_etcd_client")(_async_etcd_client_unavailable)
del _fixture
