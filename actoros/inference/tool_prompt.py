"""How a chat with tools becomes the model's prompt, for both engines' ``render``.

A chat template that takes tools (``apply_chat_template(..., tools=...)``; Qwen, Llama 3.1,
Hermes...) gets the messages in Hugging Face's format (``hf_messages``) and the tools as
OpenAI-style function specs (``hf_tools``). A template that does not (SmolLM2's is plain
ChatML) gets ``plain_messages``: the tools as a system-prompt block in the form SmolLM2's model
card documents (a ``<tools>`` list, calls answered as ``<tool_call>[...]</tool_call>``), and
earlier tool calls written back into the assistant turns in that same form, so the model sees
its own protocol in the history.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .messages import ChatMessage, ToolCall, ToolSpec

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "hf_messages",
    "hf_tools",
    "plain_messages",
    "takes_tools",
    "tools_block",
]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_encode = msgspec.json.Encoder().encode


def takes_tools(chat_template: str | None) -> bool:
    """Whether a chat template renders a ``tools`` argument (it names the variable)."""
    return bool(chat_template) and "tools" in str(chat_template)


def hf_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            },
        }
        for t in tools
    ]


def _arguments(call: ToolCall) -> Any:
    try:
        return msgspec.json.decode(call.arguments)
    except msgspec.DecodeError:
        return call.arguments


def hf_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    """The messages as Hugging Face chat templates take them (tool calls, tool results)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c)},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            entry["tool_call_id"] = m.tool_call_id
        if m.name is not None:
            entry["name"] = m.name
        out.append(entry)
    return out


def tools_block(tools: tuple[ToolSpec, ...]) -> str:
    """The system-prompt block that tells a model without a tools template what it may call."""
    specs = _encode(hf_tools(tools)).decode()
    return (
        "You are an expert in composing functions. You are given a question and a set of "
        "possible functions. Based on the question, you will need to make one or more "
        "function/tool calls to achieve the purpose. If none of the functions can be used, "
        "answer in plain text instead.\n\n"
        f"You have access to the following tools:\n<tools>{specs}</tools>\n\n"
        "To call tools, output only this, with no other text:\n"
        f'{TOOL_CALL_OPEN}[{{"name": "func_name1", "arguments": {{"argument1": "value1"}}}}, '
        f"... (more tool calls as required)]{TOOL_CALL_CLOSE}"
    )


def _written_calls(calls: tuple[ToolCall, ...]) -> str:
    listed = [{"name": c.name, "arguments": _arguments(c)} for c in calls]
    return TOOL_CALL_OPEN + _encode(listed).decode() + TOOL_CALL_CLOSE


def plain_messages(
    messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...]
) -> list[dict[str, str]]:
    """Role and content only: the tools block joins the system prompt (or opens one), tool
    calls are written into their assistant turns."""
    out: list[dict[str, str]] = []
    for m in messages:
        content = m.content
        if m.tool_calls:
            content = (content + "\n" if content else "") + _written_calls(m.tool_calls)
        out.append({"role": m.role, "content": content})
    if tools:
        block = tools_block(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + block}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out
