"""``inference.engines``: the one place that names the engines and picks one for a config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import actoros
from actoros.config import InferenceConfig
from actoros.inference import engines
from actoros.inference.engines import context_tokens, engine_factory, make_engine, model_id
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.models import DEFAULT_MODEL
from actoros.inference.vllm_engine import VLLMEngine

pytestmark = pytest.mark.timeout(10)

PACKAGE = Path(actoros.__file__).parent


def test_make_engine_builds_a_fake_engine_by_name_and_rejects_unknown_names() -> None:
    engine = make_engine("fake", max_model_len=99, max_num_seqs=7)
    assert isinstance(engine, FakeEngine)
    assert (engine.max_model_len, engine.max_num_seqs) == (99, 7)
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        make_engine("nope")


def test_the_fake_factory_builds_a_fresh_engine_with_the_configured_args_each_time() -> None:
    factory = engine_factory(
        InferenceConfig(engine="fake", engine_args={"max_model_len": 99, "token_delay": 0.5})
    )
    first, second = factory(), factory()
    assert isinstance(first, FakeEngine) and first is not second
    assert (first.max_model_len, first.token_delay) == (99, 0.5)


def test_the_vllm_factory_passes_its_named_args_by_name_and_the_rest_to_vllm() -> None:
    config = InferenceConfig(
        model="some/model", engine_args={"max_model_len": 512, "gpu_memory_utilization": 0.5}
    )
    engine = engine_factory(config)()  # built, not started: vLLM is not imported
    assert isinstance(engine, VLLMEngine)
    assert engine.model == "some/model"
    assert engine._settings["max_model_len"] == 512
    assert engine._engine_args == {"gpu_memory_utilization": 0.5}
    default = engine_factory(InferenceConfig())()
    assert isinstance(default, VLLMEngine) and default.model == DEFAULT_MODEL


def test_the_model_id_is_the_configured_model_else_fake_or_the_cpu_default() -> None:
    assert model_id(InferenceConfig(model="my/model")) == "my/model"
    assert model_id(InferenceConfig(engine="fake", model="named")) == "named"
    assert model_id(InferenceConfig(engine="fake")) == "fake"
    assert model_id(InferenceConfig()) == DEFAULT_MODEL


def test_the_context_is_the_configured_max_model_len_else_the_default() -> None:
    assert context_tokens(InferenceConfig(engine_args={"max_model_len": 4096})) == 4096
    assert context_tokens(InferenceConfig()) == engines.DEFAULT_CONTEXT


def test_the_engine_protocol_names_no_engine() -> None:
    tree = ast.parse((PACKAGE / "inference" / "engine.py").read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not imported & {"fake_engine", "vllm_engine", "models"}


@pytest.mark.parametrize("layer", ["app", "gateway"])
def test_above_inference_no_module_names_an_engine_or_the_default_model(layer: str) -> None:
    named = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in ("FakeEngine", "VLLMEngine", "DEFAULT_MODEL", "fake_engine", "vllm_engine"):
            if name in text:
                named.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert named == []
