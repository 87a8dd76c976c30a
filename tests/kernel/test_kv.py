"""The key-value store: namespaces, JSON values, SQLite persistence, and the KVService actor."""

from __future__ import annotations

from pathlib import Path

import pytest

from actoros import ActorSystem
from actoros.kernel.kv import KVDelete, KVGet, KVKeys, KVPut, KVService, KVStore

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
