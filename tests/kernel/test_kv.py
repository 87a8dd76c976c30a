"""The key-value store: namespaces, JSON values, SQLite persistence, and the KVService actor."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actoros import ActorSystem
from actoros.kernel.access import CallTool
from actoros.kernel.kv import (
    MAX_VALUE_BYTES,
    KVDelete,
    KVGet,
    KVKeys,
    KVPut,
    KVService,
    KVStore,
    ValueTooLarge,
)
from actoros.kernel.tools import ToolRegistry, ToolResult, ToolService, kv_tools

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("on_disk", [False, True])
def test_kv_store_namespaces_and_json_values(tmp_path: Path, on_disk: bool) -> None:
    store = KVStore(tmp_path / "kv.db" if on_disk else None)
    store.put("a", "k", {"n": [1, 2]})
    store.put("b", "k", "other")
    assert store.get("a", "k") == {"n": [1, 2]}
    assert store.get("b", "k") == "other"
    assert store.get("a", "missing", default=0) == 0
    assert store.keys("a") == ["k"]
    assert store.delete("a", "k") and not store.delete("a", "k")
    store.close()


async def test_kv_service_persists_across_a_new_actor(system: ActorSystem, tmp_path: Path) -> None:
    path = tmp_path / "state" / "kv.db"
    kv = await system.spawn(KVService, path, name="kv")
    assert await kv.ask(KVPut(key="order", value=42, namespace="shop")) is None
    assert await kv.ask(KVGet(key="order", namespace="shop")) == 42
    assert await kv.ask(KVKeys(namespace="shop")) == ["order"]
    await kv.stop()
    kv2 = await system.spawn(KVService, path, name="kv2")
    assert await kv2.ask(KVGet(key="order", namespace="shop")) == 42
    assert await kv2.ask(KVDelete(key="order", namespace="shop")) is True
    assert await kv2.ask(KVGet(key="order", namespace="shop", default="none")) == "none"
    with pytest.raises(TypeError, match="cannot handle"):
        await kv2.ask("what")
    assert await kv2.ask(KVKeys(namespace="shop")) == []  # still serving


async def test_kv_service_answers_while_the_default_executor_is_blocked(
    system: ActorSystem, tmp_path: Path
) -> None:
    # asyncio's default pool is where user code (and libraries) run blocking calls: the store
    # must not depend on it, or hung user code would starve every kv_get (issue 9, item 5)
    blocker = threading.Event()
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    stuck = loop.run_in_executor(None, blocker.wait)
    try:
        kv = await asyncio.wait_for(system.spawn(KVService, tmp_path / "kv.db", name="kv"), 5)
        for n in range(50):  # told without waiting: applied in the order they arrived
            kv.tell(KVPut(key="n", value=n))
        assert await asyncio.wait_for(kv.ask(KVGet(key="n")), 5) == 49
    finally:
        blocker.set()
        await stuck


@pytest.mark.parametrize("on_disk", [False, True])
async def test_a_value_over_the_limit_is_refused_naming_its_size_and_nothing_is_written(
    system: ActorSystem, tmp_path: Path, on_disk: bool
) -> None:
    kv = await system.spawn(KVService, tmp_path / "kv.db" if on_disk else None, max_value_bytes=64)
    await kv.ask(KVPut(key="k", value="small"))
    with pytest.raises(ValueTooLarge) as info:
        await kv.ask(KVPut(key="k", value="x" * 100))
    assert str(info.value) == (
        "kv value for 'k' is 102 bytes of JSON, over the limit of 64 bytes "
        "(services.kv.max_value_bytes)"
    )
    with pytest.raises(ValueTooLarge, match="kv key of 2,000 characters is over the limit"):
        await kv.ask(KVPut(key="k" * 2000, value=1))
    assert await kv.ask(KVGet(key="k")) == "small"  # the store serves on, unchanged
    assert await kv.ask(KVKeys()) == ["k"]


def test_the_default_value_limit_is_one_mebibyte(tmp_path: Path) -> None:
    store = KVStore(tmp_path / "kv.db")
    store.put("a", "big", "x" * (MAX_VALUE_BYTES - 2))  # its JSON: the limit exactly
    with pytest.raises(ValueTooLarge, match="1,048,577 bytes of JSON, over the limit of 1,048,576"):
        store.put("a", "big", "x" * (MAX_VALUE_BYTES - 1))
    assert len(store.get("a", "big")) == MAX_VALUE_BYTES - 2
    store.close()


async def test_kv_put_over_the_limit_is_the_tools_error_reply(system: ActorSystem) -> None:
    kv = await system.spawn(KVService, None, max_value_bytes=16)
    tools = await system.spawn(ToolService, ToolRegistry(kv_tools(kv)))
    put = CallTool(tool="kv_put", arguments={"key": "k", "value": "x" * 20})
    assert await tools.ask(put) == ToolResult(
        ok=False,
        error="kv_put: kv value for 'k' is 22 bytes of JSON, over the limit of 16 bytes "
        "(services.kv.max_value_bytes)",
    )
