"""Grid artefacts: how much of an image's energy sits at the periods of a feature network's strides.

A stylised image optimised through strided convolutions and max-pools can carry a fine
checkerboard (period 2 px) and coarser lattices (4, 8 px), invisible in a thumbnail and plain at
100 %. Their energy sits on a lattice of frequencies: period p puts peaks at (k/p, l/p) cycles per
pixel. For each period, ``grid_scores`` gives the power at those peaks (the ones no shorter period
has) over the median power around each of them, averaged over the peaks: about 1.4 for an image
with no periodic structure (the ratio of one spectrum sample to its neighbours' median), well
above for a grid. Compare a result with its photo and its painting (``stylize --metrics``).
"""

from __future__ import annotations

import torch

PERIODS = (2, 4, 8)
RADIUS = 3  # frequency bins each side of a peak in its neighbourhood


def power_spectrum(image: torch.Tensor) -> torch.Tensor:
    """|FFT|^2 of the luminance of ``image`` (1 or N, C, H, W) in [-1, 1], Hann-windowed, mean
    removed: (H', W') with H', W' cropped to multiples of 8 so that the peaks fall on bins."""
    gray = image.double().mean(dim=(0, 1))
    h, w = gray.shape[0] // 8 * 8, gray.shape[1] // 8 * 8
    gray = gray[:h, :w] - gray[:h, :w].mean()
    window = torch.outer(torch.hann_window(h, periodic=True, dtype=torch.float64),
                         torch.hann_window(w, periodic=True, dtype=torch.float64))
    return torch.fft.fft2(gray * window).abs() ** 2


def _peak_ratio(power: torch.Tensor, i: int, j: int) -> float:
    h, w = power.shape
    rows = [(i + d) % h for d in range(-RADIUS, RADIUS + 1)]
    cols = [(j + d) % w for d in range(-RADIUS, RADIUS + 1)]
    around = power[rows][:, cols].flatten()
    around = torch.cat([around[: around.numel() // 2], around[around.numel() // 2 + 1:]])  # without the peak
    return float(power[i, j] / around.median().clamp_min(1e-30))


def grid_scores(image: torch.Tensor, periods: tuple[int, ...] = PERIODS) -> dict[int, float]:
    """{period: mean peak-to-neighbourhood power ratio at that period's own lattice frequencies}."""
    power = power_spectrum(image)
    h, w = power.shape
    scores = {}
    for p in periods:
        own = [(k, m) for k in range(p) for m in range(p)
               if (k, m) != (0, 0) and all(k * q % p or m * q % p for q in periods if q < p and p % q == 0)]
        scores[p] = sum(_peak_ratio(power, k * h // p, m * w // p) for k, m in own) / len(own)
    return scores
