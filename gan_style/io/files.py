"""Find input files: the one place that lists files from files, folders and globs.

Every caller (translate's inputs, training folders, paired evaluation, image folders) gets the
same rules: sorted (by path, so runs are reproducible), hidden files and folders skipped (a
leading dot: ``.DS_Store``, ``.git``, our own temporary files), symbolic links to folders not
followed, and a folder-shaped store (a folder whose name ends in a folder format's suffix, such
as ``.zarr``: ``scans.is_scan_store``) taken as one input, never looked into.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .scans import is_scan_store

Accept = Callable[[Path], bool]


class FindError(ValueError):
    """An input that does not exist; the message names it."""


def everything(path: Path) -> bool:
    return True


def list_files(folder: Path, recursive: bool = False, accept: Accept = everything) -> list[Path]:
    """The files (and stores) in ``folder`` that ``accept`` takes, sorted; with ``recursive``, those of
    its subfolders too."""
    return sorted(p for p in _walk(Path(folder), recursive) if accept(p))


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    """Candidates under ``folder``: files and stores, not hidden; subfolders entered when ``recursive``."""
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError, PermissionError):  # as glob: nothing there
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if is_scan_store(entry):
            yield entry
        elif entry.is_dir():
            if recursive and not entry.is_symlink():  # a link back up would never end
                yield from _walk(entry, recursive)
        elif entry.is_file():
            yield entry


def find_files(inputs: Sequence[str | Path], recursive: bool = False, accept: Accept = everything,
               exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(path, where its output goes relative to an output folder) for each input ``accept`` takes.

    ``inputs``: files (taken as given, whatever ``accept`` says: the user named them), folders
    (their files; ``recursive``: also their subfolders'; relative paths mirror the folder's
    structure, under the folder's name when there are several inputs) and globs (quoted
    patterns: relative to the folder before the first wildcard). Files found in folders or by
    globs under ``exclude`` (the output folder) are left out. ``FindError`` for an input that
    does not exist.
    """
    several = len(inputs) > 1
    found: list[tuple[Path, Path]] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file() or is_scan_store(path):
            found.append((path, Path(path.name)))
            continue
        if path.is_dir():
            prefix = Path(path.resolve().name) if several else Path()
            listed = [(p, prefix / p.relative_to(path)) for p in list_files(path, recursive, accept)]
        elif glob.has_magic(str(text)):
            listed = _glob(os.path.expanduser(str(text)), accept)
        else:
            raise FindError(f"{text}: no such file or folder")
        found += [(p, rel) for p, rel in listed if exclude is None or not p.resolve().is_relative_to(exclude)]
    return found


def _glob(pattern: str, accept: Accept) -> list[tuple[Path, Path]]:
    """Matches of ``pattern`` that ``accept`` takes, relative to its base (glob skips hidden names
    itself); what lies inside a store is part of it, not a match."""
    base = _glob_base(pattern)
    matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    return [(p, p.relative_to(base)) for p in matches
            if (p.is_file() or is_scan_store(p)) and accept(p) and not _in_store(p, base)]


def _glob_base(pattern: str) -> Path:
    # The folder part before the first wildcard: outputs mirror the structure below it.
    base = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _in_store(path: Path, base: Path) -> bool:
    """Whether a folder between ``base`` and ``path`` is a store (``path`` is one of its files)."""
    return any(is_scan_store(base / parent) for parent in path.relative_to(base).parents if parent != Path("."))
