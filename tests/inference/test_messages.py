"""The inference layer's messages: the actor's protocol is a union of tagged requests."""

from __future__ import annotations

from typing import get_args

import msgspec

from actoros.inference.messages import ChatMessage, Generate, InferenceRequest, InferenceStats


def test_the_inference_protocol_decodes_by_tag() -> None:
    assert get_args(InferenceRequest) == (Generate, InferenceStats)
    raw = b'{"type": "Generate", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}'
    decoded = msgspec.json.decode(raw, type=InferenceRequest)
    assert decoded == Generate(messages=(ChatMessage("user", "hi"),), max_tokens=4)
    assert msgspec.json.decode(b'{"type": "InferenceStats"}', type=InferenceRequest) == (
        InferenceStats()
    )
