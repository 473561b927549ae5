"""The style section: ``gan-style stylize`` (Gatys on the Inception features, coarse to fine) at
256, 512 and 1024 px, beside plain VGG19 Gatys (one scale, every step at full size, the classic
tools' way) at the same size and steps. Speed does not depend on the weights, so VGG19 runs with
random weights (the ImageNet ones cannot always be downloaded); its time is its measured time per
L-BFGS step times the steps. Photo and painting: smooth synthetic images."""

from __future__ import annotations

import contextlib
import time

import torch

from ..inference.style_tiles import WholeObjective
from ..inference.stylize import StylizeSettings, optimise, scales, steps_at, stylize
from ..nets.perceptual import DEFAULT_LAYERS, StyleObjective, load_features, style_grams, vgg_features

SIZES = (256, 512, 1024)
STEPS = 60


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def vgg_seconds_per_step(side: int, device: torch.device, measured: int = 2) -> float:
    """Plain Gatys on VGG19 at one scale: seconds per L-BFGS step (after one warm-up step)."""
    net = vgg_features("vgg19", pretrained=False).to(device)
    content, style = DEFAULT_LAYERS["vgg19"]
    photo, painting = _image(side * 3 // 4, side, 1).to(device), _image(side, side, 2).to(device)
    objective = WholeObjective(StyleObjective(net, photo, style_grams(net, [painting], [1.0], style), content, 0.5),
                               contextlib.nullcontext)
    settings = StylizeSettings(steps=1)
    optimise(objective, photo.clone(), 1, settings, settings.history, 0, 1, None)  # warm-up
    start = time.perf_counter()
    optimise(objective, photo.clone(), measured, settings, settings.history, 0, measured, None)
    return (time.perf_counter() - start) / measured


def bench_style(device: torch.device, sizes: tuple[int, ...] = SIZES, steps: int = STEPS) -> list[dict]:
    net = load_features("inception")
    rows = []
    for side in sizes:
        photo, painting = _image(side * 3 // 4, side, 1), _image(side, side, 2)
        start = time.perf_counter()
        stylize(net, photo, [painting], StylizeSettings(steps=steps), device)
        ours = time.perf_counter() - start
        vgg = vgg_seconds_per_step(side, device) * steps
        plan = scales(side * 3 // 4, side, StylizeSettings.start_side)
        rows.append({"size": f"{side}x{side * 3 // 4}", "steps": steps,
                     "scales": "+".join(f"{max(s)}px x{steps_at(i, len(plan), steps)}" for i, s in enumerate(plan)),
                     "stylize_s": round(ours, 1), "vgg19_gatys_s": round(vgg, 1), "speedup": round(vgg / ours, 1),
                     "device": str(device), "threads": torch.get_num_threads()})
    return rows
