"""``POST /v1/completions``: the text completions request, for the raw model only.

The default endpoint of ``vllm bench serve`` and of many tools. ``prompt`` is one string or a
list of them (each is ``n`` choices, indexed ``prompt * n + j`` as the OpenAI API does);
``max_tokens`` defaults to 16 as there. ``logprobs`` (0 to 20) gives each token's log
probability and that many alternatives in the completions format (``tokens``,
``token_logprobs``, ``top_logprobs``, ``text_offset``). ``echo``, ``suffix`` and token-id
prompts are refused (400) rather than ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import bad_request
from .schema import (
    MAX_N,
    MAX_TOKENS_LIMIT,
    MAX_TOP_LOGPROBS,
    SEED_RANGE,
    StreamOptions,
    decode_body,
)

__all__ = ["CompletionRequest", "DEFAULT_COMPLETION_TOKENS", "generates", "parse_completion"]

DEFAULT_COMPLETION_TOKENS = 16  # the OpenAI API's default for /v1/completions
MAX_PROMPTS = 64


class CompletionRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: int | None = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extension: always max_tokens tokens (benchmarks)
    # known, and refused unless a no-op
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None  # vLLM's extension; vllm bench serve sends 1.0
    logit_bias: dict[str, Any] | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def parse_completion(body: bytes) -> CompletionRequest:
    request = decode_body(body, CompletionRequest, "'model' and 'prompt'")
    _check(request)
    return request


def _check(r: CompletionRequest) -> None:
    if r.echo:
        raise bad_request("'echo' is not supported", param="echo", code="unsupported_parameter")
    if r.suffix:
        raise bad_request("'suffix' is not supported", param="suffix", code="unsupported_parameter")
    if r.best_of is not None and r.best_of != (r.n or 1):
        raise bad_request(
            "'best_of' other than n is not supported", param="best_of", code="unsupported_parameter"
        )
    for field, neutral in (
        ("presence_penalty", 0),
        ("frequency_penalty", 0),
        ("repetition_penalty", 1),
    ):
        if getattr(r, field) not in (None, neutral):
            raise bad_request(
                f"'{field}' is not supported by the actoros gateway",
                param=field,
                code="unsupported_parameter",
            )
    if r.logit_bias:
        raise bad_request(
            "'logit_bias' is not supported by the actoros gateway",
            param="logit_bias",
            code="unsupported_parameter",
        )
    prompts = r.prompts
    if not prompts or len(prompts) > MAX_PROMPTS:
        raise bad_request(f"'prompt' takes 1 to {MAX_PROMPTS} strings", param="prompt")
    if r.n is not None and not 1 <= r.n <= MAX_N:
        raise bad_request(f"'n' must be from 1 to {MAX_N}", param="n")
    if len(prompts) * (r.n or 1) > MAX_N * 4:
        raise bad_request(f"at most {MAX_N * 4} choices (prompts times n) per request", param="n")
    if r.logprobs is not None and not 0 <= r.logprobs <= MAX_TOP_LOGPROBS:
        raise bad_request(f"'logprobs' must be from 0 to {MAX_TOP_LOGPROBS}", param="logprobs")
    if r.temperature is not None and not 0 <= r.temperature <= 2:
        raise bad_request("'temperature' must be between 0 and 2", param="temperature")
    if r.top_p is not None and not 0 < r.top_p <= 1:
        raise bad_request("'top_p' must be greater than 0 and at most 1", param="top_p")
    if r.max_tokens is not None and not 1 <= r.max_tokens <= MAX_TOKENS_LIMIT:
        raise bad_request(f"'max_tokens' must be from 1 to {MAX_TOKENS_LIMIT}", param="max_tokens")
    low, high = SEED_RANGE
    if r.seed is not None and not low <= r.seed <= high:
        raise bad_request(f"'seed' must be an integer from {low} to {high}", param="seed")
    stops = _stops(r)
    if len(stops) > 4 or any(not s for s in stops):
        raise bad_request("'stop' takes at most 4 non-empty strings", param="stop")
    if r.stream_options is not None and not r.stream:
        raise bad_request(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )


def _stops(r: CompletionRequest) -> tuple[str, ...]:
    if r.stop is None:
        return ()
    return (r.stop,) if isinstance(r.stop, str) else tuple(r.stop)


def generates(r: CompletionRequest) -> list[dict[str, Any]]:
    """The ``Generate`` fields of each prompt (``ModelTarget`` makes ``n`` of each)."""
    return [
        {
            "prompt": prompt,
            "max_tokens": r.max_tokens or DEFAULT_COMPLETION_TOKENS,
            "temperature": 1.0 if r.temperature is None else r.temperature,
            "top_p": 1.0 if r.top_p is None else r.top_p,
            "stop": _stops(r),
            "seed": r.seed,
            "stream": bool(r.stream),
            "ignore_eos": r.ignore_eos,
            "logprobs": r.logprobs,
        }
        for prompt in r.prompts
    ]
