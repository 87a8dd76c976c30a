"""The pure half of ``core/supervision.py``: ``decide`` and the rules it is made of, as tables.

No actor runs here: children are plain values with a restart type, time is a number. The
behaviour of a real supervisor carrying these decisions out is in ``test_supervision.py``.
"""

from __future__ import annotations

import random

import msgspec
import pytest

from actoros.core.supervision import (
    NO_RESTARTS,
    Backoff,
    ChildSpec,
    Escalate,
    ExitKind,
    RemoveChild,
    RestartChildren,
    RestartIntensity,
    RestartType,
    Strategy,
    SupervisorSpec,
    check_restart_type,
    decide,
    restart_group,
    should_restart,
)


class Kid(msgspec.Struct, frozen=True):
    """A child as ``decide`` sees it."""

    name: str
    restart_type: RestartType = "permanent"


def kids(*specs: str) -> dict[str, Kid]:
    """``kids("a", "t:temporary")``: children in start order, by name."""
    out: dict[str, Kid] = {}
    for spec in specs:
        name, _, restart = spec.partition(":")
        out[name] = Kid(name, check_restart_type(restart or "permanent"))
    return out


def names(children: tuple[Kid, ...]) -> list[str]:
    return [c.name for c in children]


def spec(strategy: Strategy = "one_for_one", **kw: object) -> SupervisorSpec:
    return SupervisorSpec(strategy=strategy, **kw)  # type: ignore[arg-type]


# Restart type × exit kind: is there a restart at all (OTP)?
RESTARTS: dict[tuple[RestartType, ExitKind], bool] = {
    ("permanent", "normal"): True,
    ("permanent", "failure"): True,
    ("transient", "normal"): False,
    ("transient", "failure"): True,
    ("temporary", "normal"): False,
    ("temporary", "failure"): False,
}

# Children a, b, c; b exits and restarts: (stopped first, in order; started, in order).
GROUPS: dict[Strategy, tuple[list[str], list[str]]] = {
    "one_for_one": ([], ["b"]),
    "one_for_all": (["c", "a"], ["a", "b", "c"]),
    "rest_for_one": (["c"], ["b", "c"]),
}


@pytest.mark.parametrize("exit_kind", ["normal", "failure"])
@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_every_strategy_restart_type_and_exit_kind(
    strategy: Strategy, restart: RestartType, exit_kind: ExitKind
) -> None:
    children = kids("a", f"b:{restart}", "c")
    decision, after = decide(
        spec(strategy), NO_RESTARTS, children.values(), children["b"], exit_kind, 10.0
    )
    if not RESTARTS[restart, exit_kind]:
        assert decision == RemoveChild()
        assert after == NO_RESTARTS  # a removal is not a restart: it does not count
        return
    stop, start = GROUPS[strategy]
    assert isinstance(decision, RestartChildren)
    assert (names(decision.stop), names(decision.start)) == (stop, start)
    assert decision.remove == () and decision.delay == 0.0
    assert after.stamps == (10.0,)


# Children a, t (temporary), b (exits), c (transient), u (temporary): temporary siblings in the
# group are stopped for good and not started again; a transient one restarts with its group.
TEMPORARY_SIBLINGS: dict[Strategy, tuple[list[str], list[str], list[str]]] = {
    "one_for_one": ([], [], ["b"]),
    "one_for_all": (["u", "c", "t", "a"], ["u", "t"], ["a", "b", "c"]),
    "rest_for_one": (["u", "c"], ["u"], ["b", "c"]),
}


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_temporary_siblings_of_a_group_restart_are_removed(strategy: Strategy) -> None:
    children = kids("a", "t:temporary", "b", "c:transient", "u:temporary")
    decision, _ = decide(
        spec(strategy), NO_RESTARTS, children.values(), children["b"], "failure", 0.0
    )
    assert isinstance(decision, RestartChildren)
    stop, remove, start = TEMPORARY_SIBLINGS[strategy]
    assert names(decision.stop) == stop
    assert names(decision.remove) == remove
    assert names(decision.start) == start


def test_one_for_one_does_not_read_the_other_children() -> None:
    def siblings() -> list[Kid]:
        raise AssertionError("one_for_one read the sibling list")

    child = Kid("only")
    decision, _ = decide(spec(), NO_RESTARTS, iter(siblings, None), child, "failure", 0.0)
    assert decision == RestartChildren((child,))


# The window: max_restarts=3, within=5 s. (restarts already in the history, time of this exit,
# what happens, the history afterwards.)
WINDOW: list[tuple[str, tuple[float, ...], float, object, tuple[float, ...]]] = [
    ("first restart", (), 0.0, "restart", (0.0,)),
    ("exactly max_restarts in the window", (0.0, 1.0), 2.0, "restart", (0.0, 1.0, 2.0)),
    ("one more than max_restarts", (0.0, 1.0, 2.0), 3.0, Escalate(4), (0.0, 1.0, 2.0, 3.0)),
    (
        "one more, on the window's last instant",
        (0.0, 1.0, 2.0),
        4.999,
        Escalate(4),
        (0.0, 1.0, 2.0, 4.999),
    ),
    ("the oldest exactly `within` ago has left", (0.0, 1.0, 2.0), 5.0, "restart", (1.0, 2.0, 5.0)),
    ("all of them left the window", (0.0, 1.0, 2.0), 100.0, "restart", (100.0,)),
    (
        "restarts at one instant count one by one",
        (7.0, 7.0, 7.0),
        7.0,
        Escalate(4),
        (7.0, 7.0, 7.0, 7.0),
    ),
]


@pytest.mark.parametrize(
    ("history", "now", "expected", "after"),
    [row[1:] for row in WINDOW],
    ids=[row[0] for row in WINDOW],
)
def test_the_intensity_window_edges(
    history: tuple[float, ...], now: float, expected: object, after: tuple[float, ...]
) -> None:
    child = Kid("w")
    decision, intensity = decide(
        spec(max_restarts=3, within=5.0), RestartIntensity(history), [child], child, "normal", now
    )
    if expected == "restart":
        assert decision == RestartChildren((child,))
    else:
        assert decision == expected
    assert intensity.stamps == after


def test_max_restarts_zero_escalates_on_the_first_restart_but_still_removes() -> None:
    permanent, transient = Kid("p"), Kid("t", "transient")
    zero = spec(max_restarts=0)
    assert decide(zero, NO_RESTARTS, [permanent], permanent, "normal", 0.0)[0] == Escalate(1)
    assert decide(zero, NO_RESTARTS, [transient], transient, "normal", 0.0)[0] == RemoveChild()


# Backoff(min=0.1, max=1.0): the n-th restart of the window waits min * 2**(n-1), capped.
BACKOFF: list[tuple[Backoff, tuple[float, ...], float, float]] = [
    (Backoff(min=0.1, max=1.0), (), 0.0, 0.1),
    (Backoff(min=0.1, max=1.0), (0.0,), 0.1, 0.2),
    (Backoff(min=0.1, max=1.0), (0.0, 0.1), 0.2, 0.4),
    (Backoff(min=0.1, max=1.0), (0.0, 0.1, 0.2), 0.3, 0.8),
    (Backoff(min=0.1, max=1.0), (0.0, 0.1, 0.2, 0.3), 0.4, 1.0),
    (Backoff(min=0.1, max=1.0), (0.0, 0.1, 0.2, 0.3, 0.4), 0.5, 1.0),
    # only restarts still inside the window count: the doubling starts over
    (Backoff(min=0.1, max=1.0), (0.0, 0.1, 0.2, 0.3), 60.0, 0.1),
    (Backoff(min=0.1), (0.0,) * 9, 1.0, 0.1 * 2**9),  # max=0: no cap
    (Backoff(), (0.0, 0.1, 0.2), 0.3, 0.0),  # the default: no delay
]


@pytest.mark.parametrize(("backoff", "history", "now", "delay"), BACKOFF)
def test_backoff_delays_double_per_restart_in_the_window(
    backoff: Backoff, history: tuple[float, ...], now: float, delay: float
) -> None:
    child = Kid("w")
    supervisor = spec(max_restarts=100, within=30.0, backoff=backoff)
    decision, _ = decide(supervisor, RestartIntensity(history), [child], child, "failure", now)
    assert isinstance(decision, RestartChildren)
    assert decision.delay == pytest.approx(delay)


def test_backoff_jitter_spreads_the_delay_within_its_fraction_from_the_given_rng() -> None:
    child = Kid("w")
    supervisor = spec(backoff=Backoff(min=1.0, max=1.0, jitter=0.25))
    delays = []
    for seed in range(200):
        decision, _ = decide(
            supervisor, NO_RESTARTS, [child], child, "failure", 0.0, random.Random(seed)
        )
        assert isinstance(decision, RestartChildren)
        delays.append(decision.delay)
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert len(set(delays)) > 100  # spread, not one value
    again, _ = decide(supervisor, NO_RESTARTS, [child], child, "failure", 0.0, random.Random(7))
    assert isinstance(again, RestartChildren) and again.delay == delays[7]


def test_a_history_is_a_value_that_later_additions_leave_unchanged() -> None:
    one = NO_RESTARTS.add(1.0, 5.0)
    two = one.add(2.0, 5.0)
    branch = one.add(3.0, 5.0)  # from the older value: two must not see it
    assert (one.stamps, two.stamps, branch.stamps) == ((1.0,), (1.0, 2.0), (1.0, 3.0))
    assert NO_RESTARTS.stamps == () and NO_RESTARTS.in_window == 0
    assert two.add(2.5, 5.0).stamps == (1.0, 2.0, 2.5) and two.stamps == (1.0, 2.0)
    assert one == RestartIntensity((1.0,)) and hash(one) == hash(RestartIntensity((1.0,)))


def test_a_long_history_keeps_only_its_window_and_every_older_value_intact() -> None:
    values = [NO_RESTARTS]
    for t in range(1, 1001):
        values.append(values[-1].add(float(t), 10.0))
    for t in (1, 9, 10, 11, 500, 1000):
        # restarts in (t - 10, t]: the last ten, fewer at the start
        assert values[t].stamps == tuple(float(s) for s in range(max(1, t - 9), t + 1))
    assert len(values[-1]._log) < 100  # the part outside the window is dropped as it goes


SHOULD_RESTART: list[tuple[RestartType, bool, bool]] = [
    ("permanent", True, True),
    ("permanent", False, True),
    ("transient", True, False),
    ("transient", False, True),
    ("temporary", True, False),
    ("temporary", False, False),
]


@pytest.mark.parametrize(("restart", "normal", "expected"), SHOULD_RESTART)
def test_should_restart_follows_otp(restart: RestartType, normal: bool, expected: bool) -> None:
    assert should_restart(restart, normal) is expected


@pytest.mark.parametrize(
    ("strategy", "exited", "group"),
    [
        ("one_for_one", "b", "b"),
        ("one_for_all", "b", "abcd"),
        ("rest_for_one", "a", "abcd"),
        ("rest_for_one", "c", "cd"),
        ("rest_for_one", "d", "d"),
    ],
)
def test_restart_group_is_in_start_order(strategy: Strategy, exited: str, group: str) -> None:
    children = kids("a", "b", "c", "d")
    got = restart_group(strategy, children.values(), children[exited])
    assert "".join(c.name for c in got) == group


def test_an_unknown_restart_type_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="permanent, transient, temporary; got 'sometimes'"):
        check_restart_type("sometimes")
    with pytest.raises(ValueError, match="restart must be one of"):
        ChildSpec("x", Kid, restart="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SupervisorSpec(strategy="one_for_some"), "strategy must be one of"),  # type: ignore[arg-type]
        (lambda: SupervisorSpec(max_restarts=-1), "max_restarts >= 0"),
        (lambda: SupervisorSpec(within=0.0), "within > 0"),
        (
            lambda: SupervisorSpec(children=[ChildSpec("a", Kid), ChildSpec("a", Kid)]),
            "duplicate child names",
        ),
        (lambda: Backoff(min=-1.0), "must be >= 0"),
        (lambda: Backoff(jitter=1.5), "fraction in"),
        (lambda: Backoff(min=2.0, max=1.0), "below Backoff.min"),
        (lambda: ChildSpec("a", Kid, shutdown=-1.0), "shutdown must be >= 0"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
