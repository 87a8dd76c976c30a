"""``actoros bench inference``: the inference actor measured side by side with direct vLLM.

``run`` (the measurement), ``result`` (``InferenceResult``), ``report`` (Markdown and chart);
``_paths`` drives the engine the three ways (and is the gateway benchmark's in-process
reference), ``_backends`` and ``_vllm`` build the one shared engine.
"""
