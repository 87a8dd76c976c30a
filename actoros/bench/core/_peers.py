"""Peer actor libraries doing the same ask (and tell) workload as actoros.

Each peer runs in its own process (``python -m actoros.bench.core._peers NAME ...``) under a
timeout, so a peer that is missing, broken or hanging is reported and skipped, never fatal.
That process is pinned to one CPU (where the OS allows), see ``_pin_to_one_cpu``.

Workloads, as close to actoros' as each library allows:

* ask — a sequential request/reply loop from one client to one echo actor, for ``n``
  messages or ``budget`` seconds, whichever ends first;
* tell — ``n`` one-way messages to one counting actor, timed until it has processed all.

How each peer is driven:

* pykka — ``ThreadingActor`` (a thread per actor); ask ``ref.ask(msg)``, tell ``ref.tell(msg)``.
* thespian — ``ActorSystem("simpleSystemBase")`` (in-process, synchronous); ``asys.ask`` and
  ``asys.tell`` (then an ask for the count).
* xoscar — ``create_actor_pool(n_process=0)`` (in-process); ``await ref.echo(msg)`` and
  ``await ref.count.tell(msg)``.
* autogen_core — ``SingleThreadedAgentRuntime``; ``await runtime.send_message`` and
  ``await runtime.publish_message`` to a topic the counter subscribes to.
"""

# No ``from __future__ import annotations`` here: autogen-core reads the handler's type hints
# at runtime, and they name classes local to a function.
import argparse
import asyncio
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import msgspec
import psutil

from ._subprocess import ChildFailed, run_module, write_result

WARMUP = 200
REPO = Path(__file__).resolve().parents[3]  # actoros/bench/core/_peers.py -> the checkout


class PeerSample(msgspec.Struct, frozen=True):
    """What one peer measured; rates per repeat."""

    name: str
    version: str
    ask_rt_per_s: list[float]
    tell_msg_per_s: list[float] = []
    loop: str | None = None


class PeerResult(msgspec.Struct, frozen=True):
    """A peer's outcome in the report: ``ok`` with samples, or ``skipped``/``failed`` + why."""

    name: str
    status: str
    version: str | None = None
    reason: str | None = None
    ask_rt_per_s: list[float] = []
    tell_msg_per_s: list[float] = []


# peer name -> (import name, distribution name)
PEERS: dict[str, tuple[str, str]] = {
    "pykka": ("pykka", "pykka"),
    "thespian": ("thespian", "thespian"),
    "xoscar": ("xoscar", "xoscar"),
    "autogen_core": ("autogen_core", "autogen-core"),
}


def _timed_loop(n: int, budget: float, call: Callable[[int], Any]) -> float:
    """Calls per second of ``call(i)`` for ``n`` calls or ``budget`` seconds."""
    for i in range(WARMUP):
        call(i)
    done = 0
    start = perf_counter()
    while done < n:
        for i in range(done, min(done + 256, n)):
            if call(i) != i:
                raise AssertionError("peer ask returned the wrong reply")
        done = min(done + 256, n)
        if perf_counter() - start > budget:
            break
    return done / (perf_counter() - start)


async def _timed_loop_async(n: int, budget: float, call: Callable[[int], Any]) -> float:
    for i in range(WARMUP):
        await call(i)
    done = 0
    start = perf_counter()
    while done < n:
        for i in range(done, min(done + 256, n)):
            if await call(i) != i:
                raise AssertionError("peer ask returned the wrong reply")
        done = min(done + 256, n)
        if perf_counter() - start > budget:
            break
    return done / (perf_counter() - start)


# -- pykka ------------------------------------------------------------------------------------


def _pykka(n: int, repeats: int, budget: float) -> tuple[list[float], list[float]]:
    import pykka

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    class Counter(pykka.ThreadingActor):
        def __init__(self, expected: int, done: threading.Event) -> None:
            super().__init__()
            self.expected, self.done, self.count = expected, done, 0

        def on_receive(self, message: Any) -> None:
            self.count += 1
            if self.count == self.expected:
                self.done.set()

    asks, tells = [], []
    for _ in range(repeats):
        ref = Echo.start()
        try:
            asks.append(_timed_loop(n, budget, ref.ask))
        finally:
            ref.stop()
        done = threading.Event()
        counter = Counter.start(n, done)
        try:
            start = perf_counter()
            for i in range(n):
                counter.tell(i)
            if not done.wait(timeout=max(10.0, 5 * budget)):
                raise TimeoutError("pykka tell: the counter did not finish")
            tells.append(n / (perf_counter() - start))
        finally:
            counter.stop()
    return asks, tells


# -- thespian ---------------------------------------------------------------------------------


def _thespian(n: int, repeats: int, budget: float) -> tuple[list[float], list[float]]:
    from thespian.actors import Actor as ThespianActor
    from thespian.actors import ActorExitRequest
    from thespian.actors import ActorSystem as ThespianSystem

    class Echo(ThespianActor):  # type: ignore[misc]
        def receiveMessage(self, message: Any, sender: Any) -> None:
            if not isinstance(message, ActorExitRequest):
                self.send(sender, message)

    @dataclass
    class Count:
        pass

    class Counter(ThespianActor):  # type: ignore[misc]
        count = 0

        def receiveMessage(self, message: Any, sender: Any) -> None:
            if isinstance(message, Count):
                self.send(sender, self.count)
            elif isinstance(message, int):
                self.count += 1

    asys = ThespianSystem("simpleSystemBase")
    asks, tells = [], []
    try:
        for _ in range(repeats):
            echo = asys.createActor(Echo)

            def call(i: int, echo: Any = echo) -> Any:
                return asys.ask(echo, i, 5.0)

            asks.append(_timed_loop(n, budget, call))
            asys.tell(echo, ActorExitRequest())
            counter = asys.createActor(Counter)
            start = perf_counter()
            for i in range(n):
                asys.tell(counter, i)
            count = asys.ask(counter, Count(), max(10.0, 5 * budget))
            if count != n:
                raise AssertionError(f"thespian tell: counted {count} of {n}")
            tells.append(n / (perf_counter() - start))
            asys.tell(counter, ActorExitRequest())
    finally:
        asys.shutdown()
    return asks, tells


# -- xoscar -----------------------------------------------------------------------------------


async def _xoscar_async(n: int, repeats: int, budget: float) -> tuple[list[float], list[float]]:
    import xoscar as xo

    class Echo(xo.Actor):  # type: ignore[misc]
        def __init__(self) -> None:
            self.n = 0

        async def echo(self, message: Any) -> Any:
            return message

        def count(self, message: Any) -> None:
            self.n += 1

        def total(self) -> int:
            return self.n

    asks, tells = [], []
    pool = await xo.create_actor_pool("127.0.0.1", n_process=0)
    async with pool:
        for r in range(repeats):
            ref = await xo.create_actor(Echo, address=pool.external_address, uid=f"echo-{r}")
            asks.append(await _timed_loop_async(n, budget, ref.echo))
            tell = ref.count.tell
            start = perf_counter()
            for i in range(n):
                await tell(i)
            deadline = start + max(10.0, 5 * budget)
            while await ref.total() < n:
                if perf_counter() > deadline:
                    raise TimeoutError("xoscar tell: the actor did not finish")
                await asyncio.sleep(0.0005)
            tells.append(n / (perf_counter() - start))
            await xo.destroy_actor(ref)
    return asks, tells


# -- autogen-core -----------------------------------------------------------------------------


async def _autogen_async(n: int, repeats: int, budget: float) -> tuple[list[float], list[float]]:
    from autogen_core import (
        AgentId,
        MessageContext,
        RoutedAgent,
        SingleThreadedAgentRuntime,
        TopicId,
        TypeSubscription,
        message_handler,
    )

    @dataclass
    class Ping:
        value: int

    @dataclass
    class Tick:
        value: int

    processed = [0]

    class Echo(RoutedAgent):
        def __init__(self) -> None:
            super().__init__("echo")

        @message_handler
        async def on_ping(self, message: Ping, ctx: MessageContext) -> Ping:
            return message

    class Counter(RoutedAgent):
        def __init__(self) -> None:
            super().__init__("counter")

        @message_handler
        async def on_tick(self, message: Tick, ctx: MessageContext) -> None:
            processed[0] += 1

    asks, tells = [], []
    for _ in range(repeats):
        runtime = SingleThreadedAgentRuntime()
        await Echo.register(runtime, "echo", Echo)
        runtime.start()
        agent = AgentId("echo", "default")

        async def call(i: int, runtime: Any = runtime, agent: Any = agent) -> int:
            reply = await runtime.send_message(Ping(i), agent)
            return int(reply.value)

        try:
            asks.append(await _timed_loop_async(n, budget, call))
        finally:
            await runtime.stop()

        # tell = publish_message to a topic the counter subscribes to (no reply expected)
        runtime = SingleThreadedAgentRuntime()
        await Counter.register(runtime, "counter", Counter)
        await runtime.add_subscription(TypeSubscription(topic_type="ticks", agent_type="counter"))
        runtime.start()
        topic = TopicId("ticks", "default")
        processed[0] = 0
        start = perf_counter()
        for i in range(n):
            await runtime.publish_message(Tick(i), topic)
        await asyncio.wait_for(runtime.stop_when_idle(), max(10.0, 5 * budget))
        if processed[0] != n:
            raise AssertionError(f"autogen publish: processed {processed[0]} of {n}")
        tells.append(n / (perf_counter() - start))
    return asks, tells


def _run_async(fn: Callable[..., Any], *args: Any) -> tuple[list[float], list[float], str]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(fn(*args))
        return (*result, "asyncio")
    result = uvloop.run(fn(*args))
    return (*result, "uvloop")


def _measure(name: str, n: int, repeats: int, budget: float) -> PeerSample:
    dist = PEERS[name][1]
    loop: str | None = None
    if name == "pykka":
        asks, tells = _pykka(n, repeats, budget)
    elif name == "thespian":
        asks, tells = _thespian(n, repeats, budget)
    elif name == "xoscar":
        asks, tells, loop = _run_async(_xoscar_async, n, repeats, budget)
    elif name == "autogen_core":
        asks, tells, loop = _run_async(_autogen_async, n, repeats, budget)
    else:
        raise ValueError(f"unknown peer {name!r}")
    return PeerSample(name, importlib.metadata.version(dist), asks, tells, loop)


def peers_python() -> str:
    """The interpreter that runs the peers: ``$ACTOROS_PEERS_PYTHON``, else the repo's
    ``.venv-peers`` (``make setup`` builds it: autogen-core pins a protobuf that vLLM's cannot
    share a venv with), else this one."""
    chosen = os.environ.get("ACTOROS_PEERS_PYTHON")
    if chosen:
        return chosen
    candidate = REPO / ".venv-peers" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def _installed(python: str, module: str) -> bool:
    if python == sys.executable:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False
    probe = subprocess.run(
        [python, "-c", f"import importlib.util as u, sys; sys.exit(not u.find_spec({module!r}))"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


def measure_peer(name: str, n: int, repeats: int, budget: float, timeout: float) -> PeerResult:
    """Measure one peer in a subprocess; never raises for the peer's own failures."""
    module, dist = PEERS[name]
    python = peers_python()
    if not _installed(python, module):
        return PeerResult(name, "skipped", reason=f"not installed (pip install {dist})")
    args = [name, "--n", str(n), "--repeats", str(repeats), "--budget", str(budget)]
    try:
        sample: PeerSample = run_module(
            "actoros.bench.core._peers", args, timeout, PeerSample, python=python
        )
    except ChildFailed as exc:
        return PeerResult(name, "failed", reason=str(exc))
    return PeerResult(name, "ok", sample.version, None, sample.ask_rt_per_s, sample.tell_msg_per_s)


def _main() -> None:
    parser = argparse.ArgumentParser(description="Measure one peer actor library.")
    parser.add_argument("name", choices=sorted(PEERS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    _pin_to_one_cpu()
    write_result(args.result, _measure(args.name, args.n, args.repeats, args.budget))


def _pin_to_one_cpu() -> None:
    """Run this peer (all its threads) on one CPU, as actoros' single event loop runs.

    Unpinned, a thread-per-actor library is at the mercy of the scheduler: pykka's ask went
    from ~12k to ~85k round trips/s between runs here, depending on whether its two threads
    happened to share a core (a cross-core wake-up per message is slow). One CPU is both
    reproducible and the peer's best case.
    """
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    # the least busy CPU right now: another process hogging CPU 0 would halve a peer's numbers
    busy = psutil.cpu_percent(interval=0.2, percpu=True)
    os.sched_setaffinity(0, {min(allowed, key=lambda cpu: busy[cpu] if cpu < len(busy) else 0)})


if __name__ == "__main__":
    _main()
