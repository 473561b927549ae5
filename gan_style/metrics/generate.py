"""Run a generator over a folder and accumulate what the metrics need, in one pass.

For each readable input image x (as ``gan-style translate`` would read it): fake = G(x), and
with the opposite generator F, rec = F(fake) (cycle). Fakes are quantised to 8 bits, exactly as
if saved to PNG and read back: evaluating in memory equals evaluating a saved folder (exactly with
batch size 1; batching changes only float rounding, rarely one 8-bit level).
Consecutive images of the same size are batched (InstanceNorm is per image, so batching does
not change the result). Uses the inference API only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..inference.translate import Generator, translate_tensor
from ..io.images import ImageReadError, read_rgb
from ..io.tensors import float_to_uint8, image_to_float
from .colour import ColourHistogram
from .cycle import to_unit
from .registry import PAIR_METRICS

logger = logging.getLogger(__name__)


@dataclass
class Translated:
    """What one pass over the inputs produced."""

    features: np.ndarray | None  # (n, d) Inception features of the fakes (None without an extractor)
    colours: ColourHistogram
    cycle: dict[str, float]  # mean per-image l1 / psnr / ssim of rec vs input ({} without F)
    names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _batches(paths: list[Path], batch_size: int, skipped: list[str]):
    """Yield (names, (N, 3, H, W) float in [-1, 1]) of consecutive same-size readable images."""
    names, batch = [], []
    for path in paths:
        try:
            x = image_to_float(read_rgb(path))
        except ImageReadError as e:
            skipped.append(str(e))
            logger.warning("skipped unreadable image: %s", e)
            continue
        if batch and (x.shape != batch[0].shape or len(batch) == batch_size):
            yield names, torch.stack(batch)
            names, batch = [], []
        names.append(path.name)
        batch.append(x)
    if batch:
        yield names, torch.stack(batch)


def translate_and_measure(
    paths: list[Path],
    gen: Generator,
    back: Generator | None = None,
    extractor: Callable[[list[torch.Tensor]], np.ndarray] | None = None,
    batch_size: int = 8,
    tile: int | str | None = "auto",
    progress: bool = True,
) -> Translated:
    """One pass: translate ``paths`` with ``gen``; features, colours and (with ``back``) cycle metrics."""
    skipped: list[str] = []
    names: list[str] = []
    feats, colours = [], ColourHistogram()
    per_image: dict[str, list[torch.Tensor]] = {k: [] for k in PAIR_METRICS}
    bar = tqdm(total=len(paths), unit="img", desc="translate", disable=not progress, leave=False)
    for batch_names, x in _batches(paths, batch_size, skipped):
        fake = translate_tensor(gen, x, tile=tile)  # (N, 3, H, W) in [-1, 1], CPU fp32
        fake_u8 = float_to_uint8(fake)
        colours.add(fake_u8)
        if extractor is not None:
            feats.append(extractor(list(fake_u8)))
        if back is not None:
            rec = translate_tensor(back, fake, tile=tile)
            for key, fn in PAIR_METRICS.items():
                per_image[key].append(fn(to_unit(rec), to_unit(x)))
        names += batch_names
        bar.update(len(batch_names))
    bar.close()
    if not names:
        raise ValueError(f"no input image could be read ({len(skipped)} unreadable)")
    cycle = {f"cycle_{k}": float(torch.cat(v).mean()) for k, v in per_image.items() if v}
    features = np.concatenate(feats) if feats else None
    return Translated(features, colours, cycle, names, skipped)
