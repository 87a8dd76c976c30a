"""YAML text → plain data, and the line of every key and list item (by its path).

Composing is bounded (``_BoundedLoader``): nodes nest at most ``MAX_DEPTH`` deep and aliases
may add at most ``MAX_ALIAS_NODES`` nodes to the tree they expand to, so a YAML bomb (a
billion laughs, an alias tree, an alias of the node that holds it) is one problem line, not
gigabytes or a ``RecursionError``: everything after composing (the line index, construction,
decoding) walks a tree that is at most that deep and that large. A scalar PyYAML cannot
convert (``2024-13-45``, ``!!bool maybe``, an int of 5,000 digits) is a problem at its line.
"""

from __future__ import annotations

from typing import Any, ClassVar

import yaml

from .problems import Key, Problem, render_key

MAX_DEPTH = 100
"""How deep nodes may nest (the schema needs under 10; payloads and engine_args a few more)."""

MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may add to the tree, in all: ``<<: *defaults`` in every agent
of a large system is thousands; a billion laughs is a billion."""


def compose(text: str) -> tuple[Any, dict[Key, int], list[Problem]]:
    """Parse YAML into data plus the 1-based line of each key / list item (by path)."""
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        lines: dict[Key, int] = {(): node.start_mark.line + 1}
        problems: list[Problem] = []
        _index(node, (), lines, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        return None, {}, [Problem("", line, f"invalid YAML: {what or exc}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: the character {chr(exc.character)!r} is not allowed"
        return None, {}, [Problem("", line, message)]
    except yaml.YAMLError as exc:
        return None, {}, [Problem("", None, f"invalid YAML: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines, problems


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing within ``MAX_DEPTH`` and ``MAX_ALIAS_NODES``.

    While composing, the size (nodes, aliases expanded) and height of every finished node are
    kept, so an alias costs what its node expands to the moment it is met; an alias of a node
    that is not finished yet is one of the nodes that contain it (a recursive alias).

    Its constructors are its own: libraries patch ``SafeLoader``'s table for the whole process
    (lm-format-enforcer, which vLLM's structured outputs import, turns every timestamp into a
    string), and a config must read the same before and after an engine has started.
    """

    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **yaml.SafeLoader.yaml_constructors,
        "tag:yaml.org,2002:timestamp": yaml.constructor.SafeConstructor.construct_yaml_timestamp,
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        self._shapes: dict[int, tuple[int, int]] = {}  # id(node) -> (size, height)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            shape = self._shapes.get(id(node))
            if shape is None:
                raise self._refuse(
                    f"alias *{event.anchor} is inside the node it names (a recursive alias)",
                    event,
                )
            self._expanded += shape[0]
            if self._expanded > MAX_ALIAS_NODES:
                raise self._refuse(
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes (a YAML bomb?): "
                    "write the values out",
                    event,
                )
            if self._depth + shape[1] > MAX_DEPTH:
                raise self._refuse(f"alias *{event.anchor} nests {_too_deep()}", event)
            return node
        if self._depth >= MAX_DEPTH:
            raise self._refuse(f"this value nests {_too_deep()}", self.peek_event())
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        shapes = [self._shapes[id(child)] for child in children]
        self._shapes[id(node)] = (
            1 + sum(size for size, _ in shapes),
            1 + max((height for _, height in shapes), default=0),
        )
        return node

    @staticmethod
    def _refuse(message: str, event: yaml.Event) -> yaml.composer.ComposerError:
        return yaml.composer.ComposerError(None, None, message, event.start_mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with a scalar it cannot convert (``2024-13-45``, ``!!float abc``, an int
        of 5000 digits) a problem at its line rather than a ``ValueError``."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, OverflowError, AttributeError) as exc:  # from its parsing
            if not isinstance(node, yaml.ScalarNode):
                raise
            kind = node.tag.rpartition(":")[2]
            if kind == "int" and len(node.value) > 4000:
                message = f"a number of {len(node.value)} digits is too long"
            else:
                shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
                reason = f" ({exc})" if isinstance(exc, ValueError) else ""
                message = f"{shown!r} is not a valid {kind}{reason}: quote it to make it text"
            raise yaml.constructor.ConstructorError(None, None, message, node.start_mark) from None


def _too_deep() -> str:
    return f"more than {MAX_DEPTH} levels deep: flatten it"


def _index(node: yaml.Node, at: Key, lines: dict[Key, int], problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key in seen and key != "<<":
                problems.append(
                    Problem(render_key((*at, key)), key_node.start_mark.line + 1, "duplicate key")
                )
            seen.add(key)
            lines.setdefault((*at, key), key_node.start_mark.line + 1)
            _index(value_node, (*at, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*at, index)] = item.start_mark.line + 1
            _index(item, (*at, index), lines, problems)
