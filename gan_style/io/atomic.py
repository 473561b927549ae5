"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash or Ctrl-C during the write leaves the previous file (or none), never a partial one.
Used for checkpoints, sample panels, translated images, caches and results. The temporary file
is created with ``open(..., "x")`` rather than ``mkstemp``, so the result gets the usual
permissions (umask) instead of mkstemp's private 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Callable


@contextlib.contextmanager
def temporary_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary name next to ``path``; move it onto ``path`` if the block succeeds.

    For writers that need a file name rather than a file object (FFmpeg writing a video). On any
    exception, Ctrl-C included, the temporary file is removed and ``path`` is left as it was.
    The name is hidden (leading dot) and ends in ``.tmp``, so it is never taken for an output.
    """
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def temporary_folder(path: str | Path) -> Iterator[Path]:
    """``temporary_path`` for a folder (a folder-shaped store such as .zarr): yield a new empty folder
    next to ``path``, which replaces ``path`` if the block succeeds; on any exception it is removed.

    A folder cannot replace another in one step: an existing ``path`` is first moved aside, and
    removed once the new folder is in place.
    """
    tmp = _temporary_name(path)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    path = Path(path)
    old = _temporary_name(path) if path.exists() else None
    if old is not None:
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()


def _temporary_name(path: str | Path) -> Path:
    """A fresh hidden name next to ``path``, ending in ``.tmp`` (never taken for an output); makes the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomic(path: str | Path, write: Callable[[IO], object], binary: bool = False, fsync: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then move it into place.

    ``fsync``: flush to disk before the move (checkpoints: the file must survive a power cut).
    """
    path = Path(path)
    with temporary_path(path) as tmp, open(tmp, "xb" if binary else "x") as f:
        write(f)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return path


def usual_permissions(path: str | Path) -> None:
    """Give a file written by a library that creates private files (0600) the umask's permissions."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
