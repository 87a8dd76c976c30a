"""The labels file format of ``actoros eval``: its shape, and its checks against a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actoros.app.eval import Labels, LabelsError, check_labels, labels_from
from actoros.app.eval.runner import config_tools, workload_task_ids
from actoros.config import load_config

REPO = Path(__file__).resolve().parents[2]


def problems(
    data: object, ids: tuple[str, ...] = ("q1", "q2"), tools: tuple[str, ...] = ()
) -> list[str]:
    try:
        check_labels(labels_from(data, "labels.yaml"), "labels.yaml", ids, tools)
    except LabelsError as exc:
        return exc.lines()
    return []


def test_a_label_holds_facts_avoid_tools_arguments_and_a_note() -> None:
    labels = labels_from(
        {
            "about": "two questions",
            "tasks": {
                "q1": {
                    "facts": ["shipped"],
                    "avoid": ["amazon"],
                    "tools": ["kv_get"],
                    "arguments": {"kv_get": {"key": "order:1"}},
                    "note": "n",
                },
                "q2": {"facts": ["hi"]},
            },
        },
        "labels.yaml",
    )
    assert isinstance(labels, Labels)
    assert labels.tasks["q1"].needs_tool and labels.tasks["q1"].tools == ("kv_get",)
    assert labels.tasks["q2"].tools is None and not labels.tasks["q2"].needs_tool
    assert problems({"tasks": {"q1": {"tools": ["kv_get"]}}}, tools=("kv_get",)) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "labels.yaml: the file is empty: it needs a 'tasks:' mapping"),
        ({"tasks": {}}, "labels.yaml: 'tasks:' is empty: label at least one task"),
        ({"tasks": {"q1": {"fact": ["x"]}}}, "labels.yaml: Object contains unknown field `fact`"),
        ({"tasks": {"q1": {"facts": "x"}}}, "labels.yaml: Expected `array`, got `str`"),
        ({"tasks": ["q1"]}, "labels.yaml: Expected `object`, got `array` - at `$.tasks`"),
    ],
)
def test_a_file_of_the_wrong_shape_is_one_line_naming_the_field(
    data: object, expected: str
) -> None:
    [line] = problems(data)
    assert line.startswith(expected)


def test_every_problem_against_the_config_is_found_at_once() -> None:
    lines = problems(
        {
            "tasks": {
                "q9": {"facts": ["x"]},
                "q1": {"facts": ["(unclosed", ""], "avoid": ["a" * 1001], "tools": ["rm"]},
                "q2": {"tools": [], "arguments": {"kv_get": {"key": "k"}}},
            }
        },
        tools=("kv_get",),
    )
    assert lines == [
        "labels.yaml: tasks.q9: the workload has no task 'q9'",
        "labels.yaml: tasks.q1.facts[0]: bad regex '(unclosed': missing ), unterminated "
        "subpattern at position 0",
        "labels.yaml: tasks.q1.facts[1]: an empty pattern matches every answer",
        "labels.yaml: tasks.q1.avoid[0]: a pattern of 1001 characters (at most 1000)",
        "labels.yaml: tasks.q1.tools: no agent of the config may call 'rm'",
        "labels.yaml: tasks.q2.arguments.kv_get: 'kv_get' is not in the task's tools",
    ]


@pytest.mark.parametrize("name", ["demo", "library"])
def test_the_shipped_labelled_sets_fit_their_configs(name: str) -> None:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    path = REPO / "configs" / "labels" / f"{name}.yaml"
    labels = labels_from(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    check_labels(labels, str(path), workload_task_ids(config), config_tools(config))
    unlabelled = set(workload_task_ids(config)) - set(labels.tasks)
    assert all(task.startswith("seed-") for task in unlabelled)  # only the setup is unscored
    tool_tasks = [t for t, label in labels.tasks.items() if label.needs_tool]
    assert len(tool_tasks) >= 7 and len(labels.tasks) - len(tool_tasks) >= 7
    assert all(label.tools is not None for label in labels.tasks.values())
