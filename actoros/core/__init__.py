"""The actor runtime: actors, refs, mailboxes, supervision. Knows nothing of LLMs."""

from .actor import Actor
from .clock import Clock, LoopClock, ManualClock
from .context import Context, DeferredReply
from .errors import ActorError, ActorStopped, AskTimeout, MailboxFull, RestartIntensityExceeded
from .mailbox import MailboxSpec
from .messages import ActorInfo, DeadLetter, LifecycleEvent, StartChild, Terminated
from .ref import ActorRef
from .supervision import Backoff, ChildSpec, Supervisor, SupervisorSpec
from .system import ActorSystem, run

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
    "run",
]
