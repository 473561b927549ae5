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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..inference.translate import Generator, translate_tensor
from ..io.images import ImageReadError, read_rgb
from ..io.tensors import image_to_float
from .accumulate import Accumulator, Extractor, Measured

logger = logging.getLogger(__name__)


@dataclass
class Translated(Measured):
    """What one pass over the inputs produced: the measurements (``cycle`` keys prefixed:
    cycle_l1, cycle_psnr, cycle_ssim), the names translated and the files skipped."""

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
    extractor: Extractor | None = None,
    batch_size: int = 8,
    tile: int | str | None = "auto",
    progress: bool = True,
) -> Translated:
    """One pass: translate ``paths`` with ``gen``; features, colours and (with ``back``) cycle metrics."""
    skipped: list[str] = []
    names: list[str] = []
    measure = Accumulator(extractor)
    bar = tqdm(total=len(paths), unit="img", desc="translate", disable=not progress, leave=False)
    for batch_names, x in _batches(paths, batch_size, skipped):
        fake = translate_tensor(gen, x, tile=tile)  # (N, 3, H, W) in [-1, 1], CPU fp32
        rec = translate_tensor(back, fake, tile=tile) if back is not None else None
        measure.add(fake, x, rec)
        names += batch_names
        bar.update(len(batch_names))
    bar.close()
    if not names:
        raise ValueError(f"no input image could be read ({len(skipped)} unreadable)")
    done = measure.result()
    cycle = {f"cycle_{key}": value for key, value in done.cycle.items()}
    return Translated(done.features, done.colours, cycle, names, skipped)
