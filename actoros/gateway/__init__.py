"""The gateway: an actor-owned HTTP server (Starlette on uvicorn, on the actors' own loop).

``actoros run`` starts it when the config has a ``gateway:`` section. It serves

- ``openai``: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``;
- ``metrics``: ``/metrics`` in Prometheus format;
- ``live``: ``/`` (a live page of the supervision tree) and the JSON/SSE feeds behind it and
  behind ``actoros top``.

Layer: above ``agents`` (it asks agents and the inference actor), below the CLI. It never
imports the app layer (``actoros.app``): it reaches the running system through the ``Host``
protocol.
"""

from .app import build_app
from .errors import APIError
from .host import Host
from .openai import THREAD_HEADER
from .server import GatewayActor, GatewayAddress, GatewayError

__all__ = [
    "THREAD_HEADER",
    "APIError",
    "GatewayActor",
    "GatewayAddress",
    "GatewayError",
    "Host",
    "build_app",
]
