"""The OpenAI-compatible API: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models`` and ``GET /health``.

``model`` names an agent: the last message (the user's turn) is sent to it as a
``UserMessage`` and its ``AgentReply`` is the completion. The agent keeps the conversation in
a thread: a request without the ``X-Actoros-Thread`` header opens a new thread, and every
answer names its thread in that header and in the body's ``thread_id`` field; send the header
back to continue the conversation (earlier messages in ``messages`` are then not needed:
the thread has them). With ``gateway.allow_raw_model``, ``model`` may also be the inference
actor's model id: then the whole ``messages`` list goes to the model (``Generate``) with the
request's sampling fields, statelessly, exactly like the OpenAI API.

``stream: true`` answers with server-sent events in the OpenAI wire format (``stream.py``).

Usage: the raw model reports the engine's token counts; an agent reports the tokens of
every model call its turn made (retries and delegated turns included; 0 for a rule agent's
turn, which calls no model).

``ignore_eos`` (vLLM's extension, raw model only): generate exactly ``max_tokens`` tokens,
for benchmarks.

The raw model also takes ``tools`` / ``tool_choice`` / ``response_format`` (``tools.py``: a
grammar constraint where the output is forced, the output read back as ``tool_calls``),
``n`` choices and ``logprobs``; ``/v1/completions`` serves it too (``completions.py``).
``/health`` is 200 only while the engine is ready.

Errors are OpenAI-style bodies (``errors.py``); the table is in docs/gateway.md.

The modules, in the order a request meets them: ``api`` (routes and handlers), ``limits``
(slots, body and request time limits), ``schema`` (the request body and the answers'
bodies), ``tools`` and ``completions`` (what the raw model takes beside), ``threads``
(whose thread an id is), ``targets`` (an agent or the raw model, the one difference between
the two paths), ``formats`` (chat or text completion bodies and chunks), ``stream`` (the SSE
answer).
"""

from .api import OpenAIAPI, raw_model_id, routes
from .schema import THREAD_HEADER

__all__ = ["THREAD_HEADER", "OpenAIAPI", "raw_model_id", "routes"]
