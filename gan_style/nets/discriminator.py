"""The 70x70 PatchGAN discriminator of CycleGAN (D_A = D_Y judges B images, D_B = D_X judges A
images) and of CUT (D judges Y images), optionally antialiased as CUT does it."""

from __future__ import annotations

import torch
from torch import nn

from .layers import BlurDownsample, instance_norm


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN discriminator (the reference's ``NLayerDiscriminator``).

    Input (N, in_channels, H, W) -> a map of raw scores (N, 1, H/8 - 2, W/8 - 2);
    256x256 gives 30x30, each score judging one 70x70 patch. No sigmoid: the GAN loss
    works on raw outputs (LSGAN) or logits (vanilla, BCE-with-logits).
    ``antialias`` (CUT's default) replaces each stride-2 conv by a stride-1 conv followed by a
    blur-and-subsample (the same 30x30 scores for 256x256); the keys gain ``model.2.filt`` etc.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, antialias: bool = False) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        layers: list[nn.Module] = self._down(in_channels, ndf, antialias, norm=False)
        mult = 1
        for n in range(1, n_layers):  # downsampling convs, doubling channels up to 8*ndf
            prev, mult = mult, min(2**n, 8)
            layers += self._down(ndf * prev, ndf * mult, antialias, norm=True)
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=True),
            instance_norm(ndf * mult),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    @staticmethod
    def _down(c_in: int, c_out: int, antialias: bool, norm: bool) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=1 if antialias else 2, padding=1, bias=True)
        layers = [conv] + ([instance_norm(c_out)] if norm else []) + [nn.LeakyReLU(0.2, inplace=True)]
        return layers + ([BlurDownsample(c_out)] if antialias else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
