"""What is wrong in a config, and where: ``Problem`` and ``ConfigError``."""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

Key = tuple[str | int, ...]
"""A YAML path as steps: ("agents", 2, "tools", 0)."""


def render_key(at: Key) -> str:
    """("agents", 2, "tools", 0) → "agents[2].tools[0]"."""
    out = ""
    for step in at:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


_AT = re.compile(r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`(?P<at>\$[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.(?P<field>[^.\[]+)|\[(?P<index>\d+|\.\.\.)\]")


def split_validation_error(text: str) -> tuple[str, Key]:
    """msgspec's "Expected `int`, got `str` - at `$.a[0].b`" → (message, ("a", 0, "b"))."""
    found = _AT.match(text)
    assert found is not None  # the pattern matches any text
    message, at = found["message"], found["at"] or "$"
    if found["key"]:  # "- at `key` in `$.x`": a key of the mapping at x (YAML: 1, yes, ~)
        message += " for a key (quote the key)"
    key: list[str | int] = []
    for step in _STEP.finditer(at[1:]):
        if step["field"] is not None:
            key.append(step["field"])
        elif step["index"] == "...":  # a dict value: msgspec does not say which key
            break
        else:
            key.append(int(step["index"]))
    return message, tuple(key)


def line_of(lines: dict[Key, int], at: Key) -> int | None:
    """The line of ``at``, else of its nearest ancestor that has one."""
    for end in range(len(at), -1, -1):
        if at[:end] in lines:
            return lines[at[:end]]
    return None


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong in a config: where (YAML ``path``, 1-based ``line``) and what."""

    path: str
    line: int | None
    message: str

    def render(self, source: str) -> str:
        """One line: ``source:line: path: message`` (parts that are unknown left out).

        Characters that are not printable (a newline in a value, a terminal escape in a file
        name) are written as escapes, so a problem is always one harmless line.
        """
        where = source if self.line is None else f"{source}:{self.line}"
        what = f"{self.path}: {self.message}" if self.path else self.message
        return one_line(f"{where}: {what}")


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists all that were found, each once (a key
    written three times on one line is one problem line, not two equal ones)."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(dict.fromkeys(problems))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, ``source:line: path: message``."""
        return [problem.render(self.source) for problem in self.problems]
