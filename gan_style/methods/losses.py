"""Losses: GAN (the reference's ``GANLoss``: LSGAN = MSE to 1/0, vanilla = BCE with logits) and CUT's PatchNCE."""

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


def patch_nce(query: torch.Tensor, key: torch.Tensor, n_images: int, temperature: float,
              per_image: bool = False) -> torch.Tensor:
    """PatchNCE (Park et al., 2020, eq. 2) for one layer: mean over patches of the cross-entropy
    of "which key is my positive?", with the positive at index 0.

    ``query``, ``key``: (N * P, C) unit vectors, image-major (P patches per image, the same
    locations in both). Each query's positive is the key at its own location; its negatives are
    the other P - 1 keys of the same image only. Keys carry no gradient (as in the paper's code).
    The similarity of a query with its own location among the negatives is set to -10 before the
    temperature (effectively excluded, as the official code does). ``per_image``: (N,), each
    image's mean, instead of the mean over the batch.
    """
    q, k = query.float(), key.detach().float()
    positives = (q * k).sum(dim=1, keepdim=True)  # (N*P, 1)
    q, k = q.view(n_images, -1, q.shape[1]), k.view(n_images, -1, k.shape[1])  # (N, P, C)
    negatives = torch.bmm(q, k.transpose(1, 2))  # (N, P, P)
    eye = torch.eye(q.shape[1], device=q.device, dtype=torch.bool)
    negatives = negatives.masked_fill(eye, -10.0).flatten(0, 1)  # (N*P, P)
    logits = torch.cat([positives, negatives], dim=1) / temperature  # (N*P, 1 + P)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    if per_image:  # (N,): each image's mean over its patches (loss-conditional weights per sample)
        return F.cross_entropy(logits, target, reduction="none").view(n_images, -1).mean(1)
    return F.cross_entropy(logits, target)


def layered_patch_nce(queries: list[torch.Tensor], keys: list[torch.Tensor], n_images: int, temperature: float,
                      weight: float | torch.Tensor) -> torch.Tensor:
    """PatchNCE of each layer's (query, key) pair (``patch_nce``), averaged over the layers, times
    ``weight``: one number, or one per image (N,), which weights each image's own loss (the batch
    mean of weight_i * NCE_i: loss-conditional training)."""
    per_image = torch.is_tensor(weight)
    total = sum(patch_nce(q, k, n_images, temperature, per_image) for q, k in zip(queries, keys))
    return (total * weight).mean() / len(queries) if per_image else total * weight / len(queries)
