"""Configs and readers the app tests share: the shipped fake example with its state in a
temporary folder, a slower one, a rule-agent workload from a file, the result lines of a run
and the scheduler journal's workload rows."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import msgspec

from actoros.config import Config, parse_config

REPO = Path(__file__).resolve().parents[2]


def fake_config(state: Path) -> Config:  # the shipped example, with its state in ``state``
    text = (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    text = text.replace("state_dir: ../.actoros/fake", f"state_dir: {state}")
    assert text != (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    return parse_config(text, base_dir=REPO / "configs")


def lines_of(out: io.StringIO) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


def slow_fake_config(state: Path, token_delay: float = 0.02) -> Config:
    config = fake_config(state)
    assert config.inference is not None
    inference = msgspec.structs.replace(
        config.inference, engine_args={**config.inference.engine_args, "token_delay": token_delay}
    )
    return msgspec.structs.replace(config, inference=inference)


def journal(state: Path) -> dict[str, tuple[str, str | None]]:
    """The scheduler journal's workload tasks: id -> (status, result)."""
    import sqlite3

    with sqlite3.connect(state / "scheduler.sqlite") as conn:
        rows = conn.execute("SELECT id, status, result FROM tasks WHERE kind = 'workload'")
        return {row[0].removeprefix("workload:"): (row[1], row[2]) for row in rows}


class StopAtFirstLine(io.StringIO):
    """A results file that sets ``stop`` once the first line is written (a Ctrl-C then)."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self.stop = stop

    def write(self, text: str) -> int:
        self.stop.set()
        return super().write(text)


def rule_workload(state: Path, lines: list[str]) -> Config:
    """A rule agent that knows two answers, its workload a file of plain questions."""
    tasks = state / "tasks.jsonl"
    tasks.write_text("".join(f'"{line}"\n' for line in lines), encoding="utf-8")
    return parse_config(
        f"""
system: {{state_dir: {state}}}
agents:
  - name: a
    kind: rule
    rules:
      - {{contains: {{text: "2+2"}}, reply: "4"}}
      - {{contains: {{text: France}}, reply: Paris}}
      - {{reply: dunno}}
workload: {{agent: a, file: {tasks}}}
"""
    )
