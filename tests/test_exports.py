"""The public API: every documented name is importable from ``actoros`` and listed, sorted."""

from __future__ import annotations

import importlib.metadata

import pytest

import actoros

# The public contract of docs/architecture.md (``from actoros import ...``).
PUBLIC = [
    "Actor",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "Context",
    "DeadLetter",
    "DeferredReply",
    "LifecycleEvent",
    "MailboxFull",
    "MailboxSpec",
    "ManualClock",
    "RestartIntensityExceeded",
    "StartChild",
    "SupervisorSpec",
    "Terminated",
    "run",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_importable_from_actoros_and_listed_in_all(name: str) -> None:
    assert hasattr(actoros, name), f"actoros.{name} is missing"
    assert name in actoros.__all__, f"{name} is not in actoros.__all__"


def test_all_is_sorted() -> None:
    assert actoros.__all__ == sorted(actoros.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(actoros.__all__) == len(set(actoros.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in actoros.__all__ if not hasattr(actoros, name)]
    assert missing == []


def test_installed_version_is_the_package_version() -> None:
    # pyproject.toml reads the version from actoros.__version__: one value, two places to see it
    try:
        installed = importlib.metadata.version("actoros")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("actoros is not installed; run `make setup`")
    assert installed == actoros.__version__
