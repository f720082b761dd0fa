"""fastetcd: a fast, complete etcd v3 client for Python.

``fastetcd.Client`` (blocking) and ``fastetcd.AsyncClient`` (asyncio) expose the same
operations; requests are encoded and responses decoded by a compiled codec
(``EXTENSIONS_LOADED`` is True) or by its pure-Python twin (``FASTETCD_NO_EXTENSIONS=1``).
"""

from . import errors, txn
from ._impl import EXTENSIONS_LOADED
from .aio import AsyncClient
from .client import Client
from .kv import (
    CompactResult,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnResult,
    prefix_range_end,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "EXTENSIONS_LOADED",
    "KeyValue",
    "ResponseHeader",
    "RangeResult",
    "PutResult",
    "DeleteResult",
    "TxnResult",
    "CompactResult",
    "SortTarget",
    "SortOrder",
    "prefix_range_end",
    "errors",
    "txn",
]
