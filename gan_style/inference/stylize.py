"""Style from one painting (Gatys, Ecker, Bethge 2015, "A Neural Algorithm of Artistic Style"):
optimise the pixels of the output so that its features keep the photo's content and its Gram
matrices match the painting's, with the normalised objective of gan_style/nets/perceptual.py
(one ``strength`` in [0, 1] instead of a raw lambda).

Coarse to fine: the first scale has a long side of at most ``start_side`` px; each next scale
doubles it up to the output size, starting from the previous result upsampled. Most of the
optimisation happens at the cheap scales, and the largest scale needs only a few steps. Each
scale runs within ``max_memory`` (style_memory.py): whole, or with the feature network in tiles
and the Gram matrices global (style_tiles.py, the same objective), with a shorter L-BFGS history
if need be (L-BFGS keeps ``history`` pairs of full-size tensors). The objective sees the image
without the feature network's stride lattice (``degrid``, lattice.py), so no pixel grid forms.
L-BFGS takes unit steps, one evaluation each (``line_search`` adds a strong-Wolfe search, which
here accepted the unit step and evaluated each point twice). Optional: keep the photo's colours
(Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer"): the result's
luminance with the photo's chroma (YCbCr).

Images are (1, 3, H, W) tensors in [-1, 1] on the CPU; the work happens on ``device``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..nets.perceptual import DEFAULT_LAYERS, MIN_STYLE_SIDE, FeatureNet, StyleObjective, fit_painting, style_grams
from .memory import size_text
from .style_memory import StylePlan, describe, plan_scale
from .style_tiles import Geometry, TiledObjective, WholeObjective, geometry, painting_grams, seen

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, torch.Tensor], None]  # (steps done, steps in all, the current image: a view, do not keep)


@dataclass
class StylizeSettings:
    strength: float = 0.5  # share of the objective given to the painting's style (0: the photo)
    steps: int = 60  # optimiser steps at each scale (halved at each finer one, at least 10)
    final_steps: int | None = None  # steps at the output's scale when there are several (None: the halving rule)
    optimizer: str = "lbfgs"  # lbfgs (Gatys) or adam
    size: int | None = None  # long side of the output in px; None = the photo's size
    start_side: int = 256  # long side of the coarsest scale
    preserve_colour: bool = False
    tv: float = 1e-3  # total-variation weight (against high-frequency noise)
    lr: float = 0.02  # Adam's learning rate (L-BFGS takes unit steps)
    history: int = 10  # L-BFGS history pairs
    line_search: bool = False  # L-BFGS with a strong-Wolfe line search (default: steps of 1, one evaluation each)
    precision: str = "fp32"  # fp32 or bf16 (the feature network under autocast; Grams in fp32)
    content_layers: Sequence[str] | None = None  # None: the feature network's defaults
    style_layers: Sequence[str] | None = None
    painting_weights: Sequence[float] = field(default_factory=list)  # blend of several paintings (default equal)
    max_memory: int | None = None  # bytes (inference/style_memory.py); None: no budget, every scale whole
    tile: int | None = None  # px: the feature network in tiles of this size at every scale (None: as the budget needs)
    degrid: bool = True  # the objective sees the image without its stride lattice's frequencies (inference/lattice.py)


def scales(height: int, width: int, start_side: int) -> list[tuple[int, int]]:
    """(H, W) of each scale, coarsest first; the last is (height, width)."""
    sizes = [(height, width)]
    while max(sizes[0]) > start_side and min(sizes[0]) / 2 >= MIN_STYLE_SIDE:
        h, w = sizes[0]
        sizes.insert(0, (round(h / 2), round(w / 2)))
    return sizes


def steps_at(scale: int, n_scales: int, steps: int, final_steps: int | None = None) -> int:
    """All ``steps`` at the coarsest scale, then half as many at each finer one (at least 10);
    ``final_steps`` at the last of several scales, if given."""
    if n_scales > 1 and scale == n_scales - 1 and final_steps is not None:
        return final_steps
    return max(min(steps, 10), steps >> scale) if n_scales > 1 else steps


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])


def preserve_colour(result: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The result's luminance (Y of YCbCr, BT.601) with the photo's chroma; images in [-1, 1]."""
    to_ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    ycc_r = torch.einsum("ij,njhw->nihw", to_ycc, (result + 1) / 2)
    ycc_p = torch.einsum("ij,njhw->nihw", to_ycc, (photo + 1) / 2)
    mixed = torch.cat([ycc_r[:, :1], ycc_p[:, 1:]], dim=1)
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_ycc), mixed)
    return (rgb * 2 - 1).clamp(-1, 1)


def stylize(net: FeatureNet, photo: torch.Tensor, paintings: Sequence[torch.Tensor], settings: StylizeSettings,
            device: torch.device, progress: Progress | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The stylised photo (1, 3, H', W') in [-1, 1] on the CPU (H', W': ``settings.size`` or the
    photo's), and the objective's terms at the end (``content``, ``style``: 1 = as far from the
    painting's style as the photo was, ``tv``)."""
    s = settings
    content_layers = tuple(s.content_layers or DEFAULT_LAYERS[net.name][0])
    style_layers = tuple(s.style_layers or DEFAULT_LAYERS[net.name][1])
    net.check([*content_layers, *style_layers])
    h, w = photo.shape[-2:]
    if s.size:
        factor = s.size / max(h, w)
        h, w = max(4, round(h * factor)), max(4, round(w * factor))
    plan = scales(h, w, s.start_side)
    counts = [steps_at(i, len(plan), s.steps, s.final_steps) for i in range(len(plan))]
    total = sum(counts)
    geo = geometry(net, [*content_layers, *style_layers])
    x, done, terms = None, 0, {}
    net = net.to(device)
    # every scale planned first: a photo that cannot fit fails before any work
    plans = [plan_scale(size, geo, content_layers, s.history, s.precision, s.optimizer, s.max_memory, s.tile)
             for size in plan]
    for i, (size, at) in enumerate(zip(plan, plans)):
        logger.debug("scale %dx%d: %s, %d steps, estimated peak %s", size[1], size[0], describe(at, s.optimizer),
                     counts[i], size_text(at.peak))
        objective = objective_at(net, photo, paintings, size, at, s, content_layers, style_layers, geo, device)
        # A fresh tensor either way: optimise works on it in place
        start = resize(photo, size).to(device).clone() if x is None else resize(x, size).to(device)
        x = None  # the previous scale's result, no longer needed
        x, terms = optimise(objective, start, counts[i], s, at.history, done, total, progress)
        done += counts[i]
    result = x.detach().float().cpu().clamp(-1, 1)
    if s.preserve_colour:
        result = preserve_colour(result, resize(photo, plan[-1]))
    return result, terms


def objective_at(net: FeatureNet, photo: torch.Tensor, paintings: Sequence[torch.Tensor], size: tuple[int, int],
                 at: StylePlan, s: StylizeSettings, content_layers: Sequence[str], style_layers: Sequence[str],
                 geo: Geometry, device: torch.device) -> TiledObjective | WholeObjective:
    """The objective at one scale: whole, or in tiles when ``at`` says so (the Grams stay global);
    with ``degrid``, seen without the stride lattice of ``geo`` (its grid would show at 100 %)."""
    target = resize(photo, size).to(device)
    styles = [fit_painting(p, max(size)).to(device) for p in paintings]
    weights = list(s.painting_weights) or [1.0] * len(paintings)
    cast = partial(autocast, device, s.precision)
    lattice = geo.stride if s.degrid else 0
    if at.tile:
        grams = painting_grams(net, styles, weights, style_layers, at.tile, cast, geo)
        return TiledObjective(net, target, grams, content_layers, s.strength, s.tv, at.tile, cast, lattice)
    with cast():
        grams = style_grams(net, styles, weights, style_layers)
        objective = StyleObjective(net, seen(target, lattice), grams, content_layers, s.strength, s.tv)
    return WholeObjective(objective, cast, lattice)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def optimise(objective: TiledObjective | WholeObjective, start: torch.Tensor, steps: int, s: StylizeSettings,
             history: int, done: int, total: int, progress: Progress | None) -> tuple[torch.Tensor, dict[str, float]]:
    """``steps`` optimiser steps on the pixels of ``start`` (changed in place, so that no second
    copy is held at full size); L-BFGS keeps ``history`` pairs. Returns the image and the last terms."""
    x = start.detach().contiguous().requires_grad_(True)  # L-BFGS views it flat
    state = {"evals": 0, "terms": {}}

    def closure() -> torch.Tensor:  # called by the optimiser; reads nothing that changes between calls
        opt.zero_grad(set_to_none=True)
        loss, parts = objective.evaluate(x)
        state["evals"] += 1
        state["terms"] = {k: float(v.mean()) for k, v in parts.items()}
        return loss.sum()

    if s.optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=history,
                                line_search_fn="strong_wolfe" if s.line_search else None)
    else:
        opt = torch.optim.Adam([x], lr=s.lr)
    for step in range(steps):
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(-1, 1)
        if progress is not None:
            progress(done + step + 1, total, x.detach())
    return x.detach(), state["terms"]
