"""Baselines beside every paired evaluation: what a translation has to beat, in the same figures.

For each ground truth whose input (the untranslated file) is known, besides the model's own
translation:

- ``untranslated``: the input itself, only where its units are the truth's (its format says the
  same units: e.g. both HU, or both int16 NIfTI values), else left out with a note;
- ``histogram matching``: the input's values mapped onto the histogram of the target domain's
  training data (``skimage.exposure.match_histograms``, per file and channel): unpaired and without
  learning, so a translation that loses to it has learnt no more than an intensity curve;
- ``oracle`` (on request): the best linear map ``a * x + b``, least-squares fitted on the answer
  itself over every pair (over the masked values for the masked figures): no unpaired method can
  know it.

Each gets MAE, PSNR and SSIM (paired.py's definitions, the evaluation's one data range) over all
values and, with ``mask_above``, within the mask; the overall figures pool the files as the
model's do. A file whose input or translation cannot be compared is one warning line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.files import list_files
from ..io.scans import format_of, is_scan_file
from .paired import Pair, match_folders, measure, overall, read_finite, truth_mask

logger = logging.getLogger(__name__)

MODEL, UNTRANSLATED, HISTOGRAM, ORACLE = "model", "input untranslated", "histogram matching", "best linear map (oracle)"
REFERENCE_VALUES = 2**24  # values of the target domain kept for its histogram (an even sample above this)


@dataclass
class Task:
    """What the baselines are measured on: (name, translation, input, truth) files and the settings."""

    fakes: dict[Path, Pair]  # truth file -> the model's pair
    inputs: dict[Path, Path]  # truth file -> its untranslated input
    data_range: float
    mask_above: float | None = None
    axis: int = 2
    volume: int | None = None
    reference: np.ndarray | None = None  # (N, C) values of the target training domain
    oracle: bool = False
    notes: list[str] = field(default_factory=list)


def reference_values(folder: Path, axis: int = 2, volume: int | None = None, seed: int = 0) -> np.ndarray:
    """(N, C) values of every scientific file under ``folder`` (the target domain's training data),
    an even random sample of ``REFERENCE_VALUES`` when there are more; ValueError if none."""
    files = list_files(folder, True, is_scan_file)
    if not files:
        raise ValueError(f"--reference {folder}: no scientific image files (the target domain's training data)")
    values = [read_finite(path, axis, volume).planes for path in files]
    channels = {v.shape[-1] for v in values}
    if len(channels) > 1:
        raise ValueError(f"--reference {folder}: files with {sorted(channels)} channels; give one domain's files")
    flat = np.concatenate([v.reshape(-1, v.shape[-1]) for v in values]).astype(np.float64)
    if len(flat) > REFERENCE_VALUES:
        flat = flat[np.random.default_rng(seed).choice(len(flat), REFERENCE_VALUES, replace=False)]
    return flat


def match_histogram(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(S, H, W, C) values mapped onto the histogram of ``reference`` ((N, C)), channel by channel."""
    from skimage.exposure import match_histograms

    if x.shape[-1] != reference.shape[-1]:
        raise ValueError(f"{x.shape[-1]} channel(s), but the reference has {reference.shape[-1]}")
    shape = (-1,) + (1,) * (x.ndim - 2) + (reference.shape[-1],)  # skimage wants as many dimensions
    return match_histograms(x, reference.reshape(shape), channel_axis=-1)


def fit_linear(task: Task) -> dict[str, tuple[float, float]]:
    """The oracle: (a, b) minimising sum (a x + b - truth)^2 over every pair, for "all" values and
    (with a mask) for the "mask"'s."""
    sums = {key: np.zeros(5) for key in _masks(task)}  # n, sum x, sum y, sum xx, sum xy
    for truth_path, input_path in task.inputs.items():
        try:
            x, y, masks, _ = _arrays(task, input_path, truth_path)
        except (ValueError, OSError):
            continue  # reported when measured
        for key, mask in masks.items():
            xs, ys = (x, y) if mask is None else (x[mask], y[mask])
            sums[key] += [xs.size, xs.sum(), ys.sum(), np.square(xs).sum(), (xs * ys).sum()]
    fits = {}
    for key, (n, sx, sy, sxx, sxy) in sums.items():
        var = n * sxx - sx * sx
        a = (n * sxy - sx * sy) / var if n and var > 0 else 0.0
        fits[key] = (float(a), float((sy - a * sx) / n) if n else 0.0)
    return fits


def _masks(task: Task) -> list[str]:
    return ["all"] + (["mask"] if task.mask_above is not None else [])


def _arrays(task: Task, input_path: Path, truth_path: Path) -> tuple[np.ndarray, np.ndarray, dict, bool]:
    """(input, truth) as float64, the masks ("all": None, "mask") and whether their units are the
    same; ValueError if their shapes differ."""
    x, truth = read_finite(input_path, task.axis, task.volume), read_finite(truth_path, task.axis, task.volume)
    if x.planes.shape != truth.planes.shape:
        raise ValueError(f"{input_path} has another shape than {truth_path}: its baselines are left out")
    masks = {"all": None} | ({"mask": truth_mask(truth, task.mask_above)} if task.mask_above is not None else {})
    return x.planes.astype(np.float64), truth.planes.astype(np.float64), masks, _units(x) == _units(truth)


def _predictions(task: Task, input_path: Path, truth_path: Path, fits: dict) -> tuple[np.ndarray, dict, dict]:
    """(truth, masks, {method: {mask key: prediction}}) for one file."""
    pair = task.fakes[truth_path]
    x, truth, masks, same_units = _arrays(task, input_path, truth_path)
    fake = read_finite(pair.fake, task.axis, task.volume).planes
    if fake.shape != truth.shape:
        raise ValueError(f"{pair.fake} has another shape than {truth_path}")
    methods = {MODEL: {key: fake for key in masks}}
    if same_units:
        methods[UNTRANSLATED] = {key: x for key in masks}
    if task.reference is not None:
        matched = match_histogram(x, task.reference)
        methods[HISTOGRAM] = {key: matched for key in masks}
    if task.oracle:
        methods[ORACLE] = {key: fits[key][0] * x + fits[key][1] for key in masks}
    return truth, masks, methods


def _units(scan) -> str:
    return format_of(scan).units(scan)


def baselines(task: Task) -> dict:
    """{method: {"all": overall figures, "mask": within the mask or absent}} for the model and its
    baselines, over the files that have an input; and ``notes`` (what was left out and why)."""
    fits = fit_linear(task) if task.oracle else {}
    rows: dict[str, dict[str, list[dict]]] = {}
    untranslated_shown = True
    for truth_path, input_path in task.inputs.items():
        try:
            truth, masks, methods = _predictions(task, input_path, truth_path, fits)
        except (ValueError, OSError) as e:
            logger.warning("baselines: %s", e)
            task.notes.append(f"left out: {e}")
            continue
        untranslated_shown &= UNTRANSLATED in methods
        name = task.fakes[truth_path].name
        for method, by_mask in methods.items():
            for key, pred in by_mask.items():
                rows.setdefault(method, {}).setdefault(key, []).append(
                    measure(name, pred, truth, task.data_range, masks[key]))
    if not rows:
        raise ValueError("no file could be compared with its input: no baselines")
    if not untranslated_shown:
        rows.pop(UNTRANSLATED, None)
        task.notes.append("input untranslated: left out (the input's units are not the ground truth's)")
    figures = {method: {key: overall(r, task.data_range) for key, r in by_mask.items()}
               for method, by_mask in rows.items()}
    return {"methods": figures, "files": len(rows[MODEL]["all"]), "notes": task.notes,
            "oracle_fit": {key: {"a": a, "b": b} for key, (a, b) in fits.items()}}


def model_loses(report: dict) -> list[str]:
    """One line per figure where a baseline that needs no answer beats the model (MAE, lower is better)."""
    methods = report["methods"]
    lines = []
    for key in methods[MODEL]:
        where = "all values" if key == "all" else "within the mask"
        better = [m for m in (UNTRANSLATED, HISTOGRAM) if m in methods and methods[m][key]["mae"] < methods[MODEL][key]["mae"]]
        if better:
            lines.append(f"the model loses on MAE ({where}) to: {', '.join(better)}")
    return lines


def format_baselines(report: dict, mask_above: float | None) -> str:
    """The model and its baselines as a table: MAE, PSNR, SSIM over all values (and within the mask)."""
    keys = ["all"] + (["mask"] if mask_above is not None else [])
    header = ["method"] + [f"{m} ({'all' if k == 'all' else f'> {mask_above:g}'})" for k in keys
                           for m in ("MAE", "PSNR", "SSIM")]

    def cells(method: str) -> list[str]:
        out = [method]
        for key in keys:
            r = report["methods"][method][key]
            out += [f"{r['mae']:.4g}", "inf" if r["psnr"] is None else f"{r['psnr']:.2f}",
                    "-" if r["ssim"] is None else f"{r['ssim']:.4f}"]
        return out

    rows = [header] + [cells(m) for m in report["methods"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([f"baselines on the {report['files']} file(s) with an input:", *lines,
                      *model_loses(report), *report["notes"]])


def input_pairs(inputs: Path, real: Path) -> dict[Path, Path]:
    """Truth file -> its untranslated input file (paired as translations are: same relative path or name)."""
    return {pair.real: pair.fake for pair in match_folders(inputs, real)}
