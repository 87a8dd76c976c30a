"""Config fuzzing: how many malformed files ``actoros validate`` answers cleanly.

    .venv/bin/python benchmarks/scripts/config_fuzz.py [--mutations N] [--seed S]
        [--checkout DIR] [--label TEXT] [--baseline JSON] [--out DIR] [--jobs J] [--timeout S]

Writes the cases of ``tests/config/malformed.py`` (every class: encodings, YAML bombs, deep
nesting, special files, absurd values of every numeric field, semantic holes, YAML oddities,
workload files, and N seeded mutations of ``configs/*.yaml``) into a temporary folder and runs
``python -m actoros validate FILE`` on each in its own process (``--checkout``: the actoros
checkout to judge, default this one), under a time limit (``--timeout``, default 10 s) and an
address-space limit of 2 GiB, so a hang, a YAML bomb or a segfault is counted, not suffered.

A case is clean when it exits 2 with one line per problem (``FILE:LINE: PATH: problem``,
``FILE: problem`` or ``actoros: error: ...``; printable, no line twice, the count and the
named path where the case knows them) or, for a file that may be valid, exits 0 with its one
``ok`` line; never a traceback, another exit status or a timeout. Writes ``config_fuzz.json``
(every count, and each unclean case with its reasons) and ``config_fuzz.md`` to ``--out``;
``--baseline`` (the ``config_fuzz.json`` of another checkout, same seed and sizes) adds its
counts beside these.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.config.malformed import Case, all_cases, cleanup, judge  # noqa: E402

MEMORY_LIMIT = 2 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_case(case: Case, checkout: Path, timeout: float) -> dict[str, object]:
    """Validate ``case`` in a fresh process of ``checkout``'s actoros; judge the answer."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "actoros", "validate", str(case.path)],
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=case.path.parent if case.path.parent.is_dir() else None,
            preexec_fn=_limit_memory,
        )
        status: int | None = result.returncode
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        status, out, err = None, "", ""
    seconds = time.perf_counter() - started
    wrong = judge(case, status, out, err, timeout if status is None else seconds)
    return {
        "case": case.name,
        "kind": case.kind,
        "clean": not wrong,
        "status": status,
        "seconds": round(seconds, 3),
        "wrong": wrong,
        "stderr_tail": err[-300:] if wrong else "",
    }


def markdown(report: dict[str, object]) -> str:
    kinds: dict[str, dict[str, int]] = report["kinds"]  # type: ignore[assignment]
    base: dict[str, Any] | None = report.get("baseline")  # type: ignore[assignment]
    before = f" ({base['clean']} of {base['cases']} for {base['label']})" if base else ""
    lines = [
        "# config fuzzing: `actoros validate` on malformed files",
        "",
        f"{report['machine']}; {report['when']}; seed {report['seed']}, "
        f"{report['mutations']} mutations, {report['timeout_s']} s and 2 GiB per file; "
        f"checkout: {report['label']}.",
        "",
        f"**{report['clean']} of {report['cases']} clean**{before} (exit 2 with one line per "
        "problem, or exit 0 with the ok line for a valid file; no traceback, no hang).",
        "",
        "| class | cases | clean | slowest, s |"
        + (" clean before | slowest before, s |" if base else ""),
        "|---|---:|---:|---:|" + ("---:|---:|" if base else ""),
    ]
    for kind, counts in kinds.items():
        row = f"| {kind} | {counts['cases']} | {counts['clean']} | {counts['slowest_s']} |"
        if base:
            old = base["kinds"].get(kind, {"clean": "-", "slowest_s": "-"})
            row += f" {old['clean']} | {old['slowest_s']} |"
        lines.append(row)
    unclean: list[dict[str, object]] = report["unclean"]  # type: ignore[assignment]
    if unclean:
        lines += ["", "Not clean:", ""]
        for entry in unclean:
            lines.append(f"- `{entry['case']}`: {'; '.join(entry['wrong'])}")  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkout", type=Path, default=REPO)
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--baseline", type=Path, help="config_fuzz.json of another checkout")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="actoros-config-fuzz-"))
    try:
        cases = all_cases(root, seed=args.seed, mutations=args.mutations)
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(
                pool.map(lambda case: run_case(case, args.checkout.resolve(), args.timeout), cases)
            )
    finally:
        cleanup(root)
    kinds: dict[str, dict[str, object]] = {}
    for kind in dict.fromkeys(r["kind"] for r in results):
        mine = [r for r in results if r["kind"] == kind]
        kinds[kind] = {  # type: ignore[index]
            "cases": len(mine),
            "clean": sum(bool(r["clean"]) for r in mine),
            "slowest_s": max(float(r["seconds"]) for r in mine),  # type: ignore[arg-type]
        }
    unclean = [r for r in results if not r["clean"]]
    report = {
        "machine": f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "label": args.label,
        "seed": args.seed,
        "mutations": args.mutations,
        "timeout_s": args.timeout,
        "cases": len(results),
        "clean": len(results) - len(unclean),
        "kinds": kinds,
        "reasons": dict(Counter(w.split(":")[0] for r in unclean for w in r["wrong"])),  # type: ignore[union-attr]
        "unclean": unclean,
    }
    if args.baseline is not None:
        old = json.loads(args.baseline.read_text())
        report["baseline"] = {key: old[key] for key in ("label", "cases", "clean", "kinds")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config_fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "config_fuzz.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
