"""What of a turn's model output is shown while it is generated (``LLMAgent.handle_stream``).

A step's output is one of the protocol's forms (``protocol.py``); only a final answer is the
user's to see, but which form a step is becomes clear only as it is written. ``StepFilter``
decides, piece by piece, what of one step may be shown; ``Shown`` is what a turn has shown so
far across its steps; ``cut_answer`` reads the answer out of a constrained output that
``max_tokens`` cut short. Split from ``llm.py``, whose turn loop uses them.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Emit
from .protocol import FinalAnswer


class StepFilter:
    """Which part of one step's output may be shown while it is generated (see the module
    docstring): ``feed`` each piece of output and show what it returns; once the step has
    parsed as a final answer, ``rest(answer)`` is what remains to show of it.

    ``answer_json``: the step is constrained by the agent's grammar, so an output that opens
    ``{"answer": "`` can only be the final answer: its text is shown as it comes, decoded
    from the JSON string (only an output cut short by ``max_tokens`` breaks that promise;
    what was shown of it is then an interlude, as with plain text)."""

    __slots__ = ("_output", "_start", "_sent", "_held_whole", "_answer_json", "_decoded", "_shown")

    def __init__(self, *, answer_json: bool = False) -> None:
        self._answer_json = answer_json
        self.reset()

    @property
    def shown(self) -> str:
        """The part of this step's output shown so far."""
        return self._shown

    def reset(self) -> None:
        """Forget the output fed so far (nothing of it was shown): the step starts again."""
        self._output, self._start, self._sent, self._held_whole = "", -1, 0, False
        self._decoded: int | None = None  # answer_json: where the answer's string resumes
        self._shown = ""

    def feed(self, piece: str) -> str:
        self._output += piece
        if self._start < 0:
            stripped = self._output.lstrip()
            if not stripped:
                return ""
            self._start = self._sent = len(self._output) - len(stripped)
            self._held_whole = stripped[0] in "{[`"
        if self._held_whole:
            return self._answer_piece() if self._answer_json else ""
        limit = len(self._output)
        for mark in "{`":  # JSON may begin here: hold it back until the step has parsed
            at = self._output.find(mark, self._sent)
            if at != -1:
                limit = min(limit, at)
        end = len(self._output[:limit].rstrip())  # trailing whitespace may end the answer
        if end <= self._sent:
            return ""
        piece, self._sent = self._output[self._sent : end], end
        self._shown += piece
        return piece

    def _answer_piece(self) -> str:
        """More of the answer's text, decoded, when the output is ``{"answer": "...``."""
        if self._decoded is None:
            opened = _ANSWER_OPEN.match(self._output, self._start)
            if opened is None:
                return ""
            self._decoded = opened.end()
        text, self._decoded = _decode_partial(self._output, self._decoded)
        self._shown += text
        return text

    def rest(self, answer: str) -> str | None:
        """The rest of ``answer`` to show after ``shown``; ``None`` when ``shown`` is not the
        start of the answer (it was an interlude)."""
        shown = self.shown
        return answer[len(shown) :] if answer.startswith(shown) else None


_ANSWER_OPEN = re.compile(r'\{\s*"answer"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _decode_partial(text: str, at: int) -> tuple[str, int]:
    """The JSON string content of ``text`` from ``at`` (just inside its quotes) as far as it
    is complete — up to its closing quote or an escape cut short — and where to resume."""
    out: list[str] = []
    i = at
    while i < len(text) and text[i] != '"':
        if text[i] != "\\":
            char, size = text[i], 1
        elif text[i + 1 : i + 2] == "u":
            char, size = _unicode_escape(text, i)
        else:
            char, size = _ESCAPES.get(text[i + 1 : i + 2], ""), 2
        if not char:  # cut short (or not JSON: the parser will say so)
            break
        out.append(char)
        i += size
    return "".join(out), i


def _unicode_escape(text: str, i: int) -> tuple[str, int]:
    """The character of the ``\\uXXXX`` escape (a surrogate pair: both) at ``i``, and its
    length; ``("", 0)`` when it is cut short or malformed."""
    try:
        code = int(text[i + 2 : i + 6], 16) if i + 6 <= len(text) else -1
        if 0xD800 <= code < 0xDC00:
            if i + 12 > len(text) or text[i + 6 : i + 8] != "\\u":
                return "", 0
            low = int(text[i + 8 : i + 12], 16)
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), 12
    except ValueError:
        return "", 0
    return (chr(code), 6) if code >= 0 else ("", 0)


class Shown:
    """The text a streamed turn has shown, across its steps (see the module docstring)."""

    __slots__ = ("_emit", "_parts", "_gap")

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._parts: list[str] = []
        self._gap = False  # an interlude was shown: separate what comes next from it

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def show(self, text: str) -> None:
        if not text:
            return
        if self._gap:
            text, self._gap = "\n\n" + text, False
        self._parts.append(text)
        self._emit(text)

    def step_ended(self, step_filter: StepFilter, step: Any) -> None:
        if isinstance(step, FinalAnswer):
            rest = step_filter.rest(step.text)
            if rest is None:  # the text shown was not the answer's start: an interlude
                self._gap = True
                rest = step.text
            self.show(rest)
        elif step_filter.shown:
            self._gap = True


def cut_answer(output: str) -> FinalAnswer | None:
    """A constrained answer cut short by ``max_tokens`` (``{"answer": "...`` without its
    end): its text so far is the answer, as a plain-text answer cut short is."""
    opened = _ANSWER_OPEN.match(output.lstrip())
    if opened is None:
        return None
    text, _ = _decode_partial(output.lstrip(), opened.end())
    return FinalAnswer(text) if text.strip() else None
