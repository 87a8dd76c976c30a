"""Access control: deny by default, patterns, every syscall kind, and an audit trail."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from actoros.kernel.access import (
    AccessControl,
    CallTool,
    Infer,
    PermissionDenied,
    Permissions,
    Publish,
    SendTo,
)

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """structlog at debug level for one test (tests/conftest.py configures warning)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.configure(**saved)


ACCESS = AccessControl(
    {
        "router": Permissions(
            tools=frozenset({"calculator", "kv_*"}),
            agents=frozenset({"faq"}),
            topics=frozenset({"orders.*"}),
            inference=True,
        ),
        "root": Permissions.allow_all(),
    }
)


@pytest.mark.parametrize(
    "syscall",
    [
        CallTool(tool="calculator"),
        CallTool(tool="kv_get"),
        SendTo(agent="faq"),
        Publish(topic="orders.new", message="x"),
        Infer(),
    ],
)
def test_granted_syscalls_pass(syscall: object) -> None:
    ACCESS.check("router", syscall)  # type: ignore[arg-type]
    assert ACCESS.allowed("root", syscall)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("syscall", "reason"),
    [
        (CallTool(tool="clock"), "agent 'router' may not call tool 'clock'"),
        (SendTo(agent="orders"), "agent 'router' may not message agent 'orders'"),
        (Publish(topic="billing"), "agent 'router' may not publish on topic 'billing'"),
    ],
)
def test_syscalls_outside_the_permissions_are_denied(syscall: object, reason: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        ACCESS.check("router", syscall)  # type: ignore[arg-type]
    assert str(info.value) == f"permission denied: {reason}"
    assert info.value.agent == "router"


def test_deny_by_default_for_unknown_agents_unknown_callers_and_empty_permissions() -> None:
    control = AccessControl({"mute": Permissions()})
    for agent in ("stranger", None, "mute"):
        for syscall in (
            CallTool(tool="calculator"),
            SendTo(agent="a"),
            Publish(topic="t"),
            Infer(),
        ):
            assert not control.allowed(agent, syscall)
    with pytest.raises(PermissionDenied, match="unknown caller may not call_tool 'calculator'"):
        control.check(None, CallTool(tool="calculator"))
    with pytest.raises(PermissionDenied, match="'stranger' has no permissions"):
        control.check("stranger", Infer())


def test_default_permissions_apply_to_agents_without_their_own() -> None:
    control = AccessControl(default=Permissions(tools=frozenset({"clock"})))
    control.check("anyone", CallTool(tool="clock"))
    control.grant("anyone", Permissions())
    assert not control.allowed("anyone", CallTool(tool="clock"))


def test_a_denial_is_an_audit_event_with_agent_syscall_and_target() -> None:
    with capture_logs() as logs, pytest.raises(PermissionDenied):
        ACCESS.check("router", CallTool(tool="clock", arguments={}))
    denied = [e for e in logs if e["event"] == "audit.denied"]
    assert len(denied) == 1
    assert denied[0]["agent"] == "router"
    assert denied[0]["syscall"] == "call_tool"
    assert denied[0]["target"] == "clock"
    assert denied[0]["log_level"] == "warning"


def test_allowed_syscalls_are_audited_at_debug_level(debug_logs: None) -> None:
    with capture_logs() as logs:
        ACCESS.check("router", Infer())
    assert [(e["event"], e["log_level"], e["syscall"], e["agent"]) for e in logs] == [
        ("audit.allowed", "debug", "infer", "router")
    ]


def test_permissions_are_frozen_structs() -> None:
    perms = Permissions(tools=frozenset({"a"}))
    with pytest.raises(AttributeError):
        perms.inference = True  # type: ignore[misc]
    assert perms == Permissions(tools=frozenset({"a"}))
