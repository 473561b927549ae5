"""Tiny generators, weights files and images shared by the web app's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_style.io.checkpoint import save_atomic
from gan_style.nets import PatchDiscriminator, ResnetGenerator, init_weights

TINY = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2}


def tiny_net(seed: int) -> ResnetGenerator:
    torch.manual_seed(seed)
    # Gain 0.2 rather than 0.02: outputs far from constant, so different generators differ visibly.
    return init_weights(ResnetGenerator(**TINY), gain=0.2).eval()


def write_run(path: Path, dataset: str = "monet2photo", generators: tuple[str, ...] = ("G_A", "G_B")) -> dict:
    """A training checkpoint as training writes it, holding ``generators``; returns the networks."""
    nets = {key: tiny_net(seed) for seed, key in enumerate(generators, start=1)}
    models = {k: v.state_dict() for k, v in nets.items()}
    models |= {"D_A": PatchDiscriminator(3, 8).state_dict(), "D_B": PatchDiscriminator(3, 8).state_dict()}
    config = {"name": path.parent.name, "data": {"root": f"datasets/{dataset}", "dataset": dataset}}
    save_atomic({"format_version": 1, "models": models, "config": config, "epoch": 1, "step": 4}, path)
    return nets


def smooth_image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8))
    return small.resize((w, h), Image.Resampling.BICUBIC)


def truncated_jpeg(path: Path, w: int = 64, h: int = 48) -> Path:
    smooth_image(w, h).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
