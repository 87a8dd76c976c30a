"""A real third-party framework against the gateway: ``langchain-openai``'s ``ChatOpenAI``
pointed at it (``base_url``), with ``bind_tools`` (tool calls) and
``with_structured_output`` (a Pydantic model, through ``response_format`` json_schema), on the
raw model of the fake engine, which honours the constraints the gateway sets."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from .conftest import RunningGateway

pytestmark = pytest.mark.timeout(60)


@tool
def get_order(order_id: int, include_items: bool) -> str:
    """Look up an order by its number."""
    return f"order {order_id}: shipped"


class Person(BaseModel):
    """Someone the text mentions."""

    name: str
    age: int = Field(ge=0, le=150)
    languages: list[str]


def chat(gateway: RunningGateway) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="fake",
        max_retries=0,
        max_tokens=200,  # type: ignore[call-arg]
        temperature=0,
    )


async def test_bind_tools_gives_tool_calls_langchain_can_run(gateway: RunningGateway) -> None:
    model = chat(gateway).bind_tools([get_order], tool_choice="get_order")
    question = HumanMessage("Where is order 1042?")
    reply = await model.ainvoke([question])
    [call] = reply.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_order"
    assert isinstance(call["args"]["order_id"], int)
    assert isinstance(call["args"]["include_items"], bool)
    result = get_order.invoke(call["args"])  # the arguments are what the tool takes
    # the conversation goes on with the tool's result, as an agent loop sends it
    follow = (
        await chat(gateway)
        .bind_tools([get_order])
        .ainvoke([question, reply, ToolMessage(result, tool_call_id=call["id"])])
    )
    assert follow.content


async def test_bind_tools_streams_tool_calls(gateway: RunningGateway) -> None:
    model = chat(gateway).bind_tools([get_order], tool_choice="required")
    merged = None
    async for piece in model.astream("Where is order 7?"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    [call] = merged.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_order" and isinstance(call["args"]["order_id"], int)


async def test_with_structured_output_returns_the_pydantic_model(gateway: RunningGateway) -> None:
    model = chat(gateway).with_structured_output(Person)
    person = await model.ainvoke("Ada is 36 and speaks English and French.")
    assert isinstance(person, Person)
    assert 0 <= person.age <= 150
    modes = chat(gateway).with_structured_output(Person, method="function_calling")
    assert isinstance(await modes.ainvoke("Ada is 36."), Person)
    json_mode = chat(gateway).with_structured_output(None, method="json_mode")
    assert isinstance(await json_mode.ainvoke("Answer in JSON."), dict)
