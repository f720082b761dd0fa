"""Chooses the compiled modules or their pure-Python twins: the codec (``fastetcd._codec`` or
``fastetcd._codec_py``), the retry core (``fastetcd._retry`` or ``fastetcd._retry_py``) and the
watch core (``fastetcd._watch`` or ``fastetcd._watch_py``).

``FASTETCD_NO_EXTENSIONS=1`` forces the pure twins; ``FASTETCD_REQUIRE_EXTENSIONS=1`` turns a
failed import of a compiled module into an error instead of a silent fallback (used by CI).
Everything else in the package reaches them through ``codec``, ``retry`` and ``watch`` here.
``EXTENSIONS_LOADED`` is True when all the compiled modules are in use.
"""

from __future__ import annotations

import importlib
import os
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
