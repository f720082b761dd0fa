"""fastetcd: a fast, complete etcd v3 client for Python.

``fastetcd.Client`` (blocking) and ``fastetcd.AsyncClient`` (asyncio) expose the same
operations; requests are encoded and responses decoded by a compiled codec, and failed calls
retried by a compiled retry core (``EXTENSIONS_LOADED`` is True), or by their pure-Python
twins (``FASTETCD_NO_EXTENSIONS=1``). ``RetryPolicy`` says how calls are retried.
"""

from typing import TYPE_CHECKING

from . import _impl, errors, txn, watch
from ._impl import retry

# the asyncio client: its compiled build, or its source (FASTETCD_NO_EXTENSIONS)
_aio, _aio_compiled = _impl.load_client("aio")

from .aio import AsyncClient  # noqa: E402
from .client import Client  # noqa: E402
from .cluster import Member, MemberListResult  # noqa: E402
from .kv import (  # noqa: E402
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
from .watch import AsyncWatch, Event, EventType, Watch, WatchFilter, WatchResponse  # noqa: E402

if TYPE_CHECKING:
    from ._retry import Backoff, RetryPolicy
else:
    RetryPolicy = retry.RetryPolicy
    Backoff = retry.Backoff

#: True when the compiled codec, retry and watch cores and the compiled asyncio client are
#: in use.
EXTENSIONS_LOADED: bool = _impl.EXTENSIONS_LOADED and _aio_compiled

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
