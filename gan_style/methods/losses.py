"""GAN losses, as in the reference's ``GANLoss``: LSGAN (MSE to 1/0) and vanilla (BCE with logits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """Loss of a discriminator's raw output map (N, 1, h, w) against an all-real or all-fake target.

    Computed in float32 whatever the autocast dtype: squares of bf16 values lose precision.
    """
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan_mode {mode!r}: use lsgan or vanilla")
