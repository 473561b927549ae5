"""Paired metrics: a translation against its registered ground truth, in the data's own units.

For scientific and medical images with a true target (e.g. MR -> CT pairs, values in HU), the
error is measured on the values ``read_scan`` gives (``Scan.planes``, (S, H, W, C)), never on an
8-bit rendering. Arrays are compared as float64.

- MAE: mean |pred - truth|, in the data's units (HU for CT).
- PSNR: 10 log10(data_range^2 / MSE), in dB. MSE 0 (identical) is infinite: ``psnr`` returns
  ``math.inf`` and the report stores ``null`` (JSON has no infinity).
- SSIM: ``skimage.metrics.structural_similarity`` on each 2-D plane: uniform 7 x 7 window
  (skimage's default; ``gaussian_weights=False``), K1 = 0.01, K2 = 0.03, sample covariance
  (``use_sample_covariance=True``), constants from ``data_range``, channels (C > 1) each on its
  own and averaged. A plane's value is the mean of its SSIM map away from the border (where the
  window fits, as skimage does); a scan's is the mean over its planes. Planes of 3 to 6 px use the
  largest odd window that fits (a 5 x 5 plane: 5); planes under 3 px are refused for that pair.
- ``data_range``: given by the user, else (max - min) of the ground truth over ALL ground-truth
  files of the evaluation (all their values, mask or not): one range for every pair, so the PSNR
  and SSIM of different images are on one scale. A constant ground truth needs an explicit range.
- Mask (``mask_above``): only values where truth > threshold count (e.g. -500 HU: the body, not
  the air around it), per value (per channel). SSIM is then the mean of the SSIM maps over the
  masked values away from the border, pooled over the planes; ``None`` if no masked value lies
  where the window fits.

``paired_report`` evaluates matched files (``match_folders``): per image and overall (MAE and
PSNR from the sums over all compared values, i.e. value-weighted; SSIM the mean of the images').
A pair that cannot be compared (unreadable, shapes differ, NaN / Inf, nothing in the mask) is one
warning line and one entry of ``errors``; the other pairs are still evaluated.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from ..io.files import list_files
from ..io.scans import Scan, format_of, is_scan_file, read_scan, scan_suffixes

logger = logging.getLogger(__name__)

SSIM_WINDOW = 7  # skimage's default uniform window


class Pair(NamedTuple):
    """A translation and its ground truth. ``name``: the relative path used in reports."""

    name: str
    fake: Path
    real: Path


# ---------------------------------------------------------------- the metrics on arrays


def _check(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> None:
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"expected two (S, H, W, C) arrays of one shape, got {pred.shape} and {truth.shape}")
    if mask is not None and mask.shape != truth.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the images' {truth.shape}")


def _differences(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """pred - truth as float64, flattened to the compared values (inside the mask)."""
    _check(pred, truth, mask)
    diff = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return diff[mask] if mask is not None else diff.ravel()


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error of (S, H, W, C) arrays, in their units; ``mask``: bool, same shape."""
    diff = _differences(pred, truth, mask)
    return float(np.abs(diff).mean()) if diff.size else math.nan


def psnr_from_mse(mse: float, data_range: float) -> float:
    """10 log10(data_range^2 / MSE) in dB; ``math.inf`` for MSE 0."""
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of (S, H, W, C) arrays over all their planes (one MSE); ``math.inf`` if identical."""
    diff = _differences(pred, truth, mask)
    return psnr_from_mse(float(np.mean(diff**2)), data_range) if diff.size else math.nan


def ssim_window(height: int, width: int) -> int:
    """The SSIM window for planes of this size: 7, or the largest odd size that fits (3 to 6 px)."""
    side = min(height, width, SSIM_WINDOW)
    win = side if side % 2 else side - 1
    if win < 3:
        raise ValueError(f"planes of {height}x{width} px are too small for SSIM (at least 3x3 px)")
    return win


def _ssim_sums(pred: np.ndarray, truth: np.ndarray, data_range: float,
               mask: np.ndarray | None) -> tuple[float, int]:
    """Sum and count of the SSIM map values that count: away from the border, inside the mask."""
    from skimage.metrics import structural_similarity

    _check(pred, truth, mask)
    _, h, w, c = truth.shape
    win = ssim_window(h, w)
    pad = (win - 1) // 2  # skimage's own crop: where the window lies wholly inside the plane
    inner = (slice(pad, h - pad), slice(pad, w - pad))
    total, count = 0.0, 0
    for i in range(truth.shape[0]):
        p, t = np.asarray(pred[i], np.float64), np.asarray(truth[i], np.float64)  # (H, W, C)
        if c == 1:  # skimage wants a 2-D plane without channel axis
            _, smap = structural_similarity(p[..., 0], t[..., 0], win_size=win, data_range=data_range, full=True)
            smap = smap[..., None]
        else:
            _, smap = structural_similarity(p, t, win_size=win, data_range=data_range, channel_axis=-1, full=True)
        smap = smap[inner]  # (H - 2 pad, W - 2 pad, C)
        if mask is not None:
            smap = smap[mask[i][inner]]
        total += float(smap.sum(dtype=np.float64))
        count += int(smap.size)
    return total, count


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float | None:
    """SSIM of (S, H, W, C) arrays: the mean over planes of skimage's SSIM (window in the module
    docstring). With ``mask``: the mean SSIM map over the masked values; None if none is inside."""
    total, count = _ssim_sums(pred, truth, data_range, mask)
    return total / count if count else None


# ---------------------------------------------------------------- matching files


def _key(relative: str) -> str:
    """The relative path without its scan suffix: a.png and a.tif, case1.nii.gz and case1.nii match."""
    lower = relative.lower()
    for suffix in sorted(scan_suffixes(), key=len, reverse=True):  # .nii.gz before .gz-less ones
        if lower.endswith(suffix):
            return relative[: -len(suffix)]
    return relative


def scan_files(folder: Path) -> dict[str, Path]:
    """Relative path (posix) -> file, for every scientific image under ``folder`` (recursive)."""
    if not folder.is_dir():
        raise ValueError(f"{folder} does not exist or is not a folder")
    return {path.relative_to(folder).as_posix(): path for path in list_files(folder, True, is_scan_file)}


def match_folders(fake: Path, real: Path) -> list[Pair]:
    """Pairs of files of ``fake`` and ``real``: the same relative path, else the same relative path
    without the suffix (a.png with a.tif) when that is unambiguous. Unmatched files are one warning."""
    fake, real = Path(fake), Path(real)
    fakes, reals = scan_files(fake), scan_files(real)
    pairs = {rel: Pair(rel, fakes[rel], reals[rel]) for rel in fakes.keys() & reals.keys()}
    by_key: dict[str, tuple[list[str], list[str]]] = {}
    for side, files in ((0, fakes), (1, reals)):
        for rel in files.keys() - pairs.keys():
            by_key.setdefault(_key(rel), ([], []))[side].append(rel)
    for rest_fake, rest_real in by_key.values():
        if len(rest_fake) == 1 and len(rest_real) == 1:
            pairs[rest_fake[0]] = Pair(rest_fake[0], fakes[rest_fake[0]], reals[rest_real[0]])
    lone_fake = sorted(fakes.keys() - pairs.keys())
    lone_real = sorted(reals.keys() - {p.real.relative_to(real).as_posix() for p in pairs.values()})
    for label, folder, lone in (("translation", fake, lone_fake), ("ground truth", real, lone_real)):
        if lone:
            shown = ", ".join(lone[:10]) + (f" and {len(lone) - 10} more" if len(lone) > 10 else "")
            logger.warning("%d file(s) of %s without a %s, skipped: %s", len(lone), folder,
                           "ground truth" if label == "translation" else "translation", shown)
    return [pairs[k] for k in sorted(pairs)]


# ---------------------------------------------------------------- reports over files


def _finite(scan: Scan) -> None:
    if not np.isfinite(scan.planes).all():  # integer arrays are always finite
        bad = int(np.size(scan.planes) - np.count_nonzero(np.isfinite(scan.planes)))
        raise ValueError(f"{scan.path}: {bad} NaN/Inf value(s): fix or drop the file")


def read_finite(path: Path, axis: int, volume: int | None) -> Scan:
    scan = read_scan(path, axis, volume)
    _finite(scan)
    return scan


def _truth_range(pairs: list[Pair], axis: int, volume: int | None, errors: dict[str, str]) -> tuple[float, float]:
    """(min, max) of every readable ground truth; a truth that fails is recorded in ``errors``."""
    low, high = math.inf, -math.inf
    for pair in pairs:
        try:
            planes = read_finite(pair.real, axis, volume).planes
        except (ValueError, OSError) as e:
            errors[pair.name] = str(e)
            logger.warning("%s: %s", pair.name, e)
            continue
        if planes.size:
            low, high = min(low, float(planes.min())), max(high, float(planes.max()))
    return low, high


def _compare(pair: Pair, data_range: float, mask_above: float | None, axis: int, volume: int | None) -> dict:
    """One pair's values, plus the sums the overall numbers need; raises ValueError (one line)."""
    fake, real = read_finite(pair.fake, axis, volume), read_finite(pair.real, axis, volume)
    if fake.planes.shape != real.planes.shape:
        raise ValueError(f"shapes differ: {pair.fake} is {_shape(fake)}, {pair.real} is {_shape(real)} "
                         "(translate at the ground truth's size and registration)")
    row = measure(pair.name, fake.planes, real.planes, data_range, truth_mask(real, mask_above))
    return row | {"_units": format_of(real).units(real)}


def truth_mask(truth: Scan, mask_above: float | None) -> np.ndarray | None:
    """Where the ground truth exceeds ``mask_above`` (None: everywhere); ValueError if nowhere."""
    if mask_above is None:
        return None
    mask = truth.planes > mask_above
    if not mask.any():
        raise ValueError(f"{truth.path}: no ground-truth value above --mask-above {mask_above:g} (lower it)")
    return mask


def measure(name: str, pred: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None) -> dict:
    """One image's row: MAE, PSNR, SSIM and the number of values compared (within ``mask``), plus
    the sums ``overall`` pools (``_sums``)."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)  # (S, H, W, C)
    diff = _differences(pred, truth, mask)
    ssim_total, ssim_count = _ssim_sums(pred, truth, data_range, mask)
    abs_sum, sq_sum = float(np.abs(diff).sum()), float(np.square(diff).sum())
    mse = sq_sum / diff.size
    return {"name": name, "mae": abs_sum / diff.size, "psnr": _json_db(psnr_from_mse(mse, data_range)),
            "ssim": ssim_total / ssim_count if ssim_count else None, "pixels": int(diff.size),
            "_sums": (abs_sum, sq_sum)}


def _shape(scan: Scan) -> str:
    s, h, w, c = scan.planes.shape
    return f"{s} plane(s) of {h}x{w}x{c}"


def _json_db(value: float) -> float | None:
    """PSNR for JSON: infinity (identical values) becomes None (null)."""
    return None if math.isinf(value) else value


def paired_report(pairs: Iterable[Pair | tuple], data_range: float | None = None, mask_above: float | None = None,
                  axis: int = 2, volume: int | None = None) -> dict:
    """Paired metrics of ``pairs`` ((name, fake file, truth file)), read with ``read_scan(path, axis,
    volume)``. Without ``data_range``, the ground truths are read twice: first for their range.

    Returns a JSON-ready dict: ``images`` [{name, mae, psnr, ssim, pixels}] (psnr null = identical),
    ``overall`` {mae, psnr, ssim, pixels, images}, ``data_range``, ``data_range_from``, ``mask_above``,
    ``units``, ``errors`` [{name, error}]. Raises ValueError when no pair can be compared."""
    pairs = [Pair(*p) for p in pairs]
    if not pairs:
        raise ValueError("no pairs to evaluate")
    if data_range is not None and not data_range > 0:
        raise ValueError(f"--data-range {data_range}: must be positive")
    errors: dict[str, str] = {}
    source = "given"
    if data_range is None:
        low, high = _truth_range(pairs, axis, volume, errors)
        if math.isinf(low):
            name, error = next(iter(errors.items()))
            raise ValueError(f"none of the {len(pairs)} ground truth(s) could be read (first: {name}: {error})")
        if not high > low:
            raise ValueError(f"the ground truth is constant ({low:g}) in every file: give --data-range R")
        data_range, source = high - low, f"ground truth max - min over {len(pairs) - len(errors)} file(s)"
    rows = []
    for pair in pairs:
        if pair.name in errors:
            continue
        try:
            rows.append(_compare(pair, data_range, mask_above, axis, volume))
        except (ValueError, OSError) as e:  # ScanError is a ValueError
            errors[pair.name] = str(e)
            logger.warning("%s: %s", pair.name, e)
    if not rows:
        raise ValueError(f"none of the {len(pairs)} pair(s) could be compared (first: {next(iter(errors.items()))[1]})")
    return {"images": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "overall": overall(rows, data_range), "data_range": data_range, "data_range_from": source,
            "mask_above": mask_above, "units": ", ".join(sorted({r["_units"] for r in rows})),
            "errors": [{"name": n, "error": e} for n, e in errors.items()]}


def overall(rows: list[dict], data_range: float) -> dict:
    """MAE and PSNR from the sums over every compared value; SSIM the mean of the images'."""
    n = sum(r["pixels"] for r in rows)
    abs_sum, sq_sum = (sum(r["_sums"][i] for r in rows) for i in (0, 1))
    ssims = [r["ssim"] for r in rows if r["ssim"] is not None]
    return {"mae": abs_sum / n, "psnr": _json_db(psnr_from_mse(sq_sum / n, data_range)),
            "ssim": float(np.mean(ssims)) if ssims else None, "pixels": n, "images": len(rows)}


def format_paired(report: dict) -> str:
    """The per-image table and the overall line, as plain text with units."""
    units = report["units"]

    def cells(name: str, r: dict) -> list[str]:
        db = "inf" if r["psnr"] is None else f"{r['psnr']:.2f}"
        return [name, f"{r['mae']:.4g}", db, "-" if r["ssim"] is None else f"{r['ssim']:.4f}", str(r["pixels"])]

    header = ["image", "MAE", "PSNR (dB)", "SSIM", "values"]
    rows = [cells(r["name"], r) for r in report["images"]]
    total = cells(f"overall ({report['overall']['images']} images)", report["overall"])
    widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    mask = "" if report["mask_above"] is None else f"; only where truth > {report['mask_above']:g}"
    notes = [f"MAE in {units}; data range {report['data_range']:g} ({report['data_range_from']}){mask}",
             f"SSIM: {SSIM_WINDOW}x{SSIM_WINDOW} uniform window per plane (skimage), PSNR inf = identical"]
    skipped = [f"skipped {e['name']}: {e['error']}" for e in report["errors"]]
    return "\n".join([line(header), rule, *map(line, rows), rule, line(total), *notes, *skipped])
