"""The actor's record (``core/cell.py``): spawning and its checks, names, enqueueing into a
stopped actor, and what the record costs."""

from __future__ import annotations

from typing import Any

import pytest

from actoros import Actor, ActorStopped, ActorSystem, Context, DeadLetter
from actoros.testing import capture_events

pytestmark = pytest.mark.timeout(10)


class Echo(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return message


async def test_spawning_two_children_with_one_name_is_refused(system: ActorSystem) -> None:
    await system.spawn(Echo, name="same")
    with pytest.raises(ValueError):
        await system.spawn(Echo, name="same")


@pytest.mark.parametrize("name", ["", "a/b", "/"])
async def test_an_invalid_name_is_refused(system: ActorSystem, name: str) -> None:
    with pytest.raises(ValueError, match="invalid actor name"):
        await system.spawn(Echo, name=name)


async def test_spawn_checks_the_restart_type_and_the_factory(system: ActorSystem) -> None:
    with pytest.raises(ValueError, match="restart must be one of"):
        await system.spawn(Echo, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs an Actor subclass or a factory"):
        await system.spawn(42)  # type: ignore[arg-type]
    assert system.snapshot() == []  # nothing half-made is left behind


async def test_unnamed_actors_get_distinct_names_from_their_factory(system: ActorSystem) -> None:
    first, second = await system.spawn(Echo), await system.spawn(Echo)
    assert first.name.startswith("echo-") and second.name.startswith("echo-")
    assert first.name != second.name
    assert system.lookup(first.name) is first


async def test_spawning_under_a_stopped_actor_is_refused(system: ActorSystem) -> None:
    contexts: list[Context] = []

    class Keeps(Actor):
        async def on_start(self) -> None:
            contexts.append(self.ctx)

    ref = await system.spawn(Keeps, name="keeps")
    await ref.stop()
    with pytest.raises(ActorStopped, match="cannot spawn under /keeps: it has stopped"):
        await contexts[0].spawn(Echo)


async def test_a_tell_to_a_stopped_actor_is_a_dead_letter_and_builds_no_queue(
    system: ActorSystem,
) -> None:
    ref = await system.spawn(Echo, name="gone")
    await ref.stop()
    with capture_events(system, DeadLetter) as dead:
        ref.tell("hello")
    assert [(d.message, d.reason) for d in dead] == [("hello", "recipient stopped")]
    assert ref._cell._q is None


async def test_the_record_has_no_instance_dict(system: ActorSystem) -> None:
    # 100k idle actors fit in ~650 bytes each (``actoros bench core``) because the record is
    # slots only; an attribute outside __slots__ would add a dict to every actor
    ref = await system.spawn(Echo)
    assert not hasattr(ref._cell, "__dict__")
