"""The codec selector: FASTETCD_NO_EXTENSIONS forces the pure twin (and the asyncio client's
source), the compiled codec (and client) is used otherwise, and FASTETCD_REQUIRE_EXTENSIONS
turns a missing compiled codec into an error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import CODEC_IMPLS

PROBE = (
    "import fastetcd, fastetcd._impl as i, fastetcd.aio as a; "
    "print(fastetcd.EXTENSIONS_LOADED, i.codec.__name__, a.__file__.endswith('.py'), "
    "a is fastetcd.aio and fastetcd.AsyncClient is a.AsyncClient)"
)


def _probe(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASTETCD_")}
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_extensions_selects_pure_twin() -> None:
    # and the asyncio client's source, even where its compiled build sits beside it
    out = _probe(FASTETCD_NO_EXTENSIONS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "fastetcd._codec_py", "True", "True"]


def test_both_flags_together_are_an_error() -> None:
    out = _probe(FASTETCD_NO_EXTENSIONS="1", FASTETCD_REQUIRE_EXTENSIONS="1")
    assert out.returncode != 0 and "both set" in out.stderr


@pytest.mark.skipif(
    "compiled" not in dict(CODEC_IMPLS), reason="compiled codec not built in this environment"
)
def test_compiled_is_default_and_required_works() -> None:
    for env in ({}, {"FASTETCD_REQUIRE_EXTENSIONS": "1"}):
        out = _probe(**env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["True", "fastetcd._codec", "False", "True"]
