"""Key-value result types and range options.

The result classes are produced by the codec straight from the response bytes; they are
slotted, immutable, comparable by value and picklable. Keys and values are always ``bytes``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ._impl import codec

__all__ = [
    "ResponseHeader",
    "KeyValue",
    "RangeResult",
    "PutResult",
    "DeleteResult",
    "TxnResult",
    "CompactResult",
    "SortTarget",
    "SortOrder",
    "prefix_range_end",
]

if TYPE_CHECKING:
    from ._codec import (
        CompactResult,
        DeleteResult,
        KeyValue,
        PutResult,
        RangeResult,
        ResponseHeader,
        TxnResult,
    )
else:
    ResponseHeader = codec.ResponseHeader
    KeyValue = codec.KeyValue
    RangeResult = codec.RangeResult
    PutResult = codec.PutResult
    DeleteResult = codec.DeleteResult
    TxnResult = codec.TxnResult
    CompactResult = codec.CompactResult


class SortTarget(enum.IntEnum):
    """What a range is sorted by (etcd's ``RangeRequest.SortTarget``)."""

    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class SortOrder(enum.IntEnum):
    """Sort direction of a range (etcd's ``RangeRequest.SortOrder``)."""

    NONE = 0
    ASCEND = 1
    DESCEND = 2


def prefix_range_end(prefix: bytes) -> bytes:
    """Return the range end that selects every key starting with ``prefix``.

    etcd's rule: drop trailing 0xff bytes, then add one to the last byte; a prefix made only
    of 0xff bytes (or empty) gives ``b"\\x00"``, meaning "to the end of the keyspace".
    """
    return codec.prefix_range_end(prefix)
