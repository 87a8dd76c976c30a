"""The ``actoros`` command: exit statuses, one-line errors, ``--debug`` tracebacks.

Most tests run the real command in a subprocess (``python -m actoros``), as a user would. The
ones that need a command which fails in a particular way register it through ``COMMANDS``
and call ``main`` in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import actoros
from actoros import cli
from actoros.cli import _common, entry

pytestmark = pytest.mark.timeout(60)


def actoros_cmd(
    *args: str, prelude: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m actoros ARGS`` (or ``main(ARGS)`` after ``prelude``) in a subprocess."""
    if prelude is None:
        command = [sys.executable, "-m", "actoros", *args]
    else:
        code = f"{prelude}\nimport sys\nfrom actoros.cli import main\nsys.exit(main({args!r}))"
        command = [sys.executable, "-c", code]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=50,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("actoros: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_version_prints_the_package_version() -> None:
    result = actoros_cmd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"actoros {actoros.__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "actoros"
    assert script.exists(), "the `actoros` console script is missing; run `make setup`"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=50)
    assert result.returncode == 0
    assert result.stdout.strip() == f"actoros {actoros.__version__}"


def test_help_lists_the_subcommands() -> None:
    result = actoros_cmd("--help")
    assert result.returncode == 0
    assert "bench" in result.stdout and "model" in result.stdout


def test_no_subcommand_is_a_usage_error() -> None:
    line = assert_one_line_error(actoros_cmd(), 2)
    assert "COMMAND" in line


def test_bench_without_a_benchmark_is_a_one_line_usage_error() -> None:
    line = assert_one_line_error(actoros_cmd("bench"), 2)
    assert "BENCHMARK" in line and "actoros bench --help" in line


def test_unknown_subcommand_is_a_usage_error() -> None:
    line = assert_one_line_error(actoros_cmd("frobnicate"), 2)
    assert "frobnicate" in line


def test_bad_option_value_is_a_usage_error() -> None:
    line = assert_one_line_error(actoros_cmd("bench", "core", "--repeats", "0"), 2)
    assert "--repeats" in line


def test_out_path_that_is_a_file_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "results"
    not_a_dir.write_text("")
    line = assert_one_line_error(actoros_cmd("bench", "core", "--out", str(not_a_dir)), 2)
    assert str(not_a_dir) in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_adds_the_traceback(tmp_path: Path, where: str) -> None:
    not_a_dir = tmp_path / "results"
    not_a_dir.write_text("")
    args = ["bench", "core", "--out", str(not_a_dir)]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = actoros_cmd(*args)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "UsageError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("actoros: error: ")


def test_missing_inference_models_module_is_said_in_one_line() -> None:
    # None in sys.modules makes the import fail as if actoros.inference.models did not exist
    prelude = "import sys; sys.modules['actoros.inference.models'] = None"
    for args in (("model", "list"), ("model", "pull")):
        line = assert_one_line_error(actoros_cmd(*args, prelude=prelude), 2)
        assert "actoros.inference.models" in line


def test_pulling_an_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = actoros_cmd("model", "pull", "no-such-model", env={"ACTOROS_HOME": str(tmp_path)})
    line = assert_one_line_error(result, 2)
    assert "no-such-model" in line


def test_model_list_on_an_empty_cache_says_how_to_pull(tmp_path: Path) -> None:
    result = actoros_cmd("model", "list", env={"ACTOROS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "actoros model pull" in result.stderr


def test_missing_dependency_of_a_command_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_a_dependency.py").write_text("import surely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(cli.UsageError, match="'surely_not_installed_pkg', which is not installed"):
        _common.import_part("needs_a_dependency", "actoros thing")
    with pytest.raises(cli.UsageError, match="not available .*no_such_module_here is missing"):
        _common.import_part("no_such_module_here", "actoros thing")


# -- in-process: commands that fail on purpose ---------------------------------------------


@pytest.fixture
def command(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Register a ``probe`` subcommand whose handler is the last item appended to the list."""
    handlers: list[object] = []

    def add_probe(subcommands: _common.Subcommands) -> None:
        probe = subcommands.add_parser("probe")
        probe.set_defaults(handler=lambda args: handlers[-1](args))  # type: ignore[operator]

    monkeypatch.setattr(entry, "COMMANDS", (*entry.COMMANDS, add_probe))
    saved = structlog.get_config()  # main() configures logging; give it back
    try:
        yield handlers
    finally:
        structlog.configure(**saved)


def test_unexpected_error_exits_1_with_one_line(
    command: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise RuntimeError("disk on fire\nsecond line")

    command.append(handler)
    assert cli.main(["probe"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "actoros: error: RuntimeError: disk on fire second line "
        "(run with --debug for the traceback)"
    ]


def test_file_not_found_is_a_usage_error(
    command: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(args: argparse.Namespace) -> int:
        open("/no/such/config.yaml")  # noqa: SIM115 - raises before anything is opened
        return 0

    command.append(handler)
    assert cli.main(["probe"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "actoros: error: No such file or directory: /no/such/config.yaml"
    ]


def test_yaml_error_is_one_line(command: list[object], capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    def handler(args: argparse.Namespace) -> int:
        yaml.safe_load("a: [1, 2\nb: 3")
        return 0

    command.append(handler)
    assert cli.main(["probe"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("actoros: error: ")


def test_validation_error_is_a_usage_error(
    command: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    import msgspec

    def handler(args: argparse.Namespace) -> int:
        msgspec.convert({"port": "x"}, type=dict[str, int])
        return 0

    command.append(handler)
    assert cli.main(["probe"]) == 2
    assert capsys.readouterr().err.startswith("actoros: error: Expected `int`")


def test_keyboard_interrupt_exits_130_quietly(
    command: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    command.append(handler)
    assert cli.main(["probe"]) == 130
    assert capsys.readouterr().err == ""


def test_async_handler_runs_on_uvloop(command: list[object]) -> None:
    loops: list[str] = []

    async def handler(args: argparse.Namespace) -> int:
        loops.append(type(asyncio.get_running_loop()).__module__)
        return 3

    command.append(handler)
    assert cli.main(["probe"]) == 3
    assert loops and loops[0].startswith("uvloop")


def test_handler_status_is_the_exit_status(command: list[object]) -> None:
    command.append(lambda args: 4)
    assert cli.main(["probe", "--log-level", "error"]) == 4


@pytest.fixture
def logging_restored() -> Iterator[None]:
    saved = structlog.get_config()  # main() configures logging; give it back
    try:
        yield
    finally:
        structlog.configure(**saved)


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.usefixtures("logging_restored")
def test_run_out_that_is_a_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "config.yaml", "--out", str(tmp_path)]) == 2
    assert one_error(capsys) == (
        f"actoros: error: argument --out: {tmp_path} is a directory: name a file "
        "(see 'actoros run --help')"
    )


@pytest.mark.usefixtures("logging_restored")
def test_run_out_under_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").write_text("")
    out = tmp_path / "plain" / "results.jsonl"
    assert cli.main(["run", "config.yaml", "--out", str(out)]) == 2
    assert one_error(capsys).startswith(
        f"actoros: error: argument --out: {out} is under {tmp_path / 'plain'}, which is a file"
    )


@pytest.mark.usefixtures("logging_restored")
@pytest.mark.parametrize("value", ["nan", "-5", "inf", "1e9", "soon"])
def test_run_shutdown_timeout_must_be_a_sane_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "config.yaml", f"--shutdown-timeout={value}"]) == 2
    line = one_error(capsys)
    assert line.startswith("actoros: error: argument --shutdown-timeout: ")
    assert ("not a number" if value == "soon" else "from 0 to 86400") in line


@pytest.mark.usefixtures("logging_restored")
def test_run_with_a_missing_tool_module_exits_2_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "services: {tools: {user: {lookup: no_such_module_here:lookup}}}\n"
        "agents: [{name: a, kind: rule, tools: [lookup], rules: [{reply: ok}]}]\n"
    )
    assert cli.main(["run", str(config)]) == 2
    assert one_error(capsys) == (
        f"{config}:2: services.tools.user.lookup: user tool 'no_such_module_here:lookup': no "
        "module named 'no_such_module_here' (install it, or run from its folder)"
    )
    assert not (tmp_path / "state").exists()


@pytest.mark.usefixtures("logging_restored")
def test_an_error_line_escapes_what_would_break_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "new\nline.yaml"
    assert cli.main(["validate", str(missing)]) == 2
    assert one_error(capsys) == (
        f"actoros: error: No such file or directory: {tmp_path}/new\\nline.yaml"
    )
