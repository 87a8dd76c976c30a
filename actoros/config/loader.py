"""Reading a config: YAML with line numbers → msgspec decode → checks across fields.

The YAML is composed into a node tree first, so the line of every key and list item is known
by its path; the data is then decoded with ``msgspec.convert``, which stops at its first
error (reported with its path and line); a config that decodes is then checked across fields
and every problem found is reported together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

import msgspec
import msgspec.inspect as mi
import yaml

from .checks import check
from .problems import ConfigError, Key, Problem, line_of, render_key, split_validation_error
from .schema import Config


def load_config(path: str | Path) -> Config:
    """Read, decode and check the config file at ``path``.

    Raises ``FileNotFoundError`` when it does not exist and ``ConfigError`` (all problems)
    when it is not a valid config. Relative paths in it are resolved against its folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), [Problem("", None, "is a directory, not a config file")])
    text = path.read_text(encoding="utf-8")
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Decode and check config ``text``; ``source`` names it in problems (see ``load_config``)."""
    base = (base_dir or Path.cwd()).resolve()
    data, lines, problems = _compose(text)
    if problems:
        raise ConfigError(source, problems)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", 1, "expected a mapping of sections at the top")])
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, _decode_problems(data, str(exc), lines)) from None
    config = _resolve_paths(config, base)
    problems = list(check(config, lines))
    if problems:
        raise ConfigError(source, problems)
    return config


def _compose(text: str) -> tuple[Any, dict[Key, int], list[Problem]]:
    """Parse YAML into data plus the 1-based line of each key / list item (by path)."""
    loader = yaml.SafeLoader(text)
    try:
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
    except yaml.YAMLError as exc:
        return None, {}, [Problem("", None, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, lines, problems


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


def _decode_problems(data: dict[Any, Any], first: str, lines: dict[Key, int]) -> list[Problem]:
    """Problems of a config that did not decode, beyond msgspec's first one.

    msgspec stops at its first error; decoding each section (and each list item, such as each
    agent) on its own finds one error per section or item, so a file with mistakes in two
    agents reports both. Falls back to msgspec's first error.
    """
    problems: list[Problem] = []
    sections = {field.encode_name: field.type for field in msgspec.structs.fields(Config)}
    for key, value in data.items():
        if key not in sections:
            problems.append(_decode_problem(f"Object contains unknown field `{key}`", lines))
            continue
        kind = sections[key]
        parts: list[tuple[Key, Any, Any]] = [((key,), value, kind)]
        args = get_args(kind)
        if get_origin(kind) is tuple and args[1:] == (...,) and isinstance(value, list):
            parts = [((key, i), item, args[0]) for i, item in enumerate(value)]
        for at, part, part_type in parts:
            try:
                msgspec.convert(part, part_type)
            except msgspec.ValidationError as exc:
                problems.append(_decode_problem(str(exc), lines, at))
    return problems or [_decode_problem(first, lines)]


def _decode_problem(text: str, lines: dict[Key, int], prefix: Key = ()) -> Problem:
    message, at = split_validation_error(text)
    at = (*prefix, *at)
    unknown = re.match(r"Object contains unknown field `(?P<field>[^`]*)`", message)
    if unknown:  # point at the key itself, by name
        message = "unknown key"
        known = _keys_at(at)
        if known:
            message += f" (known: {', '.join(known)})"
        at = (*at, unknown["field"])
    else:
        message = message.replace("`", "'")
        missing = re.match(r"Object missing required field '(?P<field>[^']*)'", message)
        if missing:
            message = f"missing required key '{missing['field']}'"
    return Problem(render_key(at), line_of(lines, at), message)


def _keys_at(at: Key) -> tuple[str, ...]:
    """The keys the section at ``at`` accepts (list indexes skipped), sorted."""
    section: mi.Type | None = mi.type_info(Config)
    for step in at:
        section = _struct_in(section)
        if section is None:
            return ()
        if isinstance(step, str):
            found = [f.type for f in section.fields if f.encode_name == step]
            section = found[0] if found else None
    struct = _struct_in(section)
    return tuple(sorted(f.encode_name for f in struct.fields)) if struct else ()


def _struct_in(kind: mi.Type | None) -> mi.StructType | None:
    """The Struct inside ``kind``: itself, an item of a tuple, a member of a union."""
    if isinstance(kind, mi.StructType):
        return kind
    if isinstance(kind, mi.VarTupleType | mi.ListType):
        return _struct_in(kind.item_type)
    if isinstance(kind, mi.UnionType):
        for member in kind.types:
            struct = _struct_in(member)
            if struct is not None:
                return struct
    return None


def _resolve_paths(config: Config, base: Path) -> Config:
    def absolute(value: str) -> str:
        return str((base / Path(value).expanduser()).resolve())

    state = Path(absolute(config.system.state_dir))
    services = config.services
    scheduler = msgspec.structs.replace(
        services.scheduler,
        db=absolute(services.scheduler.db)
        if services.scheduler.db
        else str(state / "scheduler.sqlite"),
    )
    threads = msgspec.structs.replace(
        services.threads,
        db=absolute(services.threads.db) if services.threads.db else str(state / "threads.sqlite"),
    )
    workload = config.workload
    if workload is not None and workload.file is not None:
        workload = msgspec.structs.replace(workload, file=absolute(workload.file))
    return msgspec.structs.replace(
        config,
        system=msgspec.structs.replace(config.system, state_dir=str(state)),
        services=msgspec.structs.replace(services, scheduler=scheduler, threads=threads),
        workload=workload,
    )
