"""Chooses the codec: the compiled one (``fastetcd._codec``) or its pure-Python twin.

``FASTETCD_NO_EXTENSIONS=1`` forces the pure twin; ``FASTETCD_REQUIRE_EXTENSIONS=1`` turns a
failed import of the compiled codec into an error instead of a silent fallback (used by CI).
Everything else in the package reaches the codec through ``codec`` here.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["codec", "EXTENSIONS_LOADED"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _load() -> tuple[ModuleType, bool]:
    if _flag("FASTETCD_NO_EXTENSIONS"):
        if _flag("FASTETCD_REQUIRE_EXTENSIONS"):
            raise ImportError("FASTETCD_NO_EXTENSIONS and FASTETCD_REQUIRE_EXTENSIONS are both set")
        from . import _codec_py

        return _codec_py, False
    try:
        from . import _codec
    except ImportError as exc:
        if _flag("FASTETCD_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "FASTETCD_REQUIRE_EXTENSIONS is set but the compiled codec "
                f"fastetcd._codec failed to import: {exc}"
            ) from exc
        from . import _codec_py

        return _codec_py, False
    return _codec, True


if TYPE_CHECKING:
    from . import _codec as codec

    EXTENSIONS_LOADED: bool
else:
    codec, EXTENSIONS_LOADED = _load()
