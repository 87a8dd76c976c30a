"""The JSON schema subset tools use: checking arguments, and deriving a schema from type hints.

``schema_errors`` reports every way a value breaks a schema (``type``, ``enum``,
``properties``, ``required``, ``additionalProperties``, ``items``); ``check_schema`` refuses
types it would not understand; ``derive_schema`` writes the schema of a function's keyword
arguments from its type hints. No dependency: a tool's arguments are small JSON objects.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = ["SchemaError", "check_schema", "derive_schema", "schema_errors"]


class SchemaError(ValueError):
    """A schema the validator does not support, or a function whose hints have no schema."""


_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")


def _json_type(value: Any) -> str:
    """The JSON type name of a Python value (for error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _has_type(value: Any, name: str) -> bool:
    actual = _json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":  # JSON has one number type: 3.0 is an integer too
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == name


def schema_errors(schema: Mapping[str, Any], value: Any, path: str = "arguments") -> list[str]:
    """Every way ``value`` breaks ``schema``, one ``"path: problem"`` line each ([] if none).

    Keywords checked: ``type`` (a name or a list), ``enum``, ``properties``, ``required``,
    ``additionalProperties`` (bool or schema), ``items``. Others (``description``,
    ``default``, ...) are ignored, as JSON schema does with annotations.
    """
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_has_type(value, name) for name in names):
            return [f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(repr(option) for option in schema["enum"])
        errors.append(f"{path}: {value!r} is not one of {options}")
    if isinstance(value, Mapping):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{path}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors.extend(schema_errors(properties[name], item, f"{path}.{name}"))
            elif extra is False:
                errors.append(f"{path}: unexpected property {name!r}")
            elif isinstance(extra, Mapping):
                errors.extend(schema_errors(extra, item, f"{path}.{name}"))
    if isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors.extend(schema_errors(schema["items"], item, f"{path}[{index}]"))
    return errors


def check_schema(schema: Any, path: str = "parameters") -> None:
    """Raise ``SchemaError`` if ``schema`` uses types the validator does not know."""
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{path}: a schema must be an object, got {_json_type(schema)}")
    kind = schema.get("type")
    for name in [kind] if isinstance(kind, str) else list(kind or ()):
        if name not in _TYPES:
            raise SchemaError(f"{path}.type: unknown type {name!r} (known: {', '.join(_TYPES)})")
    for name, sub in schema.get("properties", {}).items():
        check_schema(sub, f"{path}.properties.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            check_schema(schema[key], f"{path}.{key}")


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema of one type hint (a few common shapes; else a clear ``SchemaError``)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint is type(None):
        return {"type": "null"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (list, tuple) or origin in (list, tuple):
        items = args[0] if args and origin is list else None
        return {"type": "array", **({"items": _type_schema(items, where)} if items else {})}
    if hint is dict or origin is dict:
        return {"type": "object"}
    if origin is Literal:
        schema: dict[str, Any] = {"enum": list(args)}
        kinds = {_SCALARS.get(type(arg)) for arg in args}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema
    if origin in (typing.Union, types.UnionType):
        parts = [_type_schema(arg, where) for arg in args]
        if all(isinstance(part.get("type"), str) for part in parts):
            merged: dict[str, Any] = {}
            for part in parts:  # e.g. list[int] | None: items from one, "null" from the other
                merged.update(part)
            merged["type"] = [part["type"] for part in parts]
            if "enum" in merged and "null" in merged["type"]:
                merged["enum"] = [*merged["enum"], None]
            return merged
    raise SchemaError(f"cannot derive a JSON schema for {where}: unsupported type {hint!r}")


def derive_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The ``object`` schema of ``fn``'s keyword arguments, from its type hints.

    str/int/float/bool, ``Literal[...]`` (an enum), ``list[...]``, ``dict``, ``X | None``;
    an unannotated parameter takes any JSON value. Parameters without a default are required;
    ``**kwargs`` allows extra properties.
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise SchemaError(f"cannot read the type hints of {fn!r}: {exc}") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            extra = True
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise SchemaError(f"tool functions take keyword arguments; {param} cannot be one")
        prop = _type_schema(hints.get(param.name, Any), f"parameter {param.name!r}")
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, str | int | float | bool):
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    return schema
