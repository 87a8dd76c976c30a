"""Benchmarks of actoros, run by ``actoros bench NAME`` (the one CLI, in ``actoros.cli``).

One subpackage per benchmark, each with ``run.py`` (the measurement: ``main``), ``result.py``
(its msgspec result, what goes into ``NAME.json``) and ``report.py`` (``NAME.md`` and
``NAME.png``), plus private modules where it needs more; all share ``_common.py`` (the result
header, targets, writing the files, ``BenchError``, number formatting, logging).

- ``core``: the runtime itself — ask, tell, fan-out, spawn, memory per idle actor, restart
  latency — side by side with raw asyncio baselines and peer actor libraries.
- ``inference``: one LLM engine driven three ways — direct vLLM ``AsyncLLM`` from N tasks, the
  inference actor from N agent actors, one request at a time — over a concurrency sweep.
- ``agents``: rule agents and LLM agents processing a workload end to end.
- ``gateway``: the OpenAI-compatible gateway under load from the ``openai`` client.
- ``chaos``: the system under faults, as real ``actoros run`` processes.
- ``cluster``: actoros nodes on a local Ray cluster — cross-node ask and tell against Ray's own
  actor calls, CPU-bound work on one node vs two, recovery from a killed node.
"""
