"""The transport's bidi streams against a real etcd Watch stream (messages built with the
protobuf oracle: the watch codec is not part of this layer)."""

from __future__ import annotations

import asyncio

import pytest

import fastetcd
from fastetcd import errors
from fastetcd._pb import rpc_pb2

WATCH = "/etcdserverpb.Watch/Watch"


def _create(key: bytes) -> bytes:
    return rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=key)
    ).SerializeToString()


def _parse(data: bytes | None) -> rpc_pb2.WatchResponse:
    assert data is not None
    return rpc_pb2.WatchResponse.FromString(data)


def test_sync_stream_watch_roundtrip(etcd_server, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"w"
    with fastetcd.Client(etcd_server.endpoint) as client:
        stream = client._transport.stream(WATCH)
        stream.send(_create(key))
        created = _parse(stream.recv())
        assert created.created and created.watch_id >= 0
        rev = client.put(key, b"v").header.revision
        event = _parse(stream.recv())
        assert [(e.kv.key, e.kv.value, e.kv.mod_revision) for e in event.events] == [
            (key, b"v", rev)
        ]
        stream.close()
        with pytest.raises(errors.CancelledError):
            stream.recv()


def test_async_stream_watch_roundtrip(etcd_server, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"w"

    async def body() -> None:
        async with fastetcd.AsyncClient(etcd_server.endpoint) as client:
            stream = client._transport.stream(WATCH)
            await stream.send(_create(key))
            assert _parse(await stream.recv()).created
            rev = (await client.put(key, b"v")).header.revision
            event = _parse(await stream.recv())
            assert event.events[0].kv.mod_revision == rev
            stream.close()
            with pytest.raises((errors.CancelledError, asyncio.CancelledError)):
                await stream.recv()

    asyncio.run(body())
