"""Reading a user's file: whatever the path names, text or one problem line, quickly."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from actoros.config import ConfigError, load_config
from actoros.config.files import read_text
from actoros.config.loader import MAX_CONFIG_BYTES

pytestmark = pytest.mark.timeout(10)


def problem(path: Path) -> str:
    """The one problem line of loading the config at ``path``."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = caught.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_latin_1_config_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("system:\n  name: x\n# café\n".encode("latin-1"))
    assert problem(path) == (
        f"{path}:3: not UTF-8 text (byte 0xe9 at column 6): save the config file as UTF-8"
    )


@pytest.mark.parametrize(("codec", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf_16_and_32_are_named_by_their_byte_order_mark(
    tmp_path: Path, codec: str, name: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("system: {name: x}\n".encode(codec))
    assert problem(path) == f"{path}: is {name} text: save it as UTF-8"


def test_utf_16_without_a_byte_order_mark_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("system: {name: x}\n".encode("utf-16-le"))
    assert problem(path) == (
        f"{path}: looks like UTF-16 or UTF-32 text (NUL bytes): save it as UTF-8"
    )


def test_a_utf_8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("system: {name: x}\n".encode("utf-8-sig"))
    assert load_config(path).system.name == "x"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    os.mkfifo(path)
    assert problem(path) == f"{path}: is a FIFO (named pipe), not a regular file"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused_before_reading(device: str) -> None:
    assert problem(Path(device)) == f"{device}: is a character device, not a regular file"


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert problem(path) == f"{path}: is a socket, not a regular file"


def test_a_loop_of_symbolic_links_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    path = tmp_path / "a.yaml"
    assert problem(path) == f"{path}: a loop of symbolic links: point the link at a file"


def test_a_path_through_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "c.yaml"
    assert problem(path) == f"{path}: a part of the path is a file, not a directory"


def test_a_directory_is_one_line(tmp_path: Path) -> None:
    assert problem(tmp_path) == f"{tmp_path}: is a directory, not a config file"


def test_a_missing_file_stays_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "dangling.yaml")


def test_a_file_over_the_bound_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("system: {name: x}\n")
    os.truncate(path, 100 << 20)  # sparse: only the size is real, and it is never read
    assert problem(path) == f"{path}: is 100 MiB; a config file may be at most 1 MiB"


def test_a_file_at_the_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"x" * MAX_CONFIG_BYTES)
    assert len(read_text(path, limit=MAX_CONFIG_BYTES, what="file")) == MAX_CONFIG_BYTES


def test_a_file_longer_than_its_size_says_is_refused_while_reading() -> None:
    # /proc files say they are empty; the reading, not the size, finds the bound
    with pytest.raises(ConfigError) as caught:
        read_text("/proc/self/maps", limit=16, what="config file")
    assert caught.value.lines() == [
        "/proc/self/maps: is more than 16 bytes; a config file may be at most 16 bytes"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("system: {}\n")
    path.chmod(0)
    assert problem(path) == f"{path}: cannot be read: permission denied (check its owner and mode)"
