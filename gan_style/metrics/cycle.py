"""Network-free image-pair metrics for cycle reconstruction (A -> B -> A and B -> A -> B).

Inputs are two batches (N, C, H, W) of the same shape with values in [0, 1] (``to_unit`` maps
generator outputs from [-1, 1]). Each metric returns one value per image, shape (N,), so
callers can average over any number of batches. Computed in float64.

- L1: mean absolute difference, in [0, 1] units (multiply by 255 for 8-bit levels).
- PSNR: 10 log10(1 / MSE) per image, in dB; MSE is floored at 1e-10 (identical images: 100 dB).
- SSIM: Wang et al. (2004): 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data
  range 1, over the valid region (no padding), per channel, then averaged. Images smaller than
  11 px use a window of their size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Generator range [-1, 1] -> [0, 1], clamped."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.double(), y.double()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _pair(x, y)
    return (x - y).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _pair(x, y)
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / mse)


def _gaussian(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _pair(x, y)
    n, c, h, w = x.shape
    size = min(SSIM_WINDOW, h, w)
    g = _gaussian(size, SSIM_SIGMA, x.device)
    # Separable blur of the 5 maps (x, y, x^2, y^2, xy), each channel on its own: (5NC, 1, H, W).
    maps = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * n * c, 1, h, w)
    blurred = F.conv2d(F.conv2d(maps, g.view(1, 1, size, 1)), g.view(1, 1, 1, size))
    mu_x, mu_y, xx, yy, xy = blurred.reshape(5, n, c, h - size + 1, w - size + 1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)
