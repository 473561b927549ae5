"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash or Ctrl-C during the write leaves the previous file (or none), never a partial one.
Used for checkpoints, sample panels, translated images, caches and results. The temporary file
is created with ``open(..., "x")`` rather than ``mkstemp``, so the result gets the usual
permissions (umask) instead of mkstemp's private 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Callable


def write_atomic(path: str | Path, write: Callable[[IO], object], binary: bool = False, fsync: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then move it into place.

    ``fsync``: flush to disk before the move (checkpoints: the file must survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb" if binary else "x") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def usual_permissions(path: str | Path) -> None:
    """Give a file written by a library that creates private files (0600) the umask's permissions."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
