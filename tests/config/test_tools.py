"""``config.tools``: tools an agent names as ``module:function``, and the config the system
runs (``normalize_tools``), which agrees with what the checks accept and refuse."""

from __future__ import annotations

import pytest

from actoros.config import (
    AgentConfig,
    Config,
    ConfigError,
    Permissions,
    ServicesConfig,
    ToolsConfig,
    normalize_tools,
)
from actoros.config.tools import direct_tool_name

pytestmark = pytest.mark.timeout(10)


def config(*agents: AgentConfig, user: dict[str, str] | None = None) -> Config:
    return Config(agents=agents, services=ServicesConfig(tools=ToolsConfig(user=user or {})))


def test_a_tool_is_registered_under_its_functions_name() -> None:
    assert direct_tool_name("shop.orders:lookup") == "lookup"


def test_direct_tools_are_declared_and_the_agents_lists_name_them_by_name() -> None:
    agent = AgentConfig(
        name="a",
        kind="rule",
        tools=("calculator", "shop.orders:lookup"),
        permissions=Permissions(tools=("shop.orders:lookup", "shop.pay:refund")),
    )
    normal = normalize_tools(config(agent, user={"greet": "shop.hello:greet"}))
    assert normal.services.tools.user == {
        "greet": "shop.hello:greet",
        "lookup": "shop.orders:lookup",
        "refund": "shop.pay:refund",
    }
    [rewritten] = normal.agents
    assert rewritten.tools == ("calculator", "lookup")
    assert rewritten.permissions.tools == ("lookup", "refund")


def test_a_config_without_direct_tools_is_left_as_it_is() -> None:
    plain = config(AgentConfig(name="a", kind="rule", tools=("calculator",)))
    assert normalize_tools(plain) == plain


def test_two_agents_naming_one_callable_share_its_tool() -> None:
    agents = [AgentConfig(name=n, kind="rule", tools=("shop.orders:lookup",)) for n in "ab"]
    normal = normalize_tools(config(*agents))
    assert normal.services.tools.user == {"lookup": "shop.orders:lookup"}
    assert [a.tools for a in normal.agents] == [("lookup",), ("lookup",)]


def test_a_name_taken_by_another_tool_is_refused_in_the_checks_words() -> None:
    agent = AgentConfig(name="a", kind="rule", tools=("shop.b:lookup",))
    with pytest.raises(ConfigError) as caught:
        normalize_tools(config(agent, user={"lookup": "shop.a:lookup"}))
    assert caught.value.lines() == [
        "config: agents[0].tools[0]: the tool name 'lookup' is taken by 'shop.a:lookup': "
        "declare this one in services.tools.user under another name"
    ]


def test_a_malformed_direct_tool_is_refused_in_the_checks_words() -> None:
    agent = AgentConfig(name="a", kind="rule", tools=("not a:module",))
    with pytest.raises(ConfigError) as caught:
        normalize_tools(config(agent))
    assert caught.value.lines() == [
        "config: agents[0].tools[0]: user tool 'not a:module' is not 'module:function'"
    ]
