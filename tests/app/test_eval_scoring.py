"""Scoring a task's record against its label, and a run's numbers (pure functions)."""

from __future__ import annotations

from actoros.app.eval import Label, Score, TaskRecord, ToolUse, score, summarize
from actoros.app.eval.runner import thread_steps
from actoros.kernel import ThreadMessage

ORDER = Label(
    facts=("shipped", "2026-11-20"), tools=("kv_get",), arguments={"kv_get": {"key": "order:1042"}}
)
LOOKUP = ToolUse("kv_get", {"key": "order:1042"})


def record(output: str | None = "It shipped on 2026-11-20.", **kw: object) -> TaskRecord:
    return TaskRecord(id="q", input="Where is my order 1042?", output=output, **kw)  # type: ignore[arg-type]


def test_an_answer_with_every_fact_after_the_right_call_succeeds() -> None:
    judged = score(ORDER, record(tools=(LOOKUP,)))
    assert judged == Score(id="q", success=True, needs_tool=True, facts_ok=True, tools_ok=True)


def test_facts_are_case_insensitive_regexes_that_must_all_match() -> None:
    assert score(Label(facts=("SHIPPED on \\d{4}",)), record()).success
    judged = score(Label(facts=("shipped", "59[.,]90")), record())
    assert not judged.success and not judged.facts_ok
    assert judged.misses == ("fact '59[.,]90' not in the answer",)


def test_a_fact_to_avoid_fails_the_task() -> None:
    judged = score(Label(facts=("shipped",), avoid=("amazon",)), record("Shipped; see amazon.com"))
    assert judged.misses == ("'amazon' is in the answer",) and not judged.success


def test_the_right_words_without_the_tool_are_not_a_success() -> None:
    judged = score(ORDER, record())  # guessed, or read from the prompt: no look-up
    assert judged.facts_ok and judged.tools_ok is False and not judged.success
    assert judged.misses == ("did not call kv_get",)


def test_the_tool_called_with_other_arguments_is_a_miss() -> None:
    judged = score(ORDER, record(tools=(ToolUse("kv_get", {"key": "1042"}),)))
    assert judged.misses == (
        'kv_get not called with {"key":"order:1042"} (called with {"key":"1042"})',
    )
    # one call with the labelled arguments among others is enough
    other = ToolUse("kv_get", {"key": "order:9"})
    assert score(ORDER, record(tools=(other, LOOKUP))).success


def test_an_empty_tools_list_means_no_tool_may_be_called() -> None:
    label = Label(facts=("9:00",), tools=())
    assert score(label, record("From 9:00.")).success
    judged = score(label, record("From 9:00.", tools=(ToolUse("clock"),)))
    assert judged.misses == ("called clock where no tool is needed",) and not judged.needs_tool


def test_tools_left_out_are_not_scored() -> None:
    judged = score(Label(facts=("9:00",)), record("From 9:00.", tools=(ToolUse("clock"),)))
    assert judged.success and judged.tools_ok is None


def test_a_failed_task_is_not_a_success_and_says_why() -> None:
    judged = score(
        Label(tools=()), record(None, error="agent 'orders': malformed model output twice")
    )
    assert not judged.success and not judged.facts_ok
    assert judged.misses == ("no answer: agent 'orders': malformed model output twice",)


def test_the_summary_separates_tool_questions_and_counts_protocol_validity() -> None:
    records = [
        record(
            tools=(LOOKUP,),
            model_calls=3,
            malformed=1,
            prompt_tokens=90,
            completion_tokens=10,
            seconds=2.0,
        ),
        TaskRecord(id="h", input="hi", output="Hello", seconds=0.5),  # a rule answered: no model
        TaskRecord(id="f", input="?", error="timed out", model_calls=1, seconds=9.0),
    ]
    labels = {"q": ORDER, "h": Label(facts=("hello",), tools=()), "f": Label(tools=())}
    scores = [score(labels[r.id], r) for r in records]
    summary = summarize(scores, records)
    assert (summary.tasks, summary.answered, summary.tool_tasks) == (3, 2, 1)
    assert summary.success == 0.6667 and summary.tool_success == 1.0
    assert summary.no_tool_success == 0.5
    assert (summary.model_calls, summary.malformed, summary.protocol_validity) == (4, 1, 0.75)
    # steps and tokens over the tasks a model answered; latency over every task
    assert summary.steps_mean == 3.0 and summary.tokens_mean == 100.0
    assert (summary.latency_p50_s, summary.latency_max_s) == (2.0, 9.0)
    # the run's own count of malformed outputs, when known, replaces the records' lower bound
    exact = summarize(scores, records, malformed=2)
    assert (exact.model_calls, exact.malformed, exact.protocol_validity) == (5, 2, 0.6)


def test_a_summary_of_nothing_has_no_shares() -> None:
    summary = summarize([], [])
    assert summary.success is None and summary.protocol_validity is None
    assert summary.latency_p50_s is None


def test_a_threads_assistant_messages_are_its_steps_and_its_tool_calls() -> None:
    def message(seq: int, role: str, tool_calls: object = None) -> ThreadMessage:
        return ThreadMessage(seq=seq, role=role, content="...", tool_calls=tool_calls, created=0.0)

    messages = [
        message(1, "user"),
        message(2, "assistant", {"tool": "kv_get", "arguments": {"key": "order:1"}}),
        message(3, "tool"),
        message(4, "assistant", {"agent": "faq", "message": "hours?"}),
        message(5, "tool"),
        message(6, "assistant", {"tool": "calculator", "arguments": "1+1"}),  # kept, no arguments
        message(7, "tool"),
        message(8, "assistant"),
    ]
    tools, steps = thread_steps(messages)
    assert tools == (ToolUse("kv_get", {"key": "order:1"}), ToolUse("calculator", {}))
    assert steps == 4
