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
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..data.dataset import load_fixed_images
from ..io.tensors import float_to_uint8
from ..metrics.colour import ColourHistogram
from ..metrics.cycle import to_unit
from ..metrics.registry import COLOUR_METRICS, PAIR_METRICS

logger = logging.getLogger(__name__)

BATCH = 8


class EpochEvaluator:
    def __init__(self, root: str | Path, n_images: int, size: int, device: torch.device, fid: bool = False,
                 cache: Path | None = None) -> None:
        root = Path(root)
        split = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
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

    @torch.no_grad()
    def __call__(self, generators: dict[str, nn.Module], autocast: Callable = contextlib.nullcontext) -> dict[str, float]:
        """Metrics of the current generators, direction ("AtoB"/"BtoA") -> network (eval mode is not
        needed: no dropout, no running stats). Cycle metrics need both directions."""
        out: dict[str, float] = {}
        for src, dst in (("A", "B"), ("B", "A")):
            forward, backward = generators.get(f"{src}to{dst}"), generators.get(f"{dst}to{src}")
            real = self.real[src]
            if forward is None or len(real) == 0 or dst not in self.colours:
                continue
            per_image = {k: [] for k in PAIR_METRICS}
            colours, feats = ColourHistogram(), []
            for start in range(0, len(real), BATCH):
                x = real[start : start + BATCH].to(self.device)
                with autocast():
                    fake = forward(x)
                    rec = backward(fake) if backward is not None else None
                fake = fake.float().cpu()
                for key, fn in PAIR_METRICS.items():
                    if rec is not None:
                        per_image[key].append(fn(to_unit(rec.float().cpu()), to_unit(x.cpu())))
                colours.add(float_to_uint8(fake))
                if self.extractor is not None:
                    feats.append(self.extractor(list(float_to_uint8(fake))))
            for key, values in per_image.items():
                if values:
                    out[f"eval/cycle_{src}_{key}"] = float(torch.cat(values).mean())
            for key, fn in COLOUR_METRICS.items():
                out[f"eval/{key}_{dst}"] = fn(colours, self.colours[dst])
            if self.extractor is not None:
                out |= self._fid(feats, dst)
        return out

    def log(self, generators: dict[str, nn.Module], autocast: Callable, monitor, step: int) -> dict[str, float]:
        """Evaluate, log the scalars (metrics.jsonl, W&B) and print one line."""
        metrics = self(generators, autocast)
        monitor.log(step, metrics)
        tqdm.write(summary(metrics))
        return metrics

    def _fid(self, feats: list, dst: str) -> dict[str, float]:
        import numpy as np

        from ..metrics.stats import MetricError, fid, kid

        gen = np.concatenate(feats)
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
