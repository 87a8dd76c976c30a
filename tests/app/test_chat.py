"""``chat``: ``actoros run --chat``, one streamed conversation with one agent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from actoros.app import chat

from .configs import fake_config

pytestmark = pytest.mark.timeout(30)


async def test_chat_writes_the_reply_piece_by_piece_as_it_streams(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    lines = iter(["What are your opening hours?\n", "hello\n", ""])
    writes: list[str] = []
    # read_line runs in a thread: hand it the next line only after the previous reply ended
    turn_done = threading.Semaphore(0)

    def read_line() -> str:
        line = next(lines)
        if line != "What are your opening hours?\n":
            turn_done.acquire(timeout=20)
        return line

    def write(text: str) -> None:
        writes.append(text)
        if text.endswith("\n"):
            turn_done.release()

    await asyncio.wait_for(chat(config, "router", read_line=read_line, write=write), 20)
    first_end = writes.index("\n")
    prefix, pieces = writes[0], writes[1:first_end]
    assert prefix == "router: "
    # the faq agent's answer (fake engine: one word per token) came in several pieces
    assert len(pieces) >= 3, writes
    assert all(piece for piece in pieces)
    answer = "".join(pieces)
    assert answer == answer.strip() and len(answer.split()) >= len(pieces)
    assert writes[first_end + 1 :] == [
        "router: ",
        "Hello! Ask me about your order or our shop.",
        "\n",
    ]
