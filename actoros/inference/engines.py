"""Which engines exist, and which one a config asks for: the one module that names them.

``engine.py`` is the protocol and knows no implementation; everything above ``inference``
(the app, the gateway) gets an engine from ``engine_factory(config.inference)`` and the model
id the raw model answers to from ``model_id(config.inference)``, and never names an engine
class or a default model. Engine modules are imported only when an engine is built, so
choosing the fake engine never imports vLLM.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from actoros.config import InferenceConfig

from .engine import ConstraintMemory, Engine

__all__ = ["FAKE_MODEL_ID", "context_tokens", "engine_factory", "make_engine", "model_id"]

FAKE_MODEL_ID = "fake"
"""The model id of the fake engine (it has no model of its own)."""

DEFAULT_CONTEXT = 2048
"""The context assumed when the config gives no ``max_model_len`` (the fake engine's)."""


def make_engine(kind: str, **options: Any) -> Engine:
    """Build an engine by name: ``"vllm"`` or ``"fake"``; ``options`` go to its constructor."""
    if kind == "fake":
        from .fake_engine import FakeEngine

        return FakeEngine(**options)
    if kind == "vllm":
        from .vllm_engine import VLLMEngine

        return VLLMEngine(**options)
    raise ValueError(f"unknown engine {kind!r}: use 'vllm' or 'fake'")


def engine_factory(inference: InferenceConfig) -> Callable[[], Engine]:
    """What builds the engine ``inference`` names, once per incarnation of the inference actor
    (a restart gets a fresh engine): ``fake`` only when the config says so, else vLLM with the
    configured model (default: the CPU default model). For vLLM, ``engine_args`` that
    ``VLLMEngine`` takes by name go to it (it applies its own defaults around them); the rest
    go to ``AsyncEngineArgs`` unchanged. The engines it builds share one
    ``ConstraintMemory``: an engine that died from its constraint canary leaves the next one
    serving without constraints instead of dying the same way."""
    args = dict(inference.engine_args)
    memory = ConstraintMemory()
    if inference.engine == "fake":
        return lambda: make_engine("fake", constraint_memory=memory, **args)
    from .vllm_engine import VLLMEngine  # imports no vLLM until the engine starts

    named = set(inspect.signature(VLLMEngine).parameters) - {
        "model",
        "engine_args",
        "constraint_memory",
    }
    # the config's own keys; an engine_args entry of the same name (refused by validate in a
    # config file) wins in code, as engine_args do
    direct = {"enable_prefix_caching": inference.prefix_caching, "block_size": inference.block_size}
    direct.update({k: v for k, v in args.items() if k in named})
    rest = {k: v for k, v in args.items() if k not in named}
    model = model_id(inference)
    return lambda: make_engine(
        "vllm", model=model, engine_args=rest, constraint_memory=memory, **direct
    )


def model_id(inference: InferenceConfig) -> str:
    """The id the model of ``inference`` answers to: the configured model, ``"fake"`` for the
    fake engine, else the CPU default model (what ``actoros model pull`` fetches)."""
    if inference.model:
        return inference.model
    if inference.engine == "fake":
        return FAKE_MODEL_ID
    from .models import DEFAULT_MODEL

    return DEFAULT_MODEL


def context_tokens(inference: InferenceConfig) -> int:
    """The context length the config promises before the engine starts: ``engine_args``'
    ``max_model_len``, else ``DEFAULT_CONTEXT`` (a budget for what a prompt may hold)."""
    return int(inference.engine_args.get("max_model_len", DEFAULT_CONTEXT))
