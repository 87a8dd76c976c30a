"""Benchmarks of actoros, run by ``actoros bench ...``.

``actoros bench core`` (:mod:`actoros.bench.core`) measures the runtime itself — ask, tell,
fan-out, spawn, memory per idle actor, restart latency — side by side with raw asyncio
baselines and peer actor libraries, and writes JSON, Markdown and a PNG chart.
"""
