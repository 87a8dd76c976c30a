"""``actoros bench agents``: rule and LLM agents processing a workload end to end.

``run`` (the measurement), ``result`` (``AgentsResult``), ``report`` (Markdown and chart);
``_workloads`` assembles the systems from the real parts and drives them.
"""
