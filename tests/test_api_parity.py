"""The blocking and the asyncio client expose the same operations, with the signatures and
docstrings of the planning functions they drive."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import fastetcd
from fastetcd import _plan

OPERATIONS = ["get", "range", "get_prefix", "put", "delete", "txn", "compact"]


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_same_public_names() -> None:
    assert _public(fastetcd.Client) == _public(fastetcd.AsyncClient)
    assert set(OPERATIONS) <= _public(fastetcd.Client)


def test_signatures_and_docs_match_the_plan() -> None:
    for name in OPERATIONS:
        plan = inspect.signature(getattr(_plan, name))
        for cls in (fastetcd.Client, fastetcd.AsyncClient):
            method = getattr(cls, name)
            sig = inspect.signature(method)
            params = list(sig.parameters.values())
            assert params[0].name == "self"
            assert [(p.name, p.kind, p.default, str(p.annotation)) for p in params[1:]] == [
                (p.name, p.kind, p.default, str(p.annotation)) for p in plan.parameters.values()
            ], (cls.__name__, name)
            assert method.__doc__ and method.__doc__ == getattr(_plan, name).__doc__
        assert awaited(getattr(fastetcd.AsyncClient, name))
        assert not awaited(getattr(fastetcd.Client, name))


def test_native_get_and_put_take_the_class_methods_parameters() -> None:
    """On the native transport the client's get and put are its AsyncCaller's methods, bound
    over the class's: they take the same parameters, by the same names, with the same
    defaults (a keyword the class's method takes, the bound one takes too)."""
    import asyncio

    from fastetcd import _native

    if not _native.available():
        pytest.skip("the native transport is not built")

    async def bound() -> tuple[object, dict[str, object]]:
        async with fastetcd.AsyncClient("127.0.0.1:1", transport="native") as client:
            return client._caller, {name: getattr(client, name) for name in ("get", "put")}

    caller, methods = asyncio.run(bound())
    for name, method in methods.items():
        assert getattr(method, "__self__", None) is caller, name
        expected = list(inspect.signature(getattr(fastetcd.AsyncClient, name)).parameters.values())
        got = list(inspect.signature(method).parameters.values())  # type: ignore[arg-type]
        assert [(p.name, p.kind, p.default) for p in got] == [
            (p.name, p.kind, p.default) for p in expected[1:]
        ], name


def test_native_get_and_put_leave_overrides_and_class_patches_alone() -> None:
    """The caller's get and put are bound only over the class's own methods: a subclass's
    override, or a method replaced on the class before the client is made, is what the
    client's attribute is."""
    import asyncio
    from unittest import mock

    from fastetcd import _native

    if not _native.available():
        pytest.skip("the native transport is not built")

    class Logged(fastetcd.AsyncClient):
        def put(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            """Logs, then puts."""
            return super().put(*args, **kwargs)

    async def attributes(cls: type[fastetcd.AsyncClient]) -> tuple[object, object, object]:
        async with cls("127.0.0.1:1", transport="native") as client:
            return client._caller, client.get, client.put

    caller, get, put = asyncio.run(attributes(Logged))
    assert getattr(get, "__self__", None) is caller  # not overridden: the caller's
    assert getattr(put, "__func__", None) is Logged.put  # overridden: the subclass's
    with mock.patch.object(fastetcd.AsyncClient, "get") as patched:
        caller, get, put = asyncio.run(attributes(fastetcd.AsyncClient))
        assert get is patched and getattr(put, "__self__", None) is caller


def awaited(method: object) -> bool:
    """A coroutine function, or a function declared to return a coroutine (the AsyncClient's
    unary calls return their call already started: an AsyncCall, future and coroutine in one,
    on the native transport)."""
    if inspect.iscoroutinefunction(method):
        return True
    returns = inspect.signature(method).return_annotation  # type: ignore[arg-type]
    return str(returns).startswith("Coroutine[")


def test_every_public_name_documented() -> None:
    import fastetcd.errors
    import fastetcd.kv
    import fastetcd.txn

    for module in (fastetcd, fastetcd.errors, fastetcd.kv, fastetcd.txn):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
    for cls in (fastetcd.Client, fastetcd.AsyncClient):
        for name in _public(cls):
            assert getattr(cls, name).__doc__, f"{cls.__name__}.{name}"


# Watch methods (fastetcd.watch): same parameters and docstrings on both clients, taken from the
# planning functions of fastetcd.watch; only Client.watch / add_watch_callback return different
# handle types (Watch, AsyncWatch).
WATCH_METHODS = {
    "watch": "watch_plan",
    "watch_once": "watch_once_plan",
    "add_watch_callback": "callback_plan",
    "request_progress": "request_progress_plan",
}


def test_watch_methods_match() -> None:
    import fastetcd.watch

    for name, plan_name in WATCH_METHODS.items():
        plan = getattr(fastetcd.watch, plan_name)
        expected = [
            (p.name, p.kind, p.default, str(p.annotation))
            for p in inspect.signature(plan).parameters.values()
        ]
        for cls in (fastetcd.Client, fastetcd.AsyncClient):
            method = getattr(cls, name)
            params = list(inspect.signature(method).parameters.values())
            assert params[0].name == "self"
            got = [(p.name, p.kind, p.default, str(p.annotation)) for p in params[1:]]
            assert got == expected, (cls.__name__, name)
            assert method.__doc__ and method.__doc__ == plan.__doc__, (cls.__name__, name)
    for name in ("watch_once", "request_progress"):
        assert inspect.iscoroutinefunction(getattr(fastetcd.AsyncClient, name))
        assert not inspect.iscoroutinefunction(getattr(fastetcd.Client, name))
    for name in ("watch", "add_watch_callback"):  # return a handle at once, on both clients
        assert not inspect.iscoroutinefunction(getattr(fastetcd.AsyncClient, name))
    watch_types = (fastetcd.watch.Watch, fastetcd.watch.AsyncWatch)
    assert _public(watch_types[0]) == _public(watch_types[1])
    for cls in watch_types:
        for attr in _public(cls):
            assert getattr(cls, attr).__doc__, f"{cls.__name__}.{attr}"
    for name in fastetcd.watch.__all__:
        obj = getattr(fastetcd.watch, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"fastetcd.watch.{name} has no docstring"
