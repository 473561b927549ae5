"""Images <-> tensors: the one place where pixels become tensors and back.

Two float ranges occur: the generator's [-1, 1] (mean 0.5, std 0.5 as in training), called
"float" below, and [0, 1] ("unit": torchvision's grids). Channels come first in tensors
(..., 3, H, W) and last in pixel arrays and PIL images (..., H, W, 3).

- ``uint8_to_float``:      (..., H, W, 3) uint8 array      -> (..., 3, H, W) float32 tensor in [-1, 1]
- ``float_to_uint8``:      (..., 3, H, W) tensor in [-1, 1] -> (..., 3, H, W) uint8 tensor, rounded
  (half to even, as when saved to PNG), clamped; any shape works, the layout is kept
- ``float_to_uint8_hwc``:  (..., 3, H, W) tensor in [-1, 1] -> (..., H, W, 3) uint8 numpy array (contiguous, CPU)
- ``unit_to_uint8_hwc``:   (3, H, W) tensor in [0, 1]       -> (H, W, 3) uint8 numpy array, floor(x * 255 + 0.5)
  clamped (torchvision's ``save_image`` rule)
- ``image_to_uint8``:      RGB PIL image                    -> (3, H, W) uint8 tensor
- ``image_to_float``:      RGB PIL image                    -> (3, H, W) float32 tensor in [-1, 1]
- ``float_to_image``:      (3, H, W) tensor in [-1, 1]      -> RGB PIL image
- ``as_display``:          (..., C, H, W) tensor            -> (..., 3, H, W): 1 channel shown gray, 2 as
  red/green, more than 3 by their first three (panels of scientific data; display only)
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def uint8_to_float(arr: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 pixels -> (..., 3, H, W) float tensor in [-1, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).movedim(-1, -3).float().div_(127.5).sub_(1.0)


def float_to_uint8(t: torch.Tensor) -> torch.Tensor:
    """Tensor in [-1, 1] (any shape, e.g. (N, 3, H, W)) -> uint8 [0, 255] of the same shape and device,
    rounded half to even as when saved to PNG; values outside [-1, 1] are clamped."""
    return t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def float_to_uint8_hwc(t: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) tensor in [-1, 1] -> (..., H, W, 3) uint8 pixels (contiguous, on the CPU)."""
    return float_to_uint8(t).movedim(-3, -1).contiguous().cpu().numpy()


def unit_to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) uint8 pixels: floor(x * 255 + 0.5), clamped."""
    return image.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def image_to_uint8(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) uint8 tensor (a copy: the image may be changed or closed)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_to_float(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float tensor in [-1, 1]."""
    return uint8_to_float(np.asarray(image, dtype=np.uint8))


def float_to_image(t: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image."""
    return Image.fromarray(float_to_uint8_hwc(t), mode="RGB")


def as_display(t: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (..., 3, H, W) for panels: gray for C = 1, (c0, c1, -1) for C = 2, the first 3 for C > 3."""
    c = t.shape[-3]
    if c == 1:
        return t.expand(*t.shape[:-3], 3, *t.shape[-2:])
    if c == 2:
        return torch.cat([t, torch.full_like(t[..., :1, :, :], -1.0)], dim=-3)
    return t[..., :3, :, :]
