"""Training data from scientific images, exactly: 16-bit and float pixels, 1 to N channels, TIFF
stacks, folders of DICOM files and NIfTI volumes cut into 2-D slices (docs/science.md).

A domain whose ``data.intensity.<A|B>.mode`` is set is read through ``io/scans.py`` in its own
units and normalised to [-1, 1] by its ``Intensity`` (io/intensity.py), then augmented in
float32. A domain left at mode null keeps the 8-bit RGB path of photos. At start:

- every file's planes are counted from its header (a NIfTI volume of 180 slices gives 180
  training images along ``data.axis``; a DICOM file, one per frame);
- the domain's intensity is resolved from up to ``SAMPLE_PLANES`` planes spread over the data
  (percentiles per dataset are computed here, once; mixed dtypes are reported here);
- planes of multi-plane files (volumes, stacks) with less than ``data.min_foreground`` of their
  pixels above 5% of the window are dropped: the empty slices above and below a body.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import torch

from ..io.images import ImageReadError, read_rgb
from ..io.intensity import Intensity, IntensityError, dtype_range, nonfinite
from ..io.files import list_files
from ..io.scans import ScanError, is_scan_file, plane_count, read_plane, scan_format
from .dataset import LAYOUT_HELP, DataError, UnpairedDataset, build_transform, find_images

logger = logging.getLogger(__name__)

SAMPLE_PLANES = 64  # planes read at start to resolve a domain's intensity
SAMPLE_PIXELS = 200_000  # pixels per plane kept for dataset percentiles (a strided subsample)


@dataclass(frozen=True)
class Plane:
    """One 2-D training image: plane ``index`` of ``path`` (0 for a plain 2-D file)."""

    path: Path
    index: int

    def __str__(self) -> str:
        return f"{self.path}[{self.index}]" if self.index or _slices(self.path) else str(self.path)

    @property
    def parent(self) -> Path:
        return self.path.parent


def _slices(path: Path) -> bool:
    """Whether the planes of ``path`` are slices of a volume (labelled file[0] too)."""
    fmt = scan_format(path)
    return fmt is not None and fmt.planes_are_slices


@dataclass(frozen=True)
class Reading:
    """How planes are read: NIfTI slicing ``axis`` and 4-D ``volume``."""

    axis: int = 2
    volume: int | None = None

    def plane(self, plane: Plane) -> np.ndarray:
        return read_plane(plane.path, plane.index, self.axis, self.volume)


def index_planes(folder: Path, reading: Reading) -> list[Plane]:
    """Every plane of every scientific image file in ``folder``; unreadable headers are reported and skipped."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist: {LAYOUT_HELP}")
    planes: list[Plane] = []
    for path in list_files(folder, accept=is_scan_file):
        try:
            planes += [Plane(path, i) for i in range(plane_count(path, reading.axis, reading.volume))]
        except ScanError as e:
            logger.warning("skipped: %s", e)
    if not planes:
        raise DataError(f"image folder {folder} holds no readable scientific images (.tif, .dcm, .nii, .png ...): "
                        f"{LAYOUT_HELP}")
    return planes


def spread(items: list, n: int) -> list:
    """At most ``n`` items evenly spread over ``items`` (first and last included)."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def sample_values(planes: list[Plane], reading: Reading, label: str) -> tuple[list[np.ndarray], str]:
    """Finite values (float64, strided to ``SAMPLE_PIXELS``) of up to ``SAMPLE_PLANES`` planes spread
    over the domain, and its dtype (the most common; a mix is reported in one line)."""
    samples, dtypes = [], Counter()
    for plane in spread(planes, SAMPLE_PLANES):
        try:
            x = reading.plane(plane)
        except ScanError as e:
            logger.warning("skipped: %s", e)
            continue
        dtypes[str(x.dtype)] += 1
        finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x.ravel()
        samples.append(finite[:: max(1, finite.size // SAMPLE_PIXELS)].astype(np.float64))
    if not samples:
        raise DataError(f"domain {label}: none of the sampled files can be read")
    if len(dtypes) > 1:
        logger.warning("domain %s mixes %s: values are used in their own units, normalised with one window "
                       "(outputs into this domain are written in the most common dtype: translate --keep-input-dtype keeps each input's)", label, ", ".join(f"{n} {d}" for d, n in dtypes.items()))
    return samples, dtypes.most_common(1)[0][0]


def resolve_intensity(spec, planes: list[Plane], reading: Reading, channels: int, label: str) -> Intensity:
    """The domain's ``Intensity`` from its config section ``spec`` (config.IntensityConfig) and a
    sample of its planes: the dtype, and the percentiles when they are per dataset."""
    samples, dtype = sample_values(planes, reading, label)
    common = dict(mode=spec.mode, dtype=dtype, channels=channels)
    if spec.mode == "window":
        return Intensity(low=spec.low, high=spec.high, **common)
    if spec.mode == "range":
        try:
            low, high = dtype_range(dtype)
        except IntensityError:
            raise DataError(f"data.intensity.{label}.mode=range: domain {label} holds {dtype} data, which has no "
                            "full range: use mode=window or mode=percentile") from None
        return Intensity(low=low, high=high, **common)
    pcts = (spec.low, spec.high)
    if spec.per == "image":  # outputs need one window: the median of the sampled images' own
        low, high = np.median([np.percentile(s, pcts) for s in samples if s.size], axis=0)
    else:
        low, high = np.percentile(np.concatenate(samples), pcts)
    return Intensity(low=float(low), high=float(max(high, low + 1e-6)), per_image=spec.per == "image",
                     percentiles=pcts, **common)


def foreground(x: np.ndarray, intensity: Intensity) -> float:
    """Fraction of pixels above 5% of the window (model value > -0.9): 0 for an empty slice."""
    return float(np.mean(intensity.to_model(x) > -0.9))


def drop_empty(planes: list[Plane], reading: Reading, intensity: Intensity, min_fraction: float, label: str) -> list[Plane]:
    """Planes of volumes and stacks with at least ``min_fraction`` foreground (2-D files are all kept)."""
    if min_fraction <= 0:
        return planes
    multi = Counter(p.path for p in planes)
    kept = []
    for plane in planes:
        try:
            if multi[plane.path] == 1 or foreground(reading.plane(plane), intensity) >= min_fraction:
                kept.append(plane)
        except ScanError:
            kept.append(plane)  # reported when it is read for training
    if len(kept) < len(planes):
        logger.info("domain %s: %d of %d slices are empty (under %g foreground) and skipped (data.min_foreground)",
                    label, len(planes) - len(kept), len(planes), min_fraction)
    if not kept:
        raise DataError(f"domain {label}: every slice is empty at data.min_foreground={min_fraction}: "
                        "lower it or check data.intensity")
    return kept


class ScanDataset(UnpairedDataset):
    """``UnpairedDataset``'s items ({'A': (C_A, H, W), 'B': (C_B, H, W), paths, 'skipped'}) from
    planes in data units. A domain whose intensity is None is read as 8-bit RGB (photos)."""

    def __init__(self, planes: dict[str, list], intensities: dict[str, Intensity | None], channels: dict[str, int],
                 reading: Reading, transform: A.Compose) -> None:
        self.paths, self.intensities, self.channels = planes, intensities, channels
        self.reading, self.transform = reading, transform
        self._bad = set()

    def _load(self, domain: str, item) -> np.ndarray:
        """(H, W, C) float32 in [-1, 1]; ScanError / ImageReadError for a file that cannot be used."""
        intensity = self.intensities[domain]
        if intensity is None:  # 8-bit RGB photos
            return np.asarray(read_rgb(item), dtype=np.float32) / 127.5 - 1.0
        x = self.reading.plane(item)
        if x.shape[-1] != self.channels[domain]:
            raise ScanError(f"{item}: {x.shape[-1]} channel(s), domain {domain} takes {self.channels[domain]} "
                            f"(model.{'input_nc' if domain == 'A' else 'output_nc'}): skipped")
        bad = nonfinite(x)
        if bad:
            logger.warning("%s: %d NaN/Inf value(s) set to the window's ends (NaN -> low)", item, bad)
        return intensity.to_model(x)

    def _decode(self, domain: str, item) -> np.ndarray:
        try:
            return self._load(domain, item)
        except ScanError as e:
            raise ImageReadError(str(e)) from None


def panel_candidates(items: list, n: int) -> list:
    """``items`` reordered for the panels: spread from a quarter of the way in (a volume's middle
    slices first, not its first, empty ones), then the rest."""
    step = max(1, len(items) // (4 * max(n, 1)))
    return items[len(items) // 4 :: step] + items[: len(items) // 4]


def load_fixed_planes(planes: list, n: int, size: int, intensity: Intensity | None, reading: Reading,
                      channels: int) -> torch.Tensor:
    """``n`` usable planes spread over ``planes`` (``panel_candidates``) as (n, C, size, size) in [-1, 1],
    for the sample panels."""
    dataset = ScanDataset({"A": planes}, {"A": intensity}, {"A": channels}, reading,
                          build_transform("resize_and_crop", size, size, flip=False, float_data=True))
    images = []
    for item in panel_candidates(planes, n):
        if len(images) == n:
            break
        try:
            images.append(dataset.transform(image=dataset._decode("A", item))["image"])
        except ImageReadError as e:
            logger.warning("%s", e)
    return torch.stack(images) if images else torch.empty(0, channels, size, size)


def domain_planes(folder: Path, intensity_spec, reading: Reading) -> list:
    """A domain's training items: planes of scientific files, or image paths for 8-bit RGB."""
    return find_images(folder) if intensity_spec.mode is None else index_planes(folder, reading)
