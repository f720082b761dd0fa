"""Cluster result types: :class:`Member` and :class:`MemberListResult` (``member_list()``).

Like the KV results they are slotted, immutable, comparable by value and picklable. They are
decoded with the generated protobuf modules in ``fastetcd._pb`` (off the KV hot path, which
never imports protobuf).
"""

from __future__ import annotations

from typing import Any

from .kv import ResponseHeader

__all__ = ["Member", "MemberListResult"]


class _Record:
    """Slotted, immutable value object: equality, hash, repr and pickling by fields."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._fields()))
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple[type[_Record], tuple[Any, ...]]:
        return (type(self), self._fields())


class Member(_Record):
    """One member of the cluster: its raft ``id``, ``name`` (empty until the member has
    started), ``peer_urls``, ``client_urls`` and whether it ``is_learner``."""

    __slots__ = ("id", "name", "peer_urls", "client_urls", "is_learner")

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    def __init__(
        self,
        id: int,  # noqa: A002 - etcd's name
        name: str,
        peer_urls: tuple[str, ...] = (),
        client_urls: tuple[str, ...] = (),
        is_learner: bool = False,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "peer_urls", tuple(peer_urls))
        object.__setattr__(self, "client_urls", tuple(client_urls))
        object.__setattr__(self, "is_learner", is_learner)


class MemberListResult(_Record):
    """The cluster's members (``members``, a tuple of :class:`Member`) and the ``header``
    of the member that answered."""

    __slots__ = ("header", "members")

    header: ResponseHeader
    members: tuple[Member, ...]

    def __init__(self, header: ResponseHeader, members: tuple[Member, ...] = ()) -> None:
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "members", tuple(members))
