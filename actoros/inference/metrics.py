"""What the inference actor counts: ``InferenceMetrics`` (its answer to ``InferenceStats()``)
and ``MetricsWindow``, the counters and the sliding window behind it.

Pure data, no I/O: the actor records each finished request (``completed``) and each failed one
(``failed``); ``snapshot`` reads tokens/s over the last ``window`` seconds and TTFT p50 over the
last 1,024 first tokens.
"""

from __future__ import annotations

from collections import deque

import msgspec

__all__ = ["InferenceMetrics", "MetricsWindow"]


class InferenceMetrics(msgspec.Struct, frozen=True):
    engine_ready: bool
    waiting: int
    in_flight: int
    completed: int
    failed: int
    output_tokens: int
    tokens_per_s: float  # over the last ``window`` seconds
    ttft_p50_s: float | None
    engine_unfinished: int
    supports_constraints: bool = False  # the engine enforces Generate.constraint
    max_model_len: int = 0  # what the started engine reports (0: not started)
    max_num_seqs: int = 0


class MetricsWindow:
    """Totals since the actor started, and the recent requests over ``window`` seconds."""

    __slots__ = ("window", "completed", "failed", "output_tokens", "_recent", "_ttfts")

    def __init__(self, window: float) -> None:
        self.window = window
        self.completed = 0
        self.failed = 0
        self.output_tokens = 0
        self._recent: deque[tuple[float, int]] = deque()  # (finish time, output tokens)
        self._ttfts: deque[float] = deque(maxlen=1024)

    def record(self, now: float, tokens: int, ttft: float) -> None:
        """A request finished at ``now`` with ``tokens`` output tokens, its first after
        ``ttft`` seconds."""
        self.completed += 1
        self.output_tokens += tokens
        self._recent.append((now, tokens))
        self._ttfts.append(ttft)

    def snapshot(
        self,
        now: float,
        *,
        engine_ready: bool,
        waiting: int,
        in_flight: int,
        engine_unfinished: int,
        supports_constraints: bool = False,
        max_model_len: int = 0,
        max_num_seqs: int = 0,
    ) -> InferenceMetrics:
        recent = self._recent
        while recent and recent[0][0] < now - self.window:
            recent.popleft()
        span = min(self.window, now - recent[0][0]) if recent else 0.0
        tokens = sum(n for _, n in recent)
        ttfts = sorted(self._ttfts)
        return InferenceMetrics(
            engine_ready=engine_ready,
            waiting=waiting,
            in_flight=in_flight,
            completed=self.completed,
            failed=self.failed,
            output_tokens=self.output_tokens,
            tokens_per_s=tokens / span if span > 0 else 0.0,
            ttft_p50_s=ttfts[len(ttfts) // 2] if ttfts else None,
            engine_unfinished=engine_unfinished,
            supports_constraints=supports_constraints,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
        )
