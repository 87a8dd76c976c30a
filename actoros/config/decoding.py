"""msgspec's first error → problems in words: one per section or list item, at their lines.

``Expected `int` <= 10000`` becomes the value and the whole range allowed ("1000000 is out of
range (allowed: 1 to 10000)"); an unknown key lists the keys its section accepts.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, get_args, get_origin

import msgspec
import msgspec.inspect as mi

from .problems import Key, Problem, line_of, render_key, split_validation_error
from .schema import Config


def decode_problems(data: dict[Any, Any], first: str, lines: dict[Key, int]) -> list[Problem]:
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
                problems.append(_decode_problem(str(exc), lines, at, data))
    return problems or [_decode_problem(first, lines, (), data)]


def _decode_problem(
    text: str, lines: dict[Key, int], prefix: Key = (), data: Any = None
) -> Problem:
    message, at = split_validation_error(text)
    at = _entry_at(message, (*prefix, *at), data)
    bounded = out_of_range(message, at, data)
    if bounded is not None:
        return Problem(render_key(at), line_of(lines, at), bounded)
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


_BOUND = re.compile(r"Expected `(int|float)` (>=|>|<=|<) ")


def out_of_range(message: str, at: Key, data: Any, root: type = Config) -> str | None:
    """msgspec's ``message`` about a bound, at ``at`` in ``data`` (decoded as ``root``), as
    the value given and the whole range allowed; ``None`` when it is not about a bound."""
    if not _BOUND.match(message):
        return None
    number = _type_at(at, root)
    if not isinstance(number, mi.IntType | mi.FloatType):
        return None
    return f"{_show(_value_at(data, at))} is out of range (allowed: {_allowed(number)})"


def _entry_at(message: str, at: Key, data: Any) -> Key:
    """``at`` and the key of the mapping's value out of range, when ``at`` is a mapping of
    numbers (``resources: {CPU: -1}``): msgspec names no key of a mapping (``[...]``)."""
    kind = _type_at(at, Config)
    mapping = _value_at(data, at)
    if not (
        _BOUND.match(message)
        and isinstance(kind, mi.DictType)
        and isinstance(kind.value_type, mi.IntType | mi.FloatType)
        and isinstance(mapping, dict)
    ):
        return at
    for key, value in mapping.items():
        if isinstance(key, str) and not _within(value, kind.value_type):
            return (*at, key)
    return at


def _within(value: Any, kind: mi.IntType | mi.FloatType) -> bool:
    """Whether ``value`` is in the range of ``kind`` (anything but a number: yes, here)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return True
    if value != value:  # nan is in no range
        return False
    return (
        (kind.ge is None or value >= kind.ge)
        and (kind.gt is None or value > kind.gt)
        and (kind.le is None or value <= kind.le)
        and (kind.lt is None or value < kind.lt)
    )


def _keys_at(at: Key) -> tuple[str, ...]:
    """The keys the section at ``at`` accepts (list indexes skipped), sorted."""
    struct = _struct_in(_type_at(at, Config))
    return tuple(sorted(f.encode_name for f in struct.fields)) if struct else ()


@functools.cache
def _type_info(root: type) -> mi.Type:
    return mi.type_info(root)


def _type_at(at: Key, root: type) -> mi.Type | None:
    """The schema's type of the value at ``at`` (list indexes skipped, a mapping's key: its
    values' type); a union's number member when it has one (``max_in_flight: int | None``)."""
    kind: mi.Type | None = _type_info(root)
    for step in at:
        if isinstance(kind, mi.DictType):  # a key of a mapping: its values' type
            kind = kind.value_type
            continue
        section = _struct_in(kind)
        if section is None:
            return None
        if isinstance(step, str):
            found = [f.type for f in section.fields if f.encode_name == step]
            kind = found[0] if found else None
    if isinstance(kind, mi.UnionType):
        numbers = [t for t in kind.types if isinstance(t, mi.IntType | mi.FloatType)]
        return numbers[0] if numbers else kind
    return kind


def _value_at(data: Any, at: Key) -> Any:
    for step in at:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _allowed(kind: mi.IntType | mi.FloatType) -> str:
    """ "1 to 10000", "above 0, up to 86400", "1 or more": a number type's range in words."""

    def number(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    low = None if kind.ge is None else number(kind.ge)
    if kind.gt is not None:
        low = f"above {number(kind.gt)}"
    high = None if kind.le is None else number(kind.le)
    if kind.lt is not None:
        high = f"below {number(kind.lt)}"
    if high is None:
        return f"{low} or more"
    if low is None:
        return f"up to {high}"
    if kind.ge is not None and kind.le is not None:
        return f"{low} to {high}"
    return f"{low}, up to {high}"


def _show(value: Any) -> str:
    """A number as YAML spells it (``.inf``), shortened when it has many digits."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"a number of {len(hex(abs(value))) - 2} hex digits"  # past float and str()
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= 15 else f"{value:.3g}"
    return repr(value)


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
