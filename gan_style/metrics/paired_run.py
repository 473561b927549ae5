"""``gan-style eval --paired`` below the CLI: translate scientific files exactly (optional), pair
each translation with its ground truth and measure MAE / PSNR / SSIM in the data's units, beside
the baselines (the input untranslated, histogram matching, the oracle linear map).

    info = translate_for_paired("runs/mr2ct/last.pt", "AtoB", Path("data/mr"), tmp)   # or a folder of fakes
    results = compare_paired(tmp, Path("data/ct_truth"), data_range=4095)            # {"images": ..., "overall": ...}
    add_baselines(results, Baselines(Path("data/mr"), default_reference(info)), tmp, Path("data/ct_truth"))

The metrics and the file matching are in paired.py, the baselines in paired_baselines.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .paired import match_folders, paired_report
from .paired_baselines import Task, baselines, input_pairs, reference_values

if TYPE_CHECKING:
    from ..inference.weights import GeneratorInfo

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
                         volume: int | None = None) -> GeneratorInfo:
    """Translate the files of ``src`` into ``out`` (same relative paths) exactly, in their units;
    a file that cannot be translated is a warning and is left out. Returns what the generator is."""
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
    return gen.info


def compare_paired(fake: Path, real: Path, limit: int | None = None, data_range: float | None = None,
                   mask_above: float | None = None, axis: int = 2, volume: int | None = None) -> dict:
    """Each file of ``fake`` against its ground truth in ``real`` (the first ``limit`` pairs):
    paired.paired_report's per-file rows and overall values."""
    pairs = match_folders(fake, real)[:limit]
    if not pairs:
        raise ValueError(f"no file of {fake} has a ground truth in {real} (same relative path, or same name "
                         "with another suffix)")
    return paired_report(pairs, data_range, mask_above, axis, volume)


@dataclass
class Baselines:
    """What the baselines need: the untranslated ``inputs`` (None: no baselines), the target domain's
    training data for histogram matching (``reference``, and where it came from) and ``oracle``."""

    inputs: Path | None = None
    reference: Path | None = None
    reference_from: str = "--reference"
    oracle: bool = False


def default_reference(info: GeneratorInfo, data_root: Path | None = None) -> Baselines:
    """The target domain's training folder of a training checkpoint: ``<data root>/train<target>``
    (``data_root``: instead of the recorded one), when it exists."""
    root = data_root or (Path(info.data_root) if info.data_root else None)
    if root is None or info.direction not in ("AtoB", "BtoA"):
        return Baselines()
    folder = root / f"train{info.direction[-1]}"
    where = "--data-root" if data_root else "the checkpoint's data.root"
    return Baselines(reference=folder, reference_from=f"{where}/train{info.direction[-1]}") if folder.is_dir() \
        else Baselines()


def add_baselines(results: dict, how: Baselines, fake: Path, real: Path, limit: int | None = None,
                  mask_above: float | None = None, axis: int = 2, volume: int | None = None) -> None:
    """``results["baselines"]`` (paired_baselines.baselines) for the pairs ``compare_paired`` measured;
    None without inputs."""
    if how.inputs is None:
        results["baselines"] = None
        return
    pairs = {p.real: p for p in match_folders(fake, real)[:limit]}
    inputs = {truth: source for truth, source in input_pairs(how.inputs, real).items() if truth in pairs}
    if not inputs:
        raise ValueError(f"--input {how.inputs}: no file pairs with a ground truth in {real} (same relative path, "
                         "or same name with another suffix)")
    task = Task(pairs, inputs, results["data_range"], mask_above, axis, volume, oracle=how.oracle)
    if how.reference is not None:
        task.reference = reference_values(how.reference, axis, volume)
        task.notes.append(f"histogram matching: each input onto the values of {how.reference} ({how.reference_from})")
    else:
        task.notes.append("histogram matching: left out (it needs the target domain's training data: --reference DIR)")
    results["baselines"] = baselines(task)
