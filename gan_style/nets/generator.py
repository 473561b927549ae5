"""CycleGAN networks, weight-for-weight compatible with the reference implementation.

Naming follows the reference code (junyanz/pytorch-CycleGAN-and-pix2pix) and maps to the
paper (Zhu et al., 2017) as follows:

    G_A = G : A -> B        (e.g. Monet -> photo for monet2photo)
    G_B = F : B -> A
    D_A = D_Y : judges G_A(A) against real B
    D_B = D_X : judges G_B(B) against real A

The ``nn.Sequential`` layouts reproduce the reference's ``state_dict`` keys exactly
(``model.1.weight`` ... ``model.26.bias`` for a 9-block generator), so reference checkpoints
such as ``latest_net_G_A.pth`` or the published ``style_monet.pth`` load with ``strict=True``.

This module holds pure ``nn.Module``s with explicit arguments: it imports nothing from the
training code, so inference and export can use it alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import instance_norm


class ResnetBlock(nn.Module):
    """Residual block: x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x). No ReLU after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Indices 0..6 match the reference's `conv_block` (dropout off): keys conv_block.1, conv_block.5.
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=True),
            instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=True),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator (Johnson et al. architecture), as in the reference.

    Shapes for an input (N, in_channels, H, W) with H and W multiples of 4:
    7x7 conv -> (N, ngf, H, W); two stride-2 convs -> (N, 4*ngf, H/4, W/4);
    ``n_blocks`` residual blocks at that size; two transposed convs -> (N, ngf, H, W);
    7x7 conv + tanh -> (N, out_channels, H, W) in [-1, 1].
    Other sizes work too: the output then has the transposed convs' size, which is the
    input's size rounded up to a multiple of 4 (inference pads and crops, see ``inference.py``).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, bias=True),
            instance_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):  # downsample: ngf -> 2ngf -> 4ngf, halving H and W each time
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                instance_norm(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # upsample: 4ngf -> 2ngf -> ngf, doubling H and W each time
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
                ),
                instance_norm(ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def generator_arch(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Read a ResnetGenerator's architecture (in/out channels, ngf, n_blocks) from its state_dict.

    Works for our checkpoints and the reference's, so a user never has to guess the block count.
    """
    try:
        first = state_dict["model.1.weight"]  # (ngf, in_channels, 7, 7)
    except KeyError:
        raise ValueError("not a ResnetGenerator state_dict: key 'model.1.weight' is missing") from None
    blocks = {int(k.split(".")[1]) for k in state_dict if ".conv_block." in k}
    convs = [int(k.split(".")[1]) for k in state_dict if k.startswith("model.") and k.endswith(".weight")]
    last = state_dict[f"model.{max(convs)}.weight"]  # (out_channels, ngf, 7, 7)
    return {
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": len(blocks),
    }
