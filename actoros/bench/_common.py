"""What every benchmark of ``actoros bench`` shares, so that each one's package holds only its
own measurement.

- **Results**: ``ResultHeader`` (who ran what, where and when), ``Result`` (plus the metrics,
  their ``Target``s and verdicts, and notes) and ``RepeatedResult`` (plus the per-repeat
  samples behind medians); ``run_header`` fills a header, ``judge`` the verdicts.
- **A run**: ``running`` quiets the runtime's logs, reports progress, writes
  ``<name>.json``, ``.md`` and ``.png`` and prints the table; ``BenchError`` is what the user
  must fix (the CLI prints it in one line, exit 2); ``load_note``, ``is_tiny``,
  ``check_repeats``, ``child_env``.
- **Engines**: ``vllm_missing`` (why the vLLM part cannot run here) and ``wait_engine_ready``.
- **Reports**: ``median``, ``percentile``; ``fmt`` for every table cell, ``goal`` and
  ``verdict`` for a target's, ``notes_section``; ``pyplot`` and ``save_chart`` for the PNG.

The options of ``actoros bench NAME`` (``--concurrency`` and its parser among them) are
declared in ``actoros.cli``, which imports a benchmark only when it runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any, Literal

import msgspec
import structlog

EngineKind = Literal["vllm", "fake"]
TINY_ENV = "ACTOROS_BENCH_TINY"  # set (not "0"): smoke-test sizes, for the tests
ENGINE_READY_TIMEOUT = 600.0  # seconds; vLLM on CPU starts in ~20-35 s here


class BenchError(Exception):
    """The benchmark cannot run as asked (no vLLM, no model...); the message says what to do."""


class Machine(msgspec.Struct, frozen=True):
    cpu_count: int
    platform: str
    processor: str
    python_implementation: str

    @classmethod
    def current(cls) -> Machine:
        """The machine this process runs on."""
        return cls(
            cpu_count=os.cpu_count() or 0,
            platform=platform.platform(),
            processor=platform.machine(),
            python_implementation=platform.python_implementation(),
        )


class Target(msgspec.Struct, frozen=True):
    """A goal for one metric: ``metric op value``, e.g. ``ask_ratio >= 0.8``."""

    op: Literal[">=", "<="]
    value: float

    def met(self, measured: float | None) -> bool | None:
        """True/False, or None when the metric was not measured in this run."""
        if measured is None or math.isnan(measured):
            return None
        return measured >= self.value if self.op == ">=" else measured <= self.value


class ResultHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The fields every benchmark's result starts with (``run_header`` fills all but
    ``benchmark``, which each result names, and ``quick``)."""

    benchmark: str
    version: str
    python: str
    loop: str
    machine: Machine
    timestamp: str
    quick: bool

    def about(self) -> str:
        """The first words of a report: versions, loop, machine and time of the run."""
        m = self.machine
        return (
            f"actoros {self.version}, Python {self.python}, loop {self.loop}, "
            f"{m.cpu_count} CPUs, {m.platform}; {self.timestamp}"
        )


class Result(ResultHeader, frozen=True, kw_only=True):
    """A header and what every benchmark reports: flat metrics, the targets some of them have,
    a verdict per target (met, missed, or None: not measured), and notes on the run."""

    metrics: dict[str, float]
    targets: dict[str, Target] = {}
    passed: dict[str, bool | None] = {}
    notes: list[str] = []


class RepeatedResult(Result, frozen=True, kw_only=True):
    """A result whose metrics are medians over ``repeats``; ``raw`` holds the samples."""

    repeats: int
    raw: dict[str, list[float]] = {}  # per-repeat samples behind each median


def run_header(loop: str) -> dict[str, Any]:
    """The fields every result starts with: versions, loop, machine and time of the run."""
    from actoros import __version__

    return {
        "version": __version__,
        "python": platform.python_version(),
        "loop": loop,
        "machine": Machine.current(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def judge(targets: Mapping[str, Target], metrics: Mapping[str, float]) -> dict[str, bool | None]:
    """Each target's verdict on ``metrics`` (None where the metric was not measured)."""
    return {key: target.met(metrics.get(key, math.nan)) for key, target in targets.items()}


def is_tiny(tiny: bool | None) -> bool:
    """``tiny`` as given, else whether ``ACTOROS_BENCH_TINY`` is set (and not ``0``)."""
    if tiny is None:
        return os.environ.get(TINY_ENV, "") not in ("", "0")
    return tiny


def check_repeats(repeats: int, notes: list[str]) -> None:
    """Refuse fewer than one repeat; note that fewer than three make noisy medians."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if repeats < 3:
        notes.append(f"only {repeats} repeat(s): medians of fewer than 3 runs are noisy")


def uvloop_note(loop: str) -> list[str]:
    """The note for a run that had no uvloop (none when it had)."""
    if loop == "uvloop":
        return []
    return ["uvloop is not installed: everything ran on the asyncio loop"]


def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def load_note(load_start: float | None, effect: str) -> list[str]:
    """The note on the machine's load over a run (none without a load average): the load at
    the start and now, then ``effect``, what that load does to this benchmark's numbers."""
    if load_start is None:
        return []
    return [
        f"load average (1 min) {load_start:.2f} at the start, {load_average():.2f} at the end, "
        f"on {os.cpu_count()} CPUs: {effect}"
    ]


def child_env(*paths: str) -> dict[str, str]:
    """This environment, with this very actoros (installed or not) and ``paths`` first on the
    ``PYTHONPATH``: for the ``python -m`` children a benchmark starts."""
    import actoros

    env = dict(os.environ)
    root = str(Path(actoros.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, *paths, env.get("PYTHONPATH")) if p)
    return env


def _console(level: int) -> dict[str, Any]:
    return {
        "processors": [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        "wrapper_class": structlog.make_filtering_bound_logger(level),
    }


class _Progress:
    """The bench's own logger, at INFO whatever structlog's configuration; resolved at each
    call so that it writes to the current stderr."""

    def _logger(self) -> Any:
        return structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            **_console(logging.INFO),
            context_class=dict,
            logger_name="actoros.bench",
        )

    def info(self, event: str, **kw: Any) -> None:
        self._logger().info(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._logger().error(event, **kw)


progress = _Progress()


@contextlib.contextmanager
def bench_logging() -> Iterator[None]:
    """The runtime's logs at ERROR and up (to stderr) for the duration of a run.

    The runtime logs a warning per actor failure and an info line per restart; printed to a
    terminal they would measure the terminal, not the runtime. So structlog's global
    configuration becomes a level filter at ERROR (its cheapest form: calls below the level
    are no-ops) while the bench reports through ``progress``, which does not depend on it. The
    log calls in the runtime still run, as they do for users who raise the level. The previous
    configuration is restored afterwards.
    """
    saved = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        **_console(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        if saved is not None:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


class Session:
    """A benchmark run in progress (see ``running``): its folder, and the machine's load at
    the start."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.table = ""
        self._started = perf_counter()
        self._load = load_average()

    def load_note(self, effect: str) -> list[str]:
        """``load_note`` over this run so far."""
        return load_note(self._load, effect)

    def write(
        self,
        result: ResultHeader,
        markdown: Callable[[Any], str],
        chart: Callable[[Any, Path], None],
    ) -> None:
        """``<benchmark>.json``, ``.md`` and ``.png`` in the run's folder."""
        name = result.benchmark
        encoded = msgspec.json.format(msgspec.json.encode(result))
        (self.out / f"{name}.json").write_bytes(encoded + b"\n")
        self.table = markdown(result)
        (self.out / f"{name}.md").write_text(self.table)
        chart(result, self.out / f"{name}.png")
        progress.info(
            "bench.done", seconds=round(perf_counter() - self._started, 1), out=str(self.out)
        )


@contextlib.contextmanager
def running(benchmark: str, out: Path, **start: Any) -> Iterator[Session]:
    """Create ``out``, quiet the runtime's logs and log ``bench.start`` with ``start``; the
    body measures and ``Session.write``s the result, whose table then goes to stdout."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with bench_logging():
        session = Session(out)
        progress.info("bench.start", benchmark=benchmark, **start, out=str(out))
        yield session
    sys.stdout.write(session.table)
    sys.stdout.flush()


def vllm_missing(model: str | None) -> str | None:
    """Why a vLLM workload on ``model`` (default: the CPU default model) cannot run here, or
    ``None``."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:  # only actoros.inference imports vllm
        return "vLLM is not installed (install the 'cpu' or 'gpu' extra)"
    from actoros.inference import models

    try:
        models.resolve(model or models.DEFAULT_MODEL)
    except models.ModelNotFound as exc:
        return f"the model is missing ({exc}); run `actoros model pull`"
    return None


async def wait_engine_ready(
    actors: Any, inference: Any, timeout: float = ENGINE_READY_TIMEOUT
) -> None:
    """Until the engine of the inference actor ``inference`` (in ``actors``) is up, as its
    ``EngineReady`` event says (``BenchError`` after ``timeout`` seconds)."""
    from actoros.inference.readiness import EngineNotReady
    from actoros.inference.readiness import wait_engine_ready as wait

    try:
        ready = await wait(actors, inference.path, timeout=timeout)
    except EngineNotReady as exc:
        raise BenchError(f"the inference actor's engine was not ready: {exc}") from None
    if not ready:
        raise BenchError("the system stopped before its inference engine was ready")


def median(samples: Sequence[float]) -> float:
    """Median of the per-repeat samples (NaN when there are none)."""
    return float(statistics.median(samples)) if samples else math.nan


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# spec -> (below this value, format, else format): digits where a small number needs them
SCALED: dict[str, tuple[float, str, str]] = {
    "rate": (100, ",.1f", ",.0f"),  # 12.3 tokens/s, 1,234 tokens/s
    "ratio": (10, ".3f", ".1f"),  # 0.975, 12.5
}


def fmt(value: float | None, spec: str) -> str:
    """A number for a report's table: ``n/a`` when missing or NaN, else formatted by ``spec``
    (a format spec such as ``",.0f"``, or a name in ``SCALED``)."""
    if value is None or math.isnan(value):
        return "n/a"
    if spec in SCALED:
        below, small, large = SCALED[spec]
        spec = small if value < below else large
    return format(value, spec)


def verdict(met: bool | None) -> str:
    """A target's status cell: pass, miss, or n/a (not measured)."""
    return "n/a" if met is None else ("pass" if met else "miss")


def goal(result: Result, key: str, spec: str) -> tuple[str, str]:
    """The target and status cells of metric ``key`` (both empty when it has no target)."""
    target = result.targets.get(key)
    if target is None:
        return "", ""
    return f"{target.op} {fmt(target.value, spec)}", verdict(result.passed.get(key))


def notes_section(notes: Sequence[str]) -> list[str]:
    """A report's closing ``## Notes`` list (nothing when there are none)."""
    return ["", "## Notes", ""] + [f"- {note}" for note in notes] if notes else []


def pyplot() -> Any:
    """``matplotlib.pyplot`` drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_chart(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
