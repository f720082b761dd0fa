"""The asyncio client, :class:`AsyncClient`: the same methods as :class:`fastetcd.Client`,
as coroutines, over a ``grpc.aio.Channel``. Request building and response decoding live in
``_plan`` and the codec; this module only sends and receives."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TypeVar

from . import _plan
from ._base import ClientBase, doc_of
from ._plan import Call
from ._requests import BytesLike
from ._transport import AsyncTransport, open_async_transport
from .kv import (
    CompactResult,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    SortOrder,
    SortTarget,
    TxnResult,
)
from .txn import Compare, Op

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase):
    """An asyncio etcd v3 client (works on the default loop and on uvloop).

    ``Client("127.0.0.1:2379")`` or ``Client(["http://10.0.0.1:2379", ...])``; keys and values
    are ``bytes`` or ``str`` (UTF-8) and come back as ``bytes``. Options: ``timeout`` (seconds
    per call, None = none), ``max_send_bytes`` (default 2 MiB; larger requests raise
    ``RequestTooLargeError`` before sending), ``max_recv_bytes`` (default 2**31-1),
    ``keepalive_time``/``keepalive_timeout`` (HTTP/2 pings, off by default). Use it as a
    ``async with`` block or ``await`` :meth:`close`.
    """

    _transport: AsyncTransport

    def _connect(self) -> None:
        self._transport = open_async_transport(self._config, self._transport_name)

    async def _call(self, call: Call[T]) -> T:
        self._checked(call)
        return call.decode(await self._transport.unary(call.method, call.request, self._timeout))

    async def close(self) -> None:
        """Close the client's connections."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @doc_of(_plan.get)
    async def get(
        self, key: BytesLike, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None:
        return await self._call(_plan.get(key, revision=revision, serializable=serializable))

    @doc_of(_plan.range)
    async def range(
        self,
        key: BytesLike,
        range_end: BytesLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_target: SortTarget | str = SortTarget.KEY,
        sort_order: SortOrder | str = SortOrder.NONE,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> RangeResult:
        return await self._call(
            _plan.range(
                key,
                range_end,
                prefix=prefix,
                from_key=from_key,
                limit=limit,
                revision=revision,
                sort_target=sort_target,
                sort_order=sort_order,
                serializable=serializable,
                keys_only=keys_only,
                count_only=count_only,
                min_mod_revision=min_mod_revision,
                max_mod_revision=max_mod_revision,
                min_create_revision=min_create_revision,
                max_create_revision=max_create_revision,
            )
        )

    @doc_of(_plan.get_prefix)
    async def get_prefix(
        self,
        prefix: BytesLike,
        *,
        limit: int = 0,
        revision: int = 0,
        sort_target: SortTarget | str = SortTarget.KEY,
        sort_order: SortOrder | str = SortOrder.NONE,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult:
        return await self._call(
            _plan.get_prefix(
                prefix,
                limit=limit,
                revision=revision,
                sort_target=sort_target,
                sort_order=sort_order,
                serializable=serializable,
                keys_only=keys_only,
                count_only=count_only,
            )
        )

    @doc_of(_plan.put)
    async def put(
        self,
        key: BytesLike,
        value: BytesLike,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutResult:
        return await self._call(
            _plan.put(
                key,
                value,
                lease=lease,
                prev_kv=prev_kv,
                ignore_value=ignore_value,
                ignore_lease=ignore_lease,
            )
        )

    @doc_of(_plan.delete)
    async def delete(
        self,
        key: BytesLike,
        range_end: BytesLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> DeleteResult:
        return await self._call(
            _plan.delete(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        )

    @doc_of(_plan.txn)
    async def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
    ) -> TxnResult:
        return await self._call(_plan.txn(compare, success, failure))

    @doc_of(_plan.compact)
    async def compact(self, revision: int, *, physical: bool = False) -> CompactResult:
        return await self._call(_plan.compact(revision, physical=physical))
