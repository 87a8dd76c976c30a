"""The schema's own types: what a decoded section is, beyond its ranges (test_decoding.py)."""

from __future__ import annotations

import pytest

from actoros.config import ConfigError, parse_config
from actoros.core import Backoff, SupervisorSpec

pytestmark = pytest.mark.timeout(10)

GROUP = """\
agents: [{name: a, kind: rule, rules: [{reply: x}]}]
groups: [{name: g, children: [a], backoff: %s}]
"""


def test_a_groups_backoff_is_the_cores_backoff_as_decoded() -> None:
    config = parse_config(GROUP % "{min: 0.5, max: 2, jitter: 0}", source="c.yaml")
    backoff = config.groups[0].backoff
    assert isinstance(backoff, Backoff)  # a supervisor takes it as it is, no copy
    spec = SupervisorSpec(backoff=backoff)
    assert [spec.backoff.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]


def test_a_backoff_section_still_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GROUP % "{min: 1, cap: 2}", source="c.yaml")
    assert caught.value.lines() == [
        "c.yaml:2: groups[0].backoff.cap: unknown key (known: jitter, max, min)"
    ]
