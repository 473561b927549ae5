"""Inception features of image folders, cached on disk.

The cache key is a hash of the folder's content (each file's name and the sha256 of its bytes)
and of the settings (extractor checksum, resize), so renaming, editing, adding or removing an
image, or changing the resize, computes fresh features; copying the folder elsewhere reuses them,
and so does ``limit`` (the first N files) once the whole folder is cached. Entries are ``.npz``
files (loaded with ``allow_pickle=False``), written atomically.
Unreadable images are reported and skipped; the rest are still used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..io.atomic import write_atomic
from ..io.images import ImageReadError, list_images, read_rgb
from ..io.tensors import image_to_uint8
from .colour import ColourHistogram
from .stats import MetricError

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class FeatureSet:
    """Features (n, d) float32 of the images ``names`` (relative to ``folder``)."""

    features: np.ndarray
    names: list[str]
    skipped: list[str] = field(default_factory=list)  # one message per unreadable file
    folder: str = ""
    cached: bool = False
    skipped_names: list[str] = field(default_factory=list)  # the files of ``skipped``, relative to folder

    def split_halves(self) -> tuple[FeatureSet, FeatureSet]:
        """Even and odd positions (in sorted-name order): two disjoint halves of one folder."""
        halves = []
        for start in (0, 1):
            halves.append(FeatureSet(self.features[start::2], self.names[start::2], folder=self.folder))
        return halves[0], halves[1]


def _read(path: Path) -> torch.Tensor | str:
    try:
        return image_to_uint8(read_rgb(path))
    except ImageReadError as e:
        return str(e)


def _content_key(folder: Path, paths: list[Path], settings: dict) -> str:
    digest = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **settings}, sort_keys=True).encode())
    for path in paths:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _load_npz(path: Path) -> FeatureSet | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            found = FeatureSet(data["features"], [str(n) for n in data["names"]], [str(s) for s in data["skipped"]],
                               cached=True)
            found.skipped_names = [str(n) for n in data["skipped_names"]]
        return found
    except (OSError, ValueError, KeyError):
        return None  # unreadable entry: recompute and overwrite


def _lookup(cache: Path | None, folder: Path, paths: list[Path], settings: dict
            ) -> tuple[Path | None, FeatureSet | None]:
    """The cache entry for exactly these files, and its content if present and readable."""
    if cache is None:
        return None, None
    entry = cache / "features" / f"{folder.name}-{_content_key(folder, paths, settings)[:24]}.npz"
    return entry, _load_npz(entry) if entry.is_file() else None


def _subset(found: FeatureSet, paths: list[Path], folder: Path) -> FeatureSet:
    """The rows of a whole-folder entry that belong to ``paths`` (the first ``limit`` files)."""
    keep = {p.relative_to(folder).as_posix() for p in paths}
    rows = [i for i, n in enumerate(found.names) if n in keep]
    skipped = [m for m, n in zip(found.skipped, found.skipped_names) if n in keep]
    return FeatureSet(found.features[rows], [found.names[i] for i in rows], skipped, cached=True)


def folder_features(
    folder: str | Path,
    extractor,
    cache: Path | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    workers: int = 4,
    progress: bool = True,
) -> FeatureSet:
    """Features of the (first ``limit``, sorted by name) images of ``folder``; cached in ``cache``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricError(f"image folder {folder} does not exist")
    every = list_images(folder)
    paths = every[:limit]
    if not paths:
        raise MetricError(f"image folder {folder} holds no images (.jpg, .png, ...)")
    settings = {"extractor": extractor.key}
    entry, found = _lookup(cache, folder, paths, settings)
    if found is None and len(paths) < len(every):  # features of the whole folder serve any --limit
        found = _lookup(cache, folder, every, settings)[1]
        found = _subset(found, paths, folder) if found is not None else None
    if found is not None:
        found.folder = str(folder)
        for message in found.skipped:
            logger.warning("skipped unreadable image: %s", message)
        return found

    names, skipped, skipped_names, feats = [], [], [], []
    bar = tqdm(total=len(paths), unit="img", desc=f"Inception {folder.name}", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # JPEG decoding releases the GIL
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            batch = []
            for path, image in zip(chunk, pool.map(_read, chunk)):
                if isinstance(image, str):
                    skipped.append(image)
                    skipped_names.append(path.relative_to(folder).as_posix())
                    logger.warning("skipped unreadable image: %s", image)
                else:
                    batch.append(image)
                    names.append(path.relative_to(folder).as_posix())
            if batch:
                feats.append(extractor(batch))
            bar.update(len(chunk))
    bar.close()
    if not names:
        raise MetricError(f"no image in {folder} could be read")
    result = FeatureSet(np.concatenate(feats).astype(np.float32), names, skipped, str(folder))
    if entry is not None:
        try:
            arrays = {"features": result.features, "names": np.array(names), "skipped": np.array(skipped, dtype=str),
                      "skipped_names": np.array(skipped_names, dtype=str)}
            write_atomic(entry, lambda f: np.savez(f, **arrays), binary=True)
        except OSError as e:
            logger.warning("could not write the feature cache %s (%s); continuing", entry, e)
    return result


def folder_colours(folder: str | Path, limit: int | None = None, names: list[str] | None = None,
                   workers: int = 4) -> ColourHistogram:
    """Colour histogram of the (first ``limit``) readable images of ``folder``, or of ``names`` in it."""
    folder = Path(folder)
    paths = [folder / n for n in names] if names is not None else list_images(folder)[:limit]
    hist = ColourHistogram()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for image in pool.map(_read, paths):
            if not isinstance(image, str):  # unreadable files were already reported
                hist.add(image)
    if hist.pixels == 0:
        raise MetricError(f"no image in {folder} could be read")
    return hist
