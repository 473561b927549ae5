"""``gan-style eval --paired`` below the CLI: translate scientific files exactly (optional), pair
each translation with its ground truth and measure MAE / PSNR / SSIM in the data's units.

    translate_for_paired("runs/mr2ct/last.pt", "AtoB", Path("data/mr"), tmp)   # or a folder of fakes
    results = compare_paired(tmp, Path("data/ct_truth"), data_range=4095)      # {"files": ..., "overall": ...}

The metrics and the file matching are in paired.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .paired import match_folders, paired_report

logger = logging.getLogger(__name__)


def paired_inputs(src: Path, limit: int | None = None) -> list[Path]:
    """The scientific files under ``src`` (TIFF, DICOM, NIfTI, PNG; recursive, sorted), the first ``limit``."""
    from .paired import scan_files

    files = sorted(scan_files(src).values())[:limit]
    if not files:
        raise ValueError(f"--input {src}: no TIFF, DICOM, NIfTI or PNG files")
    return files


def translate_for_paired(weights: str, direction: str | None, src: Path, out: Path, device: str = "auto",
                         precision: str = "fp32", limit: int | None = None, axis: int = 2,
                         volume: int | None = None) -> None:
    """Translate the files of ``src`` into ``out`` (same relative paths) exactly, in their units;
    a file that cannot be translated is a warning and is left out."""
    from ..inference.route import translate_exact
    from ..inference.scans import ScanOptions
    from ..inference.translate import load_generator
    from ..io.scans import ScanError

    gen = load_generator(weights, direction, device, precision)
    for path in paired_inputs(src, limit):
        try:
            translate_exact(gen, path, out / path.relative_to(src), ScanOptions(axis, volume))
        except (ScanError, ValueError, OSError) as e:
            logger.warning("not translated: %s", e)


def compare_paired(fake: Path, real: Path, limit: int | None = None, data_range: float | None = None,
                   mask_above: float | None = None, axis: int = 2, volume: int | None = None) -> dict:
    """Each file of ``fake`` against its ground truth in ``real`` (the first ``limit`` pairs):
    paired.paired_report's per-file rows and overall values."""
    pairs = match_folders(fake, real)[:limit]
    if not pairs:
        raise ValueError(f"no file of {fake} has a ground truth in {real} (same relative path, or same name "
                         "with another suffix)")
    return paired_report(pairs, data_range, mask_above, axis, volume)
