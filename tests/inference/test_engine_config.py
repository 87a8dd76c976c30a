"""The engine's prefix-cache settings in ``inference:``: explicit keys that reach vLLM, one
place to set them (an ``engine_args`` entry of the same name is a validate error)."""

from __future__ import annotations

import pytest

from actoros.config import ConfigError, InferenceConfig, parse_config
from actoros.inference.engines import engine_factory
from actoros.inference.vllm_engine import VLLMEngine

pytestmark = pytest.mark.timeout(30)

AGENTS = """\
agents:
  - {name: faq, kind: llm}
"""


def test_prefix_caching_is_on_with_vllms_block_size_by_default() -> None:
    inference = parse_config("inference: {}\n" + AGENTS).inference
    assert inference is not None
    assert inference.prefix_caching is True and inference.block_size is None
    engine = engine_factory(inference)()
    assert isinstance(engine, VLLMEngine)
    assert engine._settings["enable_prefix_caching"] is True
    assert engine._settings["block_size"] is None  # left out: vLLM picks (128 on CPU)


def test_the_config_keys_reach_the_engine_as_vllms_arguments() -> None:
    config = parse_config("inference: {prefix_caching: false, block_size: 64}\n" + AGENTS)
    assert config.inference is not None
    engine = engine_factory(config.inference)()
    assert isinstance(engine, VLLMEngine)
    assert engine._settings["enable_prefix_caching"] is False
    assert engine._settings["block_size"] == 64
    assert "enable_prefix_caching" not in engine._engine_args


@pytest.mark.parametrize(
    ("arg", "key"), [("enable_prefix_caching", "prefix_caching"), ("block_size", "block_size")]
)
def test_an_engine_args_entry_of_a_config_key_is_one_problem_naming_the_key(
    arg: str, key: str
) -> None:
    text = f"inference:\n  engine_args:\n    {arg}: 32\n" + AGENTS
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    (line,) = caught.value.lines()
    assert line.startswith("c.yaml:3:") and f"inference.engine_args.{arg}" in line
    assert f"set inference.{key} instead of engine_args.{arg}" in line


def test_a_block_size_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="block_size"):
        parse_config("inference: {block_size: 0}\n" + AGENTS)


def test_the_fake_engine_ignores_the_prefix_cache_keys() -> None:
    factory = engine_factory(InferenceConfig(engine="fake", prefix_caching=False, block_size=32))
    assert factory().max_model_len > 0  # builds; the keys are not its constructor's
