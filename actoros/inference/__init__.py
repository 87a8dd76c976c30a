"""Inference: the inference actor and the engines behind it (``vllm``, ``fake``).

Import from the submodules (``actoros.inference.models``, ``actoros.inference.engine``...):
this package imports nothing heavy on its own, so ``actoros model list`` stays fast and works
without vLLM installed.
"""
