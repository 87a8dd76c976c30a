"""actoros — an operating system for LLM agents, built as an asyncio actor runtime.

Public API: import from ``actoros`` (never from deep paths).
"""

from .core import (
    Actor,
    ActorError,
    ActorInfo,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Backoff,
    ChildSpec,
    Clock,
    Context,
    DeadLetter,
    DeferredReply,
    LifecycleEvent,
    LoopClock,
    MailboxFull,
    MailboxSpec,
    ManualClock,
    RestartIntensityExceeded,
    StartChild,
    Supervisor,
    SupervisorSpec,
    Terminated,
    run,
)

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorError",
    "ActorInfo",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "Clock",
    "Context",
    "DeadLetter",
    "DeferredReply",
    "LifecycleEvent",
    "LoopClock",
    "MailboxFull",
    "MailboxSpec",
    "ManualClock",
    "RestartIntensityExceeded",
    "StartChild",
    "Supervisor",
    "SupervisorSpec",
    "Terminated",
    "__version__",
    "run",
]
