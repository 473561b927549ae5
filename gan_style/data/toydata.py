"""A generated toy dataset for demos and smoke runs: no download, no real images.

Domain A: warm-coloured discs on a light background; domain B: cool-coloured squares on a
dark background. Different enough in colour and shape that a tiny CycleGAN visibly learns
the mapping in a few minutes on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _image(rng: np.random.Generator, domain: str, size: int) -> Image.Image:
    if domain == "A":
        img = Image.new("RGB", (size, size), tuple(int(x) for x in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.integers(1, 4)):
            r = int(rng.integers(size // 8, size // 3))
            x, y = (int(v) for v in rng.integers(0, size, 2))
            colour = (int(rng.integers(180, 256)), int(rng.integers(40, 140)), int(rng.integers(0, 60)))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    else:
        img = Image.new("RGB", (size, size), tuple(int(x) for x in rng.integers(0, 60, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.integers(1, 4)):
            s = int(rng.integers(size // 6, size // 2))
            x, y = (int(v) for v in rng.integers(0, size - s // 2, 2))
            colour = (int(rng.integers(0, 60)), int(rng.integers(100, 200)), int(rng.integers(180, 256)))
            draw.rectangle([x, y, x + s, y + s], fill=colour)
    return img


def make_toy_dataset(root: str | Path, n_train: int = 100, n_test: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write trainA/ trainB/ testA/ testB/ PNGs under ``root`` (overwriting). Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for domain in "AB":
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(rng, domain, size).save(folder / f"{i:04d}.png")
    return root


if __name__ == "__main__":
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "datasets/toy"
    print(f"toy dataset written to {make_toy_dataset(target)}")
