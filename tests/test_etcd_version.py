"""Which etcd the suite really ran against, checked and printed.

The session's ``etcd_server`` must report (``/version``, and Maintenance.Status through
etcdctl) the version its binary claims (``etcd --version``), and that binary must be
``FASTETCD_ETCD_BIN`` when that is set. CI's etcd 3.4 run also sets
``FASTETCD_EXPECT_ETCD_VERSION=3.4``, so it fails loudly if another etcd was picked up.
The plugin prints the reported version at the end of every run that used ``etcd_server``.
"""

from __future__ import annotations

import json
import os

import pytest

from fastetcd.testing import ENV_TEST_ENDPOINT, EtcdServer, etcd_version, etcdctl
from fastetcd.testing._version import parse_version

pytest_plugins = ["pytester"]

ENV_EXPECT = "FASTETCD_EXPECT_ETCD_VERSION"
"""``major.minor`` or ``major.minor.patch`` the session's etcd must report (CI sets it)."""


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def test_session_etcd_reports_the_expected_version(etcd_server: EtcdServer) -> None:
    reported = etcd_server.server_version()
    print(f"etcd_server {etcd_server.endpoint} reports etcd {_dotted(reported)}")
    assert reported >= (3, 4, 0)
    if not etcd_server.external:
        assert reported == etcd_server.version == etcd_version(etcd_server.binary)
        configured = os.environ.get("FASTETCD_ETCD_BIN")
        if configured:
            assert etcd_server.binary == os.path.abspath(os.path.expanduser(configured))
    expected = os.environ.get(ENV_EXPECT, "").strip()
    if expected:
        parts = tuple(int(p) for p in expected.lstrip("v").split("."))
        assert reported[: len(parts)] == parts, f"{ENV_EXPECT}={expected}, etcd is {reported}"


def test_maintenance_status_and_etcdctl_agree(etcd_server: EtcdServer) -> None:
    """Maintenance.Status (via etcdctl ``endpoint status``) gives the same server version,
    and the etcdctl the interop tests use is of the same minor release."""
    out = etcdctl(etcd_server, "endpoint", "status", "-w", "json")
    status = json.loads(out)[0]["Status"]
    assert parse_version(status["version"]) == etcd_server.server_version()
    if not etcd_server.external:
        ctl = os.path.join(os.path.dirname(etcd_server.binary), "etcdctl")
        assert etcd_version(ctl)[:2] == etcd_server.version[:2]


def test_plugin_prints_the_reported_version(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, etcd_server: EtcdServer
) -> None:
    pytester.makepyfile("def test_uses_server(etcd_server):\n    assert etcd_server.external\n")
    monkeypatch.setenv(ENV_TEST_ENDPOINT, etcd_server.endpoint)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:cacheprovider", "-p", "fastetcd.testing.pytest_plugin"
    )
    result.assert_outcomes(passed=1)
    version = _dotted(etcd_server.server_version())
    result.stdout.fnmatch_lines(
        [f"fastetcd: session etcd at {etcd_server.endpoint} reported version {version} (external*"]
    )


def test_parse_version() -> None:
    assert parse_version("3.4.23") == (3, 4, 23)
    assert parse_version("v3.5.17\n") == (3, 5, 17)
    with pytest.raises(ValueError):
        parse_version("not_decided")
