"""Chooses the compiled modules or their pure-Python twins: the codec (``fastetcd._codec`` or
``fastetcd._codec_py``), the retry core (``fastetcd._retry`` or ``fastetcd._retry_py``) and the
watch core (``fastetcd._watch`` or ``fastetcd._watch_py``); and the asyncio client
``fastetcd.aio``, compiled by Cython from its own source (the build beside ``aio.py``) or that
source itself.

``FASTETCD_NO_EXTENSIONS=1`` forces the pure twins (and the client's source);
``FASTETCD_REQUIRE_EXTENSIONS=1`` turns a failed import of a compiled module into an error
instead of a silent fallback (used by CI).
Everything else in the package reaches them through ``codec``, ``retry`` and ``watch`` here.
``EXTENSIONS_LOADED`` is True when the compiled cores are in use (the package's own
``EXTENSIONS_LOADED`` also needs the compiled client).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["codec", "retry", "watch", "EXTENSIONS_LOADED"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _load(compiled: str, pure: str, what: str) -> tuple[ModuleType, bool]:
    """Import ``fastetcd.<compiled>``, or ``fastetcd.<pure>`` per the flags."""
    if _flag("FASTETCD_NO_EXTENSIONS"):
        if _flag("FASTETCD_REQUIRE_EXTENSIONS"):
            raise ImportError("FASTETCD_NO_EXTENSIONS and FASTETCD_REQUIRE_EXTENSIONS are both set")
        return importlib.import_module(f"{__package__}.{pure}"), False
    try:
        module = importlib.import_module(f"{__package__}.{compiled}")
    except ImportError as exc:
        if _flag("FASTETCD_REQUIRE_EXTENSIONS"):
            raise ImportError(
                f"FASTETCD_REQUIRE_EXTENSIONS is set but the compiled {what} "
                f"fastetcd.{compiled} failed to import: {exc}"
            ) from exc
        return importlib.import_module(f"{__package__}.{pure}"), False
    return module, True


def load_client(name: str) -> tuple[ModuleType, bool]:
    """Import the client module ``fastetcd.<name>``: its compiled build (made by Cython from
    its source, which Python's import takes when it is there), or its source with
    ``FASTETCD_NO_EXTENSIONS``; and whether it is the build. (Called by the package before
    it imports the module.)"""
    if not _flag("FASTETCD_NO_EXTENSIONS"):
        module = importlib.import_module(f"{__package__}.{name}")
        compiled = not str(module.__file__).endswith(".py")
        if _flag("FASTETCD_REQUIRE_EXTENSIONS") and not compiled:
            raise ImportError(
                f"FASTETCD_REQUIRE_EXTENSIONS is set but fastetcd.{name} is not compiled"
            )
        return module, compiled
    full = f"{__package__}.{name}"
    spec = importlib.util.spec_from_file_location(full, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    setattr(sys.modules[__package__], name, module)
    return module, False


if TYPE_CHECKING:
    from . import _codec as codec
    from . import _retry as retry
    from . import _watch as watch

    EXTENSIONS_LOADED: bool
else:
    codec, _codec_compiled = _load("_codec", "_codec_py", "codec")
    retry, _retry_compiled = _load("_retry", "_retry_py", "retry core")
    watch, _watch_compiled = _load("_watch", "_watch_py", "watch core")
    EXTENSIONS_LOADED = _codec_compiled and _retry_compiled and _watch_compiled
