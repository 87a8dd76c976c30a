"""Benchmarks of actoros, run by ``actoros bench ...``.

``actoros bench core`` (:mod:`actoros.bench.core`) measures the runtime itself — ask, tell,
fan-out, spawn, memory per idle actor, restart latency — side by side with raw asyncio
baselines and peer actor libraries, and writes JSON, Markdown and a PNG chart.

``actoros bench inference`` (:mod:`actoros.bench.inference`) drives one LLM engine three
ways — direct vLLM ``AsyncLLM`` from N tasks, the inference actor from N agent actors, one
request at a time — over a concurrency sweep, with vLLM's benchmark metrics.
"""
