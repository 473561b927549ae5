"""Colour-distribution distance between generated images and the target domain, no network.

``ColourHistogram`` accumulates 8-bit RGB pixel counts over any number of batches: one
256-bin histogram per channel and one joint 16 x 16 x 16 histogram. Two distances:

- ``colour_w1``: Wasserstein-1 (earth mover's) distance between the per-channel value
  distributions, averaged over R, G, B, in [0, 1] units (x 255 = 8-bit levels). Exact for 8-bit
  data: sum over levels of |CDF1 - CDF2| / 255.
- ``colour_tv``: total-variation distance 0.5 * sum |p - q| between the joint RGB histograms
  (16 levels per channel), in [0, 1]: 0 = same colour distribution, 1 = no colour in common.
"""

from __future__ import annotations

import numpy as np
import torch

JOINT_BINS = 16


class ColourHistogram:
    def __init__(self) -> None:
        self.channels = torch.zeros(3, 256, dtype=torch.int64)
        self.joint = torch.zeros(JOINT_BINS**3, dtype=torch.int64)

    def add(self, images: torch.Tensor) -> ColourHistogram:
        """Count the pixels of a uint8 batch (N, 3, H, W) or image (3, H, W)."""
        if images.dtype != torch.uint8 or images.shape[-3] != 3:
            raise ValueError(f"expected uint8 RGB images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        # numpy's bincount is ~8x faster than torch's here: (3, P) values -> two bincounts.
        px = images.cpu().numpy().reshape(-1, 3, images.shape[-2] * images.shape[-1])
        px = px.transpose(1, 0, 2).reshape(3, -1).astype(np.int32)
        offsets = np.array([[0], [256], [512]], dtype=np.int32)  # channel c counts in bins c*256 ...
        self.channels += torch.from_numpy(np.bincount((px + offsets).ravel(), minlength=768).reshape(3, 256))
        q = px // (256 // JOINT_BINS)  # (3, P) bin index per channel
        joint = np.bincount((q[0] * JOINT_BINS + q[1]) * JOINT_BINS + q[2], minlength=JOINT_BINS**3)
        self.joint += torch.from_numpy(joint)
        return self

    @property
    def pixels(self) -> int:
        return int(self.joint.sum())


def _check(a: ColourHistogram, b: ColourHistogram) -> None:
    if a.pixels == 0 or b.pixels == 0:
        raise ValueError("colour distance: a histogram holds no pixels")


def colour_w1(a: ColourHistogram, b: ColourHistogram) -> float:
    _check(a, b)
    cdf_a = a.channels.double().cumsum(1) / a.channels.sum(1, keepdim=True)
    cdf_b = b.channels.double().cumsum(1) / b.channels.sum(1, keepdim=True)
    return float((cdf_a - cdf_b).abs().sum(1).mean() / 255)


def colour_tv(a: ColourHistogram, b: ColourHistogram) -> float:
    _check(a, b)
    p = a.joint.double() / a.joint.sum()
    q = b.joint.double() / b.joint.sum()
    return float(0.5 * (p - q).abs().sum())
