"""Tools and JSON mode: OpenAI's ``tools`` / ``tool_choice`` / ``response_format`` as a plan for
the raw model, and the model's output read back as ``tool_calls``.

``plan(...)`` checks what the request declares (names, schemas that compile, the named tool
exists, a tool message answers a call made before it) and decides, as vLLM's own server does,
what the output must be:

- ``tool_choice: "required"``: a JSON array of one or more ``{"name", "arguments"}`` objects,
  one ``anyOf`` branch per tool (``maxItems: 1`` with ``parallel_tool_calls: false``);
- a named function: that function's arguments object (its ``parameters`` schema);
- ``response_format``: ``json_object`` any JSON object, ``json_schema`` its schema;
- ``"auto"``: no constraint; the output is read for tool calls (``<tool_call>[...]</tool_call>``
  as SmolLM2 and Hermes-style models write them, or a bare JSON call naming a declared tool);
- ``"none"``: the tools are shown, the output is text.

Each constraint is a ``Generate.constraint``, enforced by the engine while it generates.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import msgspec

from actoros.inference.messages import (
    Constraint,
    JsonObject,
    JsonSchema,
    ToolCall,
    ToolSpec,
)
from actoros.inference.tool_prompt import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

from ..errors import bad_request

__all__ = [
    "FunctionDef",
    "NamedToolChoice",
    "ResponseFormat",
    "ToolParam",
    "ToolPlan",
    "call_id",
    "check_schema",
    "plan",
    "read_output",
]

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function and schema names
MAX_TOOLS = 128  # OpenAI's limit


class FunctionDef(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolParam(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    function: FunctionDef


class FunctionName(msgspec.Struct):
    name: str


class NamedToolChoice(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    function: FunctionName


class JsonSchemaSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class RequestFunctionCall(msgspec.Struct):
    name: str
    arguments: str


class RequestToolCall(msgspec.Struct):
    id: str
    type: str
    function: RequestFunctionCall


class ToolPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the request asks of the output: ``tools`` shown to the model, the ``constraint``
    (or ``None``), and how the output reads: ``mode`` ``"text"``, ``"auto"`` (maybe calls),
    ``"required"`` (an array of calls) or ``"named"`` (the arguments of ``named``)."""

    tools: tuple[ToolSpec, ...] = ()
    constraint: Constraint | None = None
    mode: Literal["text", "auto", "required", "named"] = "text"
    named: str | None = None

    @property
    def may_call(self) -> bool:
        return self.mode != "text"


def check_schema(schema: Any, param: str) -> None:
    """A 400 naming ``param`` unless ``schema`` is a JSON Schema that compiles."""
    import jsonschema  # the gateway's only use of it: load it with the first schema

    if not isinstance(schema, dict):
        raise bad_request("a JSON schema must be an object", param=param, code="invalid_schema")
    try:
        validator = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise bad_request(
            f"invalid JSON schema: {exc.message}" + (f" (at {where})" if where else ""),
            param=param,
            code="invalid_schema",
        ) from None
    except Exception as exc:  # a $ref or $schema the validator cannot resolve
        raise bad_request(
            f"invalid JSON schema: {exc}", param=param, code="invalid_schema"
        ) from None


def _specs(tools: list[ToolParam]) -> tuple[ToolSpec, ...]:
    if len(tools) > MAX_TOOLS:
        raise bad_request(f"'tools' takes at most {MAX_TOOLS} functions", param="tools")
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if tool.type != "function":
            raise bad_request(
                f"unsupported tool type {tool.type!r} (only 'function')",
                param=f"tools[{i}].type",
            )
        fn = tool.function
        if not NAME.match(fn.name):
            raise bad_request(
                f"invalid function name {fn.name!r}: use 1 to 64 letters, digits, '_' or '-'",
                param=f"tools[{i}].function.name",
            )
        if fn.name in seen:
            raise bad_request(
                f"the function {fn.name!r} is declared twice", param=f"tools[{i}].function.name"
            )
        seen.add(fn.name)
        parameters = fn.parameters if fn.parameters else {"type": "object", "properties": {}}
        check_schema(parameters, f"tools[{i}].function.parameters")
        if parameters.get("type", "object") != "object":
            raise bad_request(
                "a function's parameters must be a schema of type 'object'",
                param=f"tools[{i}].function.parameters",
                code="invalid_schema",
            )
        specs.append(ToolSpec(fn.name, fn.description or "", parameters))
    return tuple(specs)


def _required_schema(specs: tuple[ToolSpec, ...], parallel: bool | None) -> dict[str, Any]:
    branches = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [s.name]},
                "arguments": s.parameters,
            },
            "required": ["name", "arguments"],
        }
        for s in specs
    ]
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": branches}}
    if parallel is False:
        schema["maxItems"] = 1
    return schema


def _format_constraint(fmt: ResponseFormat | None) -> Constraint | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return JsonObject()
    spec = fmt.json_schema
    if spec is None:
        raise bad_request(
            "response_format of type 'json_schema' needs 'json_schema'",
            param="response_format.json_schema",
        )
    if not NAME.match(spec.name):
        raise bad_request(
            f"invalid schema name {spec.name!r}: use 1 to 64 letters, digits, '_' or '-'",
            param="response_format.json_schema.name",
        )
    schema = spec.schema if spec.schema is not None else {"type": "object"}
    check_schema(schema, "response_format.json_schema.schema")
    return JsonSchema(schema)


def plan(
    tools: list[ToolParam] | None,
    tool_choice: str | NamedToolChoice | None,
    parallel_tool_calls: bool | None,
    response_format: ResponseFormat | None,
) -> ToolPlan:
    """The ``ToolPlan`` of a request's fields (see the module docstring); 400s for bad ones."""
    specs = _specs(tools or [])
    fmt = _format_constraint(response_format)
    if tool_choice is None:
        tool_choice = "auto" if specs else "none"
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise bad_request(
                f"invalid tool_choice {tool_choice!r}: use 'none', 'auto', 'required' or "
                '{"type": "function", "function": {"name": ...}}',
                param="tool_choice",
            )
        if tool_choice != "none" and not specs:
            raise bad_request(f"tool_choice {tool_choice!r} needs 'tools'", param="tool_choice")
        if tool_choice == "none":
            return ToolPlan(tools=specs, constraint=fmt)
        if tool_choice == "auto":
            return ToolPlan(tools=specs, constraint=fmt, mode="auto")
        _no_format(fmt)
        schema = _required_schema(specs, parallel_tool_calls)
        return ToolPlan(tools=specs, constraint=JsonSchema(schema), mode="required")
    if tool_choice.type != "function":
        raise bad_request(
            f"unsupported tool_choice type {tool_choice.type!r} (only 'function')",
            param="tool_choice.type",
        )
    name = tool_choice.function.name
    chosen = next((s for s in specs if s.name == name), None)
    if chosen is None:
        declared = ", ".join(s.name for s in specs) or "none"
        raise bad_request(
            f"tool_choice names the function {name!r}, which 'tools' does not declare "
            f"(declared: {declared})",
            param="tool_choice",
        )
    _no_format(fmt)
    return ToolPlan(tools=specs, constraint=JsonSchema(chosen.parameters), mode="named", named=name)


def _no_format(fmt: Constraint | None) -> None:
    if fmt is not None:
        raise bad_request(
            "response_format cannot be combined with a tool_choice that forces a tool call",
            param="response_format",
        )


def check_history(messages: list[Any]) -> None:
    """Every ``tool`` message answers a call an earlier assistant message made."""
    made: set[str] = set()
    for i, message in enumerate(messages):
        for j, call in enumerate(message.tool_calls or ()):
            if message.role != "assistant":
                raise bad_request(
                    "only assistant messages carry tool_calls",
                    param=f"messages[{i}].tool_calls",
                )
            if call.type != "function":
                raise bad_request(
                    f"unsupported tool call type {call.type!r} (only 'function')",
                    param=f"messages[{i}].tool_calls[{j}].type",
                )
            made.add(call.id)
        if message.role == "tool":
            if not message.tool_call_id:
                raise bad_request(
                    "a tool message needs 'tool_call_id': the id of the call it answers",
                    param=f"messages[{i}].tool_call_id",
                )
            if message.tool_call_id not in made:
                raise bad_request(
                    f"the tool message answers {message.tool_call_id!r}, a call no earlier "
                    "assistant message made",
                    param=f"messages[{i}].tool_call_id",
                )


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


_encode = msgspec.json.Encoder().encode
_BLOCK = re.compile(
    re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + "|$)", re.S
)


def _decode(text: str) -> Any:
    try:
        return msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return None


def _call(entry: Any, names: set[str]) -> ToolCall | None:
    """One ``{"name", "arguments"}`` (or vLLM's ``"parameters"``) object naming a known tool."""
    if not isinstance(entry, dict) or entry.get("name") not in names:
        return None
    args = entry.get("arguments", entry.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        args = _decode(args)
    if not isinstance(args, dict):
        return None
    return ToolCall(call_id(), entry["name"], _encode(args).decode())


def _calls(document: Any, names: set[str]) -> list[ToolCall] | None:
    entries = document if isinstance(document, list) else [document]
    calls = [_call(e, names) for e in entries]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def read_output(text: str, plan: ToolPlan) -> tuple[str | None, list[ToolCall]]:
    """The message a choice's text makes: its content and its tool calls. Text that is not a
    well-formed call (a constraint cut short by ``max_tokens``, a model that answered in
    prose) stays content: nothing is invented."""
    if not plan.may_call:
        return text, []
    names = {s.name for s in plan.tools}
    if plan.mode == "named":
        args = _decode(text)
        if isinstance(args, dict):
            assert plan.named is not None
            return None, [ToolCall(call_id(), plan.named, _encode(args).decode())]
        return text, []
    document = _decode(text)
    if document is not None:
        calls = _calls(document, names)
        if calls:
            return None, calls
        return text, []
    if plan.mode == "auto" and TOOL_CALL_OPEN in text:
        found: list[ToolCall] = []
        for block in _BLOCK.findall(text):
            calls = _calls(_decode(block), names)
            if not calls:
                return text, []
            found.extend(calls)
        rest = _BLOCK.sub("", text).strip()
        return (rest or None), found
    return text, []


def may_start_call(text: str) -> bool:
    """Whether output beginning with ``text`` (stripped) may still turn out to be a tool call:
    a stream holds such text back until the end instead of sending it as content."""
    head = text.lstrip()
    if not head:
        return True
    return head[0] in "{[" or TOOL_CALL_OPEN.startswith(head[: len(TOOL_CALL_OPEN)])
