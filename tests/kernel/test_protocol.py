"""The kernel services' protocols: tagged request unions, and what a stray message gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import msgspec
import pytest

from actoros import Actor, ActorSystem, DeadLetter, LifecycleEvent
from actoros.kernel import (
    KVKeys,
    KVRequest,
    KVService,
    ListThreads,
    ListTools,
    PubSub,
    PubSubRequest,
    Scheduler,
    SchedulerRequest,
    Stats,
    Subscribers,
    Syscall,
    ThreadRequest,
    ThreadStore,
    ToolRegistry,
    ToolRequest,
    ToolService,
)
from actoros.kernel._protocol import takes
from actoros.kernel.scheduler import Submit, Task
from actoros.testing import capture_events

pytestmark = pytest.mark.timeout(10)

UNIONS = [KVRequest, PubSubRequest, SchedulerRequest, Syscall, ThreadRequest, ToolRequest]


async def no_summary(messages: list[Any], previous: str | None) -> str:
    return previous or ""


# (the service's name in its errors, its factory and arguments, a request it answers)
SERVICES: list[tuple[str, Callable[..., Actor], tuple[Any, ...], Any]] = [
    ("KVService", KVService, (), KVKeys()),
    ("ThreadStore", ThreadStore, (no_summary,), ListThreads()),
    ("ToolService", ToolService, (ToolRegistry(),), ListTools()),
    ("PubSub", PubSub, (), Subscribers(topic="t")),
    ("Scheduler", Scheduler, ({},), Stats()),
]


@pytest.mark.parametrize("union", UNIONS, ids=lambda union: str(union).split(".")[-1])
def test_every_request_of_a_protocol_is_a_tagged_frozen_struct(union: Any) -> None:
    kinds = get_args(union)
    assert kinds and all(issubclass(kind, msgspec.Struct) for kind in kinds)
    for kind in kinds:
        config = kind.__struct_config__
        assert config.frozen and config.tag == kind.__name__, kind


def test_a_request_decodes_by_its_tag() -> None:
    raw = b'{"type": "Submit", "task": {"kind": "k", "payload": {"x": 1}}, "notify": true}'
    decoded = msgspec.json.decode(raw, type=SchedulerRequest)
    assert decoded == Submit(task=Task(kind="k", payload={"x": 1}), notify=True)
    assert msgspec.json.decode(b'{"type": "KVKeys"}', type=KVRequest) == KVKeys()


def test_takes_names_the_requests_as_prose() -> None:
    assert takes(KVRequest) == "KVGet, KVPut, KVDelete or KVKeys"
    assert takes(ToolRequest) == "CallTool or ListTools"
    assert takes(KVKeys) == "KVKeys"


@pytest.mark.parametrize("name, factory, args, request_", SERVICES, ids=[s[0] for s in SERVICES])
async def test_a_stray_message_is_refused_and_the_service_carries_on(
    system: ActorSystem,
    name: str,
    factory: Callable[..., Actor],
    args: tuple[Any, ...],
    request_: Any,
) -> None:
    """An ask fails naming what the service takes; a tell becomes a dead letter; the service
    neither fails nor restarts (its state, an in-memory store's included, is kept)."""
    ref = await system.spawn(factory, *args, name="service")
    with capture_events(system, DeadLetter, LifecycleEvent) as events:
        with pytest.raises(TypeError, match=f"^{name} cannot handle a message of type str; it "):
            await ref.ask("hello")
        ref.tell(42)
        letter = await events.wait_for(DeadLetter)
        await ref.ask(request_)  # still serving
    assert letter.message == 42 and letter.recipient is ref
    assert letter.reason.startswith(f"{name} cannot handle a message of type int; it takes ")
    assert not events.of(LifecycleEvent)
