"""Shared fixtures. The etcd server fixtures come from fastetcd's own pytest plugin
(``fastetcd.testing.pytest_plugin``, registered as a pytest11 entry point)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

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
