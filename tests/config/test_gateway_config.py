"""The ``gateway:`` section: defaults, and every mistake as one problem line with its YAML
path and line — tokens, their agents, and a gateway without tokens off loopback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actoros.config import ConfigError, GatewayConfig, GatewayToken, load_config, parse_config
from actoros.config.checks import is_loopback

pytestmark = pytest.mark.timeout(30)

AGENTS = """\
inference: {engine: fake}
agents:
  - {name: echo, kind: rule, rules: [{reply: hi}]}
  - {name: faq, kind: llm}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(AGENTS + textwrap.dedent(text), source="c.yaml")
    return [line.removeprefix("c.yaml:") for line in caught.value.lines()]


def test_a_gateway_section_of_defaults() -> None:
    config = parse_config(AGENTS + "gateway: {}\n")
    assert config.gateway == GatewayConfig()
    gateway = config.gateway
    assert (gateway.host, gateway.port, gateway.tokens) == ("127.0.0.1", 8000, ())
    assert not gateway.allow_raw_model
    assert gateway.max_concurrent >= 1 and gateway.request_timeout > 0
    assert parse_config(AGENTS).gateway is None  # no section: no gateway


def test_a_full_gateway_section_decodes() -> None:
    config = parse_config(
        AGENTS
        + textwrap.dedent(
            """\
            gateway:
              host: 0.0.0.0
              port: 0
              allow_raw_model: true
              max_concurrent: 4
              request_timeout: 2.5
              tokens:
                - {name: ops, token: s3cret}
                - {name: shop, token_env: SHOP_TOKEN, agents: [echo]}
            """
        )
    )
    assert config.gateway == GatewayConfig(
        host="0.0.0.0",
        port=0,
        allow_raw_model=True,
        max_concurrent=4,
        request_timeout=2.5,
        tokens=(
            GatewayToken(name="ops", token="s3cret"),
            GatewayToken(name="shop", token_env="SHOP_TOKEN", agents=("echo",)),
        ),
    )
    assert config.gateway.tokens[0].agents == ("*",)


def test_without_tokens_the_gateway_stays_on_loopback() -> None:
    assert problems("gateway: {host: 0.0.0.0}\n") == [
        "5: gateway.host: without tokens the gateway listens on 127.0.0.1 only (host is "
        "'0.0.0.0'): add gateway.tokens or use host 127.0.0.1"
    ]
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert parse_config(AGENTS + f"gateway: {{host: '{host}'}}\n").gateway is not None


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost."]))


def test_tokens_name_known_agents_and_one_secret_each() -> None:
    lines = problems(
        """\
        gateway:
          tokens:
            - {name: a, token: x1, agents: [echo, fqa]}
            - {name: a, token: x1, token_env: X}
            - {name: c}
            - {name: d, token: y, agents: []}
        """
    )
    assert lines == [
        "7: gateway.tokens[0].agents[1]: unknown agent 'fqa' (known: echo, faq)",
        "8: gateway.tokens[1]: give exactly one of 'token' and 'token_env'",
        "8: gateway.tokens[1].name: duplicate token name 'a' (also tokens[0])",
        "8: gateway.tokens[1].token: the same token as tokens[0]",
        "9: gateway.tokens[2]: give exactly one of 'token' and 'token_env'",
        '10: gateway.tokens[3].agents: no agents: name some, or ["*"] for all',
    ]


def test_the_raw_model_needs_an_inference_section() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("gateway: {allow_raw_model: true}\n", source="c.yaml")
    assert caught.value.lines() == [
        "c.yaml:1: gateway.allow_raw_model: the raw model needs an 'inference' section"
    ]


def test_a_group_may_not_take_the_gateways_name() -> None:
    lines = problems("groups: [{name: gateway, children: [echo]}]\ngateway: {}\n")
    assert lines == ["5: groups[0].name: the name 'gateway' is the gateway actor's (/gateway)"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "gateway: {port: 70000}\n",
            "5: gateway.port: 70000 is out of range (allowed: 0 to 65535)",
        ),
        (
            "gateway: {max_concurrent: 0}\n",
            "5: gateway.max_concurrent: 0 is out of range (allowed: 1 to 100000)",
        ),
        (
            "gateway: {request_timeout: 0}\n",
            "5: gateway.request_timeout: 0 is out of range (allowed: above 0, up to 86400)",
        ),
        (
            "gateway: {max_body_bytes: 10}\n",
            "5: gateway.max_body_bytes: 10 is out of range (allowed: 1024 to 1073741824)",
        ),
        (
            "gateway: {header_timeout: 0}\n",
            "5: gateway.header_timeout: 0 is out of range (allowed: above 0, up to 3600)",
        ),
        (
            "gateway: {body_timeout: .inf}\n",
            "5: gateway.body_timeout: .inf is out of range (allowed: above 0, up to 3600)",
        ),
        (
            "gateway: {max_connections: 0}\n",
            "5: gateway.max_connections: 0 is out of range (allowed: 1 to 1000000)",
        ),
        ("gateway: {tokens: [{token: x}]}\n", "5: gateway.tokens[0]: missing required key 'name'"),
    ],
)
def test_bad_values_are_decode_problems(text: str, line: str) -> None:
    assert problems(text) == [line]


def test_an_unknown_gateway_key_lists_the_known_ones() -> None:
    assert problems("gateway: {prot: 80}\n") == [
        "5: gateway.prot: unknown key (known: allow_raw_model, body_timeout, header_timeout, "
        "host, max_body_bytes, max_concurrent, max_connections, port, request_timeout, tokens)"
    ]


def test_actoros_validate_reports_gateway_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        AGENTS + "gateway:\n  host: 0.0.0.0\n  tokens: []\n", encoding="utf-8"
    )  # no tokens on every interface
    done = subprocess.run(
        [sys.executable, "-m", "actoros", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{path}:6: gateway.host: without tokens the gateway listens on 127.0.0.1 only (host is "
        "'0.0.0.0'): add gateway.tokens or use host 127.0.0.1"
    ]
    path.write_text(
        AGENTS + "gateway:\n  host: 0.0.0.0\n  tokens: [{name: t, token_env: T, agents: [x]}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [p.path for p in caught.value.problems] == ["gateway.tokens[0].agents[0]"]
