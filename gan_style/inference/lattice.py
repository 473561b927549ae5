"""Remove a feature network's stride lattice from what it sees of an image.

A style objective computed through strided convolutions and max-pools does not treat every pixel
phase alike, and the optimiser finds that a fine grid at the strides' periods (2, 4, 8 px) matches
the painting's Gram statistics cheaply: a checkerboard and speckles at 100 % (docs/style.md,
metrics/grid.py). ``without_lattice`` projects those frequencies out, (k/P, l/P) cycles per pixel
for P the largest stride and (k, l) != (0, 0), each with ``RADIUS`` bins around it (the image's
size need not be a multiple of P). Seen through it, the objective has no gradient towards a grid,
so the image keeps its own (the photo's) energy there. A linear projection: its gradient is itself.
"""

from __future__ import annotations

from functools import lru_cache

import torch

RADIUS = 1  # frequency bins each side of a lattice point


@lru_cache(maxsize=16)
def lattice_mask(h: int, w: int, period: int) -> torch.Tensor:
    """(H, W//2 + 1) float32 for rfft2: 0 on the lattice's bins, 1 elsewhere."""
    mask = torch.ones(h, w // 2 + 1)
    for k in range(period):
        for m in range(period):
            if (k, m) == (0, 0):
                continue
            i, j = round(k * h / period), round(m * w / period)
            for di in range(-RADIUS, RADIUS + 1):
                for dj in range(-RADIUS, RADIUS + 1):
                    col = (j + dj) % w
                    col = min(col, w - col)  # rfft2 keeps the non-negative columns; the rest mirror them
                    mask[(i + di) % h, col] = 0.0
    return mask


def without_lattice(x: torch.Tensor, period: int) -> torch.Tensor:
    """``x`` (N, C, H, W) without its energy at the period-``period`` lattice; same shape and dtype.
    One channel at a time: the spectra of a 12 MP image are as large as the image."""
    h, w = x.shape[-2:]
    mask = lattice_mask(h, w, period).to(x.device)
    channels = [torch.fft.irfft2(torch.fft.rfft2(x[:, i:i + 1].float()) * mask, s=(h, w)) for i in range(x.shape[1])]
    return torch.cat(channels, dim=1).to(x.dtype)
