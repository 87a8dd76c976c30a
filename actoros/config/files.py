"""Reading a user's file safely: one regular file, bounded in size, UTF-8 text.

Config and workload files come from users, so whatever the path names must end in text or in
one ``ConfigError`` line, quickly: a FIFO is opened with ``O_NONBLOCK`` (so it never blocks
waiting for a writer) and refused, like a device (``/dev/zero``), a socket or a directory;
the size is checked with ``fstat`` before reading and again while reading (a file that grows,
or a ``/proc`` file whose size says 0), so a 100 MB file costs a stat, not a parse; bytes
that are not UTF-8 are reported with their line and column, and UTF-16/32 by their byte
order mark. A missing file stays ``FileNotFoundError`` (the caller says "no such file").
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path

from .problems import ConfigError, Problem

MIB = 1 << 20

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_text(path: str | Path, *, limit: int, what: str) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``limit`` bytes.

    ``what`` names the file in messages ("config file"). Raises ``FileNotFoundError`` when
    nothing is at ``path`` (or a symlink points nowhere) and ``ConfigError`` (one problem,
    naming ``path``) for everything else a user can get wrong. A UTF-8 byte order mark is
    dropped.
    """
    source = str(path)
    data = _read_bytes(source, limit=limit, what=what)
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise _error(source, f"is {name} text: save it as UTF-8")
    if len(data) >= 2 and (data[0] == 0) != (data[1] == 0):  # text never starts with NUL
        raise _error(source, "looks like UTF-16 or UTF-32 text (NUL bytes): save it as UTF-8")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text (byte 0x{byte} at column {column}): save the {what} as UTF-8"
        raise ConfigError(source, [Problem("", line, message)]) from None


def _read_bytes(source: str, *, limit: int, what: str) -> bytes:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise _error(source, f"is a directory, not a {what}") from None
    except OSError as exc:  # a socket cannot be opened at all (ENXIO): say what it is
        raise _error(source, _not_regular(source) or _os_problem(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _error(source, f"is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise _error(source, f"is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise _error(source, _too_big(info.st_size, limit, what))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(limit + 1 - size, MIB)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while we read, or its size was not its length
                raise _error(source, _too_big(limit, limit, what, more=True))
        return b"".join(chunks)
    except OSError as exc:
        raise _error(source, _os_problem(exc)) from None
    finally:
        os.close(fd)


def _not_regular(source: str) -> str | None:
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else f"is {_kind(mode)}, not a regular file"


def _error(source: str, message: str) -> ConfigError:
    return ConfigError(source, [Problem("", None, message)])


def _too_big(size: int, limit: int, what: str, *, more: bool = False) -> str:
    if more or size < limit * 1.05:  # its size would read as the bound's
        return f"is more than {_size(limit)}; a {what} may be at most {_size(limit)}"
    return f"is {_size(size)}; a {what} may be at most {_size(limit)}"


def _size(size: int) -> str:
    """``size`` in bytes, KiB, MiB, GiB or TiB (whole units without decimals)."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1024)):
        if size >= scale:
            return f"{size // scale} {unit}" if size % scale == 0 else f"{size / scale:.1f} {unit}"
    raise AssertionError(size)  # every size of 1 KiB or more has a unit above


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _os_problem(exc: OSError) -> str:
    """What went wrong opening or reading, and what to do (one line)."""
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links: point the link at a file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied (check its owner and mode)"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    return f"cannot be read: {exc.strerror or exc}"
