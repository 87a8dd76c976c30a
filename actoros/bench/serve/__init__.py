"""``actoros bench serve``: the gateway against ``vllm serve`` under vLLM's own benchmark client.

``run`` (the measurement), ``result`` (``ServeResult``), ``report`` (Markdown and chart);
``_servers`` starts the two servers and the client (``vllm bench serve``) as child processes.
"""
