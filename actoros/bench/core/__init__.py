"""``actoros bench core``: the runtime measured side by side with raw asyncio and peers.

``run`` (the measurement), ``result`` (``CoreResult``), ``report`` (Markdown and chart);
``_raw`` and ``_workloads`` are the measured code, ``_spawn`` and ``_peers`` run in child
processes (``python -m``) through ``_subprocess``.
"""
