"""``actoros bench gateway``: the OpenAI-compatible gateway under load from the ``openai`` client.

``run`` (the measurement), ``result`` (``GatewayResult``), ``report`` (Markdown and chart);
``_sweep`` is one engine's system and sweep, ``_client`` the load generator (the bench side,
and the child process it starts with ``python -m actoros.bench.gateway._client``).
"""
