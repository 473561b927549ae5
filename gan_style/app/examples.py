"""Example inputs the app draws itself (so git holds no large files): simple landscapes.

Each is a few lines of numpy: a sky gradient, a sun, layered hills and water with ripples,
deterministic for a seed, 512 x 384 by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (name, seed, sky top, sky horizon, hill colour, water colour), RGB in 0..255
SCENES = (
    ("sunset_lake", 1, (60, 70, 150), (250, 170, 110), (60, 60, 50), (70, 80, 120)),
    ("green_hills", 2, (90, 150, 230), (200, 225, 245), (70, 120, 50), (60, 110, 140)),
    ("winter_coast", 3, (150, 170, 200), (235, 235, 240), (120, 120, 130), (90, 110, 130)),
)


def landscape(seed: int, sky_top, horizon, hill, water, size: tuple[int, int] = (512, 384)) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (y / (0.6 * h)).clip(0, 1)[..., None]
    img = (1 - t) * np.array(sky_top, np.float32) + t * np.array(horizon, np.float32)
    sx, sy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.15, 0.4) * h, 0.06 * h
    glow = np.exp(-(((x - sx) ** 2 + (y - sy) ** 2) / (2 * r**2)))[..., None]
    img = img * (1 - glow) + np.array((255, 240, 200), np.float32) * glow
    for layer in range(3):  # hills, far to near: darker and lower
        phase, freq = rng.uniform(0, 6.28, 2), rng.uniform(1.5, 4.0, 2)
        ridge = 0.45 + 0.06 * layer + 0.05 * np.sin(freq[0] * 6.28 * x[0] / w + phase[0]) * np.cos(freq[1] * x[0] / w)
        mask = (y > ridge * h)[..., None]
        shade = np.array(hill, np.float32) * (0.75 + 0.15 * layer)
        img = np.where(mask, shade + rng.normal(0, 4, (h, w, 1)).astype(np.float32), img)
    sea = (y > 0.7 * h)[..., None]
    ripple = 12 * np.sin(y * 0.9 + 3 * np.sin(x * 0.05))[..., None]
    img = np.where(sea, np.array(water, np.float32) + ripple, img)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), mode="RGB")


def write_examples(folder: Path) -> list[Path]:
    """Draw the example scenes into ``folder`` as JPEGs; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, seed, *colours in SCENES:
        path = folder / f"{name}.jpg"
        landscape(seed, *colours).save(path, quality=90)
        paths.append(path)
    return paths
