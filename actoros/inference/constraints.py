"""Output constraints, for the engines: checking one, and producing an output that meets one.

vLLM enforces a ``Constraint`` while it decodes (structured outputs: a grammar masks the tokens
that would break it). The fake engine has no model to mask, so it builds one output that meets
the constraint directly, deterministically from a seeded ``random.Random``: ``satisfy``.

What ``satisfy`` supports (a demanding test's JSON Schema, not all of the standard):

- ``type`` (one or a list), ``const``, ``enum``, ``anyOf`` / ``oneOf`` (one branch is taken;
  ``oneOf`` branches are expected to exclude one another, as a tagged union's ``const`` tags
  do), ``allOf`` (merged), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), recursion;
- objects: ``properties``, ``required`` (always filled), optional properties (sometimes),
  ``additionalProperties`` for required names not in ``properties``;
- arrays: ``items``, ``prefixItems``, ``minItems`` / ``maxItems``, ``uniqueItems``;
- strings: ``minLength`` / ``maxLength``, ``pattern`` (as a regex below), ``format``
  (``date``, ``date-time``, ``time``, ``email``, ``uuid``, ``uri``, ``ipv4``, ``hostname``);
- numbers: ``minimum`` / ``maximum``, their ``exclusive`` forms, ``multipleOf``.

Regexes: Python's own parser reads the pattern; literals, classes, ``.``, groups,
alternation, repeats and back-references are generated; lookarounds and word boundaries are
not. Every regex output is checked with ``re.fullmatch`` before it is returned, and what
cannot be generated raises ``Unsatisfiable``: an error, never an output that breaks the
constraint.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
import uuid
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from .messages import Choice, Constraint, JsonObject, JsonSchema, Regex

__all__ = ["Unsatisfiable", "check", "describe", "satisfy"]

WORDS = ("alpha", "beta", "gamma", "delta", "order", "note", "value", "item", "north", "blue")

JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
"""What the fake engine writes for ``JsonObject`` (any object would do; this one is plain)."""

MAX_DEPTH = 12  # nesting beyond which only required parts are generated
MAX_OUTPUT_CHARS = 1 << 16
"""The longest output ``satisfy`` writes: a schema or regex that demands more (``minItems:
1000000000``, nested repeats) is ``Unsatisfiable``, not a stalled engine."""
UNSUPPORTED_KEYWORDS = ("not", "if", "contains", "dependentSchemas", "dependentRequired")


class Unsatisfiable(ValueError):
    """No output can be produced for this constraint (it is invalid, or uses a feature the
    generator does not have); the message says which."""


def describe(constraint: Constraint) -> str:
    """A short name of the constraint for logs and errors."""
    match constraint:
        case JsonSchema():
            return "json_schema"
        case JsonObject():
            return "json_object"
        case Regex():
            return "regex"
        case Choice():
            return "choice"
    raise TypeError(f"not a constraint: {constraint!r}")


def check(constraint: Constraint) -> None:
    """Raise ``Unsatisfiable`` for a constraint no engine could honour: a schema that is not
    a JSON object (or ``true``), a regex that does not compile, a choice of nothing."""
    match constraint:
        case JsonSchema(schema=schema):
            if not isinstance(schema, dict):
                raise Unsatisfiable("a JSON schema must be a JSON object")
            try:
                json.dumps(schema)
            except (TypeError, ValueError) as exc:
                raise Unsatisfiable(f"the JSON schema is not JSON ({exc})") from None
        case Regex(pattern=pattern):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise Unsatisfiable(f"the regex {pattern!r} does not compile: {exc}") from None
        case Choice(options=options):
            if not options:
                raise Unsatisfiable("a choice needs at least one option")


def satisfy(constraint: Constraint, rng: random.Random) -> str:
    """One output text that meets ``constraint`` (``rng`` makes it deterministic)."""
    check(constraint)
    match constraint:
        case JsonSchema(schema=schema):
            try:
                return json.dumps(_Json(schema, rng).value(schema, 0), ensure_ascii=False)
            except Unsatisfiable:
                raise
            except RecursionError:
                raise Unsatisfiable("the schema nests too deeply to write") from None
            except (TypeError, ValueError, AttributeError) as exc:  # e.g. minLength: "ten"
                raise Unsatisfiable(f"the JSON schema is malformed ({exc})") from None
        case JsonObject():
            return json.dumps(_Json(JSON_OBJECT_SCHEMA, rng).value(JSON_OBJECT_SCHEMA, 0))
        case Regex(pattern=pattern):
            return regex_text(pattern, rng)
        case Choice(options=options):
            return rng.choice(options)
    raise TypeError(f"not a constraint: {constraint!r}")


# -- JSON Schema ------------------------------------------------------------------------------


class _Json:
    """Builds one value of a schema; ``root`` resolves local ``$ref``s."""

    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.budget = MAX_OUTPUT_CHARS  # characters (roughly) still allowed

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise Unsatisfiable(f"the schema asks for more than {MAX_OUTPUT_CHARS} characters")

    def value(self, schema: Any, depth: int) -> Any:
        self.spend(1)
        if schema is True or schema == {}:
            return self.rng.choice(WORDS)
        if schema is False:
            raise Unsatisfiable("the schema `false` admits no value")
        if not isinstance(schema, dict):
            raise Unsatisfiable(f"a schema must be an object or a boolean, not {schema!r}")
        if depth > 64:
            raise Unsatisfiable("the schema requires unbounded nesting")
        for keyword in UNSUPPORTED_KEYWORDS:
            if keyword in schema:
                raise Unsatisfiable(f"the fake engine cannot generate for `{keyword}`")
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(_merge(rest, self.resolve(schema["$ref"])), depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if "$ref" in part:
                    part = self.resolve(part["$ref"])
                merged = _merge(merged, part)
            return self.value(merged, depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not branches:
                    raise Unsatisfiable(f"`{key}` with no branch admits no value")
                rest = {k: v for k, v in schema.items() if k != key}
                branch = self.rng.choice(branches)
                if "$ref" in branch:
                    branch = self.resolve(branch["$ref"])
                return self.value(_merge(rest, branch), depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise Unsatisfiable("an empty `enum` admits no value")
            return self.rng.choice(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            if not kind:
                raise Unsatisfiable("an empty `type` list admits no value")
            kind = self.rng.choice(kind)
        if kind is None:
            kind = _implied_type(schema)
        match kind:
            case "object":
                return self.object(schema, depth)
            case "array":
                return self.array(schema, depth)
            case "string":
                return self.string(schema)
            case "integer":
                return self.integer(schema)
            case "number":
                return self.number(schema)
            case "boolean":
                return self.rng.random() < 0.5
            case "null":
                return None
        raise Unsatisfiable(f"unknown JSON Schema type {kind!r}")

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise Unsatisfiable(f"only local $ref ('#/...') is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else ():
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise Unsatisfiable(f"$ref {ref!r} points at nothing in the schema")
        return node

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required: list[str] = list(schema.get("required", ()))
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            # optional parts sometimes, and never deep down (a recursive schema must end)
            if name in required or (depth < MAX_DEPTH // 2 and self.rng.random() < 0.3):
                out[name] = self.value(sub, depth + 1)
        for name in required:
            if name not in out:
                if extra is False:
                    raise Unsatisfiable(f"{name!r} is required but no property may be added")
                out[name] = self.value(extra, depth + 1)
        low = int(schema.get("minProperties", 0))
        self.spend(low)
        for name, sub in properties.items():
            if len(out) >= low:
                break
            out.setdefault(name, self.value(sub, depth + 1))
        n = 0
        while len(out) < low:
            if extra is False:
                raise Unsatisfiable("`minProperties` exceeds the properties allowed")
            out.setdefault(f"extra_{n}", self.value(extra, depth + 1))
            n += 1
        if len(out) > int(schema.get("maxProperties", len(out))):
            raise Unsatisfiable("the required properties exceed `maxProperties`")
        return out

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix: list[Any] = list(schema.get("prefixItems", ()))
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-2019: items as a tuple
            prefix, items = items, schema.get("additionalItems", True)
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        if low > high:
            raise Unsatisfiable("`minItems` exceeds `maxItems`")
        self.spend(low)
        if depth >= MAX_DEPTH:
            count = low
        else:
            count = self.rng.randint(max(low, min(1, high)), min(high, max(low, 2)))
        unique = bool(schema.get("uniqueItems"))
        out: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            if sub is False:
                raise Unsatisfiable("`minItems` asks for more items than the schema admits")
            for _ in range(20):
                item = self.value(sub, depth + 1)
                if not unique or all(_json_key(item) != _json_key(o) for o in out):
                    break
            else:
                raise Unsatisfiable("cannot find enough distinct items for `uniqueItems`")
            out.append(item)
        return out

    def string(self, schema: dict[str, Any]) -> str:
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 24)))
        if low > high:
            raise Unsatisfiable("`minLength` exceeds `maxLength`")
        self.spend(low)
        if "pattern" in schema:
            # a JSON Schema pattern searches: a full match of it is a match, anchored or not
            for _ in range(20):
                text = regex_text(schema["pattern"], self.rng, max(self.budget, 0))
                if low <= len(text) <= high:
                    return text
            raise Unsatisfiable("cannot meet `pattern` within the length bounds")
        fmt = schema.get("format")
        if fmt is not None:
            text = self.formatted(fmt)
            if text is not None:
                if not low <= len(text) <= int(schema.get("maxLength", len(text))):
                    raise Unsatisfiable(f"a `{fmt}` string cannot meet the length bounds")
                return text
        text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 3)))
        while len(text) < low:
            text += self.rng.choice(string.ascii_lowercase)
        return text[:high]

    def formatted(self, fmt: str) -> str | None:
        r = self.rng
        match fmt:
            case "date":
                return f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
            case "date-time":
                day = f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
                return f"{day}T12:{r.randint(0, 59):02d}:00Z"
            case "time":
                return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
            case "email":
                return f"{r.choice(WORDS)}@example.com"
            case "uuid":
                return str(uuid.UUID(int=r.getrandbits(128), version=4))
            case "uri" | "url":
                return f"https://example.com/{r.choice(WORDS)}"
            case "ipv4":
                return ".".join(str(r.randint(1, 254)) for _ in range(4))
            case "hostname":
                return f"{r.choice(WORDS)}.example.com"
        return None  # an unknown format is an annotation: any string

    def integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if step is not None:
            if not float(step).is_integer() or step <= 0:
                raise Unsatisfiable("an integer `multipleOf` must be a positive integer")
            step = int(step)
            first, last = -(-low // step), high // step
            if first > last:
                raise Unsatisfiable("no multiple of `multipleOf` lies within the bounds")
            return self.rng.randint(first, last) * step
        if low > high:
            raise Unsatisfiable("the number's bounds admit no value")
        return self.rng.randint(low, high)

    def number(self, schema: dict[str, Any]) -> int | float:
        if schema.get("multipleOf") is not None:
            step = float(schema["multipleOf"])
            low, high = _bounds(schema, integer=False)
            first, last = math.ceil(low / step), math.floor(high / step)
            if first > last:
                raise Unsatisfiable("no multiple of `multipleOf` lies within the bounds")
            value = self.rng.randint(first, last) * step
            return int(value) if value.is_integer() else value
        low, high = _bounds(schema, integer=False)
        if low > high:
            raise Unsatisfiable("the number's bounds admit no value")
        # a half-step value inside the bounds (JSON-exact), else the lower bound
        value = math.floor(self.rng.uniform(low, high) * 2) / 2
        if not low <= value <= high:
            value = low
        return int(value) if float(value).is_integer() else value


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[Any, Any]:
    """The inclusive range a number may take (a sensible window when unbounded)."""
    low = schema.get("minimum")
    high = schema.get("maximum")
    emin, emax = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(emin, bool):  # draft 4: a flag on minimum
        emin, low = (low if emin else None), (None if emin else low)
    if isinstance(emax, bool):
        emax, high = (high if emax else None), (None if emax else high)
    nudge = 1 if integer else 0.5
    if emin is not None:
        low = max(low, emin + nudge) if low is not None else emin + nudge
    if emax is not None:
        high = min(high, emax - nudge) if high is not None else emax - nudge
    if low is None and high is None:
        low, high = 0, 100
    elif low is None:
        low = high - 100
    elif high is None:
        high = low + 100
    if integer:
        return math.ceil(low), math.floor(high)
    return low, high


def _implied_type(schema: dict[str, Any]) -> str:
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
        return "number"
    return "string"


def _merge(base: dict[str, Any], extra: Any) -> dict[str, Any]:
    """``base`` and ``extra`` together (as ``allOf`` would want): properties and required
    are united, other keywords of ``extra`` win."""
    if extra is True:
        return dict(base)
    if not isinstance(extra, dict):
        raise Unsatisfiable(f"a schema must be an object or a boolean, not {extra!r}")
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and key in merged:
            merged[key] = {**merged[key], **value}
        elif key == "required" and key in merged:
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# -- regular expressions ----------------------------------------------------------------------

PRINTABLE = string.ascii_letters + string.digits + " _-.,:;!?@#/"
CATEGORY_CHARS = {
    sre.CATEGORY_DIGIT: string.digits,
    sre.CATEGORY_NOT_DIGIT: string.ascii_letters + " _-",
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
    sre.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre.CATEGORY_NOT_WORD: " -.,:;!?",
}
MAX_EXTRA_REPEATS = 3  # an unbounded repeat (``*``, ``+``) adds at most this many


def regex_text(pattern: str, rng: random.Random, limit: int = MAX_OUTPUT_CHARS) -> str:
    """A string that ``re.fullmatch(pattern, ...)`` accepts, or ``Unsatisfiable``."""
    try:
        compiled = re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise Unsatisfiable(f"the regex {pattern!r} does not compile: {exc}") from None
    for _ in range(20):
        text = _RegexWriter(pattern, rng, limit).write(parsed)
        if compiled.fullmatch(text):
            return text
    raise Unsatisfiable(f"the fake engine cannot generate a match for the regex {pattern!r}")


class _RegexWriter:
    """Writes one string along a parsed regex, within ``budget`` characters."""

    def __init__(self, pattern: str, rng: random.Random, budget: int) -> None:
        self.pattern = pattern
        self.rng = rng
        self.budget = budget
        self.groups: dict[int, str] = {}

    def spend(self, text: str) -> str:
        self.budget -= len(text)
        if self.budget < 0:
            raise Unsatisfiable(f"a match of the regex {self.pattern!r} is too long to write")
        return text

    def write(self, items: Any) -> str:
        rng = self.rng
        out: list[str] = []
        for op, av in items:
            if op is sre.LITERAL:
                out.append(self.spend(chr(av)))
            elif op is sre.NOT_LITERAL:
                out.append(self.spend(rng.choice([c for c in PRINTABLE if ord(c) != av])))
            elif op is sre.ANY:
                out.append(self.spend(rng.choice(string.ascii_letters + string.digits)))
            elif op is sre.IN:
                out.append(self.spend(_char_in(av, rng, self.pattern)))
            elif op is sre.BRANCH:
                out.append(self.write(rng.choice(av[1])))
            elif op is sre.SUBPATTERN:
                group, _, _, sub = av
                text = self.write(sub)
                if group is not None:
                    self.groups[group] = text
                out.append(text)
            elif op is getattr(sre, "ATOMIC_GROUP", None):
                out.append(self.write(av))
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
                low, high, sub = av
                top = low + MAX_EXTRA_REPEATS if high is sre.MAXREPEAT else min(high, low + 3)
                out.extend(self.write(sub) for _ in range(rng.randint(low, top)))
            elif op is sre.GROUPREF:
                out.append(self.spend(self.groups.get(av, "")))
            elif op is sre.AT:
                continue  # ^ and $ at the ends: the final full match checks them
            else:
                raise Unsatisfiable(
                    f"the fake engine cannot generate for {str(op).lower()} "
                    f"in the regex {self.pattern!r}"
                )
        return "".join(out)


def _char_in(items: Any, rng: random.Random, pattern: str) -> str:
    negate = any(op is sre.NEGATE for op, _ in items)

    def member(c: str) -> bool:
        for op, av in items:
            if op is sre.LITERAL and ord(c) == av:
                return True
            if op is sre.RANGE and av[0] <= ord(c) <= av[1]:
                return True
            if op is sre.CATEGORY and c in CATEGORY_CHARS.get(av, ""):
                return True
        return False

    if negate:
        pool = [c for c in PRINTABLE if not member(c)]
    else:
        pool = [c for c in PRINTABLE if member(c)]
        if not pool:  # only characters outside the printable pool (e.g. [\u00e9])
            for op, av in items:
                if op is sre.LITERAL:
                    pool.append(chr(av))
                elif op is sre.RANGE:
                    pool.append(chr(av[0]))
    if not pool:
        raise Unsatisfiable(f"the fake engine cannot generate for a class in the regex {pattern!r}")
    return rng.choice(pool)
