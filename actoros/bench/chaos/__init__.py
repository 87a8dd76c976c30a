"""``actoros bench chaos``: the system under faults, as real ``actoros run`` processes.

``run`` (the measurement), ``result`` (``ChaosResult`` and the counts per fault), ``report``
(Markdown and chart); ``_system`` writes the system and runs it, ``_faults`` injects each
fault, ``_count`` counts what it did to the tasks.
"""
