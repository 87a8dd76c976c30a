"""Errors an inference request can end with; each names the problem and the fix."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of the inference layer's errors."""


class PromptTooLong(InferenceError):
    """The prompt plus ``max_tokens`` does not fit the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, max_model_len: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.max_model_len = max_model_len
        super().__init__(
            f"prompt is {prompt_tokens} tokens and max_tokens is {max_tokens}, but the model's "
            f"context is {max_model_len} tokens; shorten the prompt or lower max_tokens"
        )


class Overloaded(InferenceError):
    """The waiting queue is at its bound; retry later or raise ``max_waiting``."""


class EngineUnavailable(InferenceError):
    """The engine died (or is restarting); the request did not complete. Retry it."""


class ConstraintsUnsupported(InferenceError):
    """The engine cannot enforce output constraints (its start-up canary failed, or it died
    from one); the request carried one. Send it without ``constraint`` and check the output
    yourself (agents fall back to parse-and-retry; the gateway answers 501)."""


class ConstraintInvalid(InferenceError):
    """The request's constraint cannot be honoured as given (a schema that does not compile, a
    regex the engine cannot use, a choice of nothing); fix the constraint."""
