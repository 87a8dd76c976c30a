"""Whether the paths a config names can be what the run makes of them, looked at (``stat``)
and never touched: the state folder a folder (or creatable as one), a database not a folder.
A path the system cannot see into is left to the run, which says what it meets."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the state folder: it, or the first thing that exists above it,
    is a file, or that folder is not writable; ``None`` when it can."""
    for above in (path, *path.parents):
        try:
            mode = _mode(above)
        except OSError as exc:  # a name too long, say
            return f"{path}: {exc.strerror or exc}"
        if mode is None:
            continue
        if mode != "folder":
            where = "is a file" if above == path else f"is under {above}, a file"
            return f"{path} {where}: name a folder"
        if above != path and not os.access(above, os.W_OK | os.X_OK):
            return f"{path} cannot be made: {above} is not writable"
        return None
    return None


def database_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a SQLite database file: it is a folder."""
    try:
        mode = _mode(path)
    except OSError:
        return None
    return f"{path} is a folder, not a database file" if mode == "folder" else None


def _mode(path: Path) -> str | None:
    """ "folder", "file" (anything else), or ``None`` when nothing is there (or a file is
    where a folder on the way should be)."""
    try:
        return "folder" if stat.S_ISDIR(os.stat(path).st_mode) else "file"
    except (FileNotFoundError, NotADirectoryError):
        return None
