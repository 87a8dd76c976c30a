"""``actoros eval``: what agents achieve on a labelled workload (issue 11).

- ``labels.py``: the labels file format (expected facts as regexes, tools that should be
  used) and its checks against a config's workload and tools;
- ``runner.py``: ``evaluate`` — run a config's workload as ``actoros run`` does, state in a
  temporary folder, and record each task (answer, tool calls, model calls, tokens, seconds);
- ``scoring.py``: pure scoring of a record against its label, and a run's numbers;
- ``report.py``: ``eval.json``, ``eval.md``, ``eval.png``.
"""

from __future__ import annotations

from .labels import Label, Labels, LabelsError, check_labels, labels_from
from .report import EvalReport, ModeResult, SystemResult, mode_result, new_report, write_report
from .runner import RunRecord, config_tools, eval_config, evaluate, workload_task_ids
from .scoring import Score, Summary, TaskRecord, ToolUse, score, summarize

__all__ = [
    "EvalReport",
    "Label",
    "Labels",
    "LabelsError",
    "ModeResult",
    "RunRecord",
    "Score",
    "Summary",
    "SystemResult",
    "TaskRecord",
    "ToolUse",
    "check_labels",
    "config_tools",
    "eval_config",
    "evaluate",
    "labels_from",
    "mode_result",
    "new_report",
    "score",
    "summarize",
    "workload_task_ids",
    "write_report",
]
