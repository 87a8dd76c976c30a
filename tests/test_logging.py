"""``actoros.logging.configure``: JSON lines or console, level filtering, idempotence."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from actoros.logging import configure, get_logger

pytestmark = pytest.mark.timeout(10)


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    # configure() is process-global; give the rest of the suite its own configuration back
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_line_has_event_level_timestamp_and_logger() -> None:
    out = io.StringIO()
    configure(level="info", fmt="json", stream=out)
    get_logger("actoros.test").info("dead_letter", actor="/a/b", message_type="Ping")
    [line] = lines(out)
    record = json.loads(line)
    assert record["event"] == "dead_letter"
    assert record["level"] == "info"
    assert record["logger"] == "actoros.test"
    assert record["actor"] == "/a/b" and record["message_type"] == "Ping"
    stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0


def test_calls_below_the_level_are_dropped() -> None:
    out = io.StringIO()
    configure(level="warning", fmt="json", stream=out)
    log = get_logger("actoros.test")
    log.debug("a")
    log.info("b")
    log.warning("c")
    log.error("d")
    assert [json.loads(line)["event"] for line in lines(out)] == ["c", "d"]


def test_debug_level_lets_debug_through() -> None:
    out = io.StringIO()
    configure(level="DEBUG", fmt="json", stream=out)
    get_logger("actoros.test").debug("actor.started", actor="/x")
    assert json.loads(lines(out)[0])["level"] == "debug"


def test_numeric_level_is_accepted() -> None:
    out = io.StringIO()
    configure(level=logging.ERROR, fmt="json", stream=out)
    log = get_logger("actoros.test")
    log.warning("dropped")
    log.error("kept")
    assert [json.loads(line)["event"] for line in lines(out)] == ["kept"]


def test_filtered_call_does_not_render() -> None:
    # a filtered-out call must not touch its arguments (the hot path relies on it)
    class Explodes:
        def __repr__(self) -> str:
            raise AssertionError("rendered")

    out = io.StringIO()
    configure(level="info", fmt="json", stream=out)
    get_logger("actoros.test").debug("actor.started", actor=Explodes())
    assert out.getvalue() == ""


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure(fmt="auto", stream=out)
    get_logger("actoros.test").info("hello")
    assert json.loads(lines(out)[0])["event"] == "hello"


def test_auto_is_console_on_a_terminal() -> None:
    out = Terminal()
    configure(fmt="auto", stream=out)
    get_logger("actoros.test").info("hello", actor="/a")
    [line] = lines(out)
    assert "hello" in line and "actor" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_console_without_a_terminal_has_no_colour_codes() -> None:
    out = io.StringIO()
    configure(fmt="console", stream=out)
    get_logger("actoros.test").warning("restarting", actor="/a")
    text = out.getvalue()
    assert "restarting" in text and "warning" in text
    assert "\x1b[" not in text


def test_exceptions_are_structured_in_json() -> None:
    out = io.StringIO()
    configure(fmt="json", stream=out)
    try:
        raise ValueError("bad")
    except ValueError:
        get_logger("actoros.test").exception("actor.failed")
    record = json.loads(lines(out)[0])
    assert record["exception"][0]["exc_type"] == "ValueError"


def test_configure_twice_writes_each_line_once() -> None:
    out = io.StringIO()
    configure(fmt="json", stream=out)
    configure(fmt="json", stream=out)
    get_logger("actoros.test").info("once")
    assert len(lines(out)) == 1


def test_default_stream_is_stderr_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    configure(fmt="json")
    get_logger("actoros.test").info("to stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err.splitlines()[0])["event"] == "to stderr"


def test_unknown_level_or_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure(level="chatty")
    with pytest.raises(ValueError, match="log format"):
        configure(fmt="xml")  # type: ignore[arg-type]
