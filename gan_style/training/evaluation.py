"""The per-epoch evaluation behind the config keys ``eval.every`` / ``eval.n_images`` / ``eval.fid``.

Runs on rank 0 at the end of every ``eval.every``-th epoch, on a fixed subset (the first
``eval.n_images`` images of testA / testB, else trainA / trainB, resized to ``data.crop_size``),
so its cost is bounded and its values are comparable from epoch to epoch. Logged keys:

    eval/cycle_A_l1, eval/cycle_A_psnr, eval/cycle_A_ssim    A -> B -> A vs A (and the same for B);
                                                             only when both directions have a generator
    eval/colour_w1_B, eval/colour_tv_B                       (A -> B)(A) vs real B colours (and _A)
    eval/fid_B, eval/kid_B                                   only with eval.fid: true (Inception)

Which apply follows the method's generator map: a method with one generator (one direction) gets
the metrics of that direction (e.g. colour_w1_A and fid_A for B -> A) and no cycle metrics.

FID and KID compare the ``n_images`` fakes with all of train<target> (features cached on disk):
with few fakes FID is biased upwards, so compare values at a fixed ``n_images`` only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data.dataset import load_fixed_images
from ..data.splits import panel_split
from ..io.tensors import float_to_uint8
from ..metrics.accumulate import Accumulator
from ..metrics.colour import ColourHistogram
from ..metrics.registry import colour_metrics
from ..nets import translate_with

logger = logging.getLogger(__name__)

BATCH = 8
Translate = Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] -> its translation, same range


class EpochEvaluator:
    def __init__(self, root: str | Path, n_images: int, size: int, device: torch.device, fid: bool = False,
                 cache: Path | None = None) -> None:
        root = Path(root)
        split = panel_split(root)
        self.device = device
        self.real = {d: load_fixed_images(root / f"{split}{d}", n_images, size) for d in "AB"}  # (n, 3, s, s)
        self.colours = {d: ColourHistogram().add(float_to_uint8(x)) for d, x in self.real.items() if len(x)}
        self.extractor, self.real_features = None, {}
        if fid:
            from ..metrics.features import folder_features
            from ..metrics.inception import cache_dir, load_inception

            cache = cache if cache is not None else cache_dir()
            self.extractor = load_inception(device=device, cache=cache)
            self.real_features = {d: folder_features(root / f"train{d}", self.extractor, cache, progress=False).features
                                  for d in "AB"}

    def __call__(self, generators: Mapping[str, nn.Module], autocast: Callable = contextlib.nullcontext
                 ) -> dict[str, float]:
        """Metrics of the current generators, direction ("AtoB"/"BtoA") -> network, each run as its
        kind translates (``nets.translate_with``: one pass, or a multi-step kind's steps). Eval mode is
        not needed: no dropout, no running stats. Cycle metrics need both directions."""
        return self.measure({d: partial(translate_with, net) for d, net in generators.items()}, autocast)

    @torch.no_grad()
    def measure(self, translate: Mapping[str, Translate], autocast: Callable = contextlib.nullcontext
                ) -> dict[str, float]:
        """The metrics of translation functions, direction -> function (``__call__`` builds them)."""
        out: dict[str, float] = {}
        for src, dst in (("A", "B"), ("B", "A")):
            forward, backward = translate.get(f"{src}to{dst}"), translate.get(f"{dst}to{src}")
            if forward is None or len(self.real[src]) == 0 or dst not in self.colours:
                continue
            out |= self._direction(src, dst, forward, backward, autocast)
        return out

    def _direction(self, src: str, dst: str, forward: Translate, backward: Translate | None,
                   autocast: Callable) -> dict[str, float]:
        """src's fixed images through ``forward`` (and back through ``backward``), against dst's."""
        measure = Accumulator(self.extractor)
        real = self.real[src]
        for start in range(0, len(real), BATCH):
            x = real[start : start + BATCH].to(self.device)  # (n, 3, s, s) in [-1, 1]
            with autocast():
                fake = forward(x)
                rec = backward(fake) if backward is not None else None
            measure.add(fake, x, rec)
        done = measure.result()
        out = {f"eval/cycle_{src}_{key}": value for key, value in done.cycle.items()}
        out |= {f"eval/{key}_{dst}": value for key, value in colour_metrics(done.colours, self.colours[dst]).items()}
        if self.extractor is not None:
            out |= self._fid(done.features, dst)
        return out

    def log(self, generators: dict[str, nn.Module], autocast: Callable, monitor, step: int) -> dict[str, float]:
        """Evaluate, log the scalars (metrics.jsonl, W&B) and print one line."""
        metrics = self(generators, autocast)
        monitor.log(step, metrics)
        tqdm.write(summary(metrics))
        return metrics

    def _fid(self, gen: np.ndarray, dst: str) -> dict[str, float]:
        """FID and KID of the fakes' features (n, d) against all of train<dst>."""
        from ..metrics.stats import MetricError, fid, kid

        try:
            return {f"eval/fid_{dst}": fid(gen, self.real_features[dst]),
                    f"eval/kid_{dst}": kid(gen, self.real_features[dst])[0]}
        except MetricError as e:
            logger.warning("eval: %s", e)
            return {}


def summary(metrics: dict[str, float]) -> str:
    """One console line: 'eval: cycle A L1 0.081 PSNR 19.2 SSIM 0.61 | ...'."""
    parts = []
    for d in "AB":
        if f"eval/cycle_{d}_l1" in metrics:
            parts.append(f"cycle {d} L1 {metrics[f'eval/cycle_{d}_l1']:.4f} PSNR {metrics[f'eval/cycle_{d}_psnr']:.2f} "
                         f"SSIM {metrics[f'eval/cycle_{d}_ssim']:.4f}")
    for d in "AB":
        if f"eval/colour_w1_{d}" in metrics:
            parts.append(f"colour->{d} W1 {metrics[f'eval/colour_w1_{d}']:.4f}")
        if f"eval/fid_{d}" in metrics:
            parts.append(f"FID->{d} {metrics[f'eval/fid_{d}']:.2f} KIDx1e3 {metrics[f'eval/kid_{d}'] * 1e3:.2f}")
    return "eval: " + " | ".join(parts)
