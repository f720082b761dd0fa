"""fastetcd: a fast, complete etcd v3 client for Python.

``fastetcd.Client`` (blocking) and ``fastetcd.AsyncClient`` (asyncio) expose the same
operations; requests are encoded and responses decoded by a compiled codec, and failed calls
retried by a compiled retry core (``EXTENSIONS_LOADED`` is True), or by their pure-Python
twins (``FASTETCD_NO_EXTENSIONS=1``). ``RetryPolicy`` says how calls are retried.
"""

from typing import TYPE_CHECKING

from . import errors, txn, watch
from ._impl import EXTENSIONS_LOADED, retry
from .aio import AsyncClient
from .client import Client
from .cluster import Member, MemberListResult
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
from .watch import AsyncWatch, Event, EventType, Watch, WatchFilter, WatchResponse

if TYPE_CHECKING:
    from ._retry import Backoff, RetryPolicy
else:
    RetryPolicy = retry.RetryPolicy
    Backoff = retry.Backoff

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
    "RetryPolicy",
    "Backoff",
    "Member",
    "MemberListResult",
    "Watch",
    "AsyncWatch",
    "WatchResponse",
    "Event",
    "EventType",
    "WatchFilter",
    "errors",
    "txn",
    "watch",
]
