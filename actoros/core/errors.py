"""Exceptions the runtime raises to user code.

Every error names the actor path involved and, where there is one, the fix.
"""

from __future__ import annotations


class ActorError(Exception):
    """Base class of the runtime's own errors."""


class AskTimeout(ActorError, TimeoutError):
    """An ``ask`` got no reply within its timeout.

    The message may still be processed later; its reply is then dropped and published as a
    ``DeadLetter`` with reason ``"late reply"``.
    """


class ActorStopped(ActorError):
    """The target actor has stopped (or stopped while the message waited in its mailbox)."""


class MailboxFull(ActorError):
    """The target's bounded mailbox refused the message (overflow ``"reject"``), or dropped it
    (``"drop_new"`` / ``"drop_oldest"``) while an ``ask`` waited for it."""


class RestartIntensityExceeded(ActorError):
    """A supervisor saw more than ``max_restarts`` restarts within ``within`` seconds.

    It stopped its children and failed with this error, escalating to its own parent.
    """
