"""Layers shared by the generators and discriminators: InstanceNorm as the reference uses it, and
the fixed blur filters of antialiased down- and upsampling (Zhang, "Making Convolutional Networks
Shift-Invariant Again", ICML 2019), as the official CUT code lays them out.

The blur kernels are registered buffers named ``filt``, so they appear in the state_dict exactly
where the official CUT checkpoints have them (e.g. ``model.7.filt`` of an antialiased generator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` with a right input gradient for one image.

    PyTorch 2.14.1's CPU kernel returns a wrong input gradient when the batch has one image and the
    incoming gradient is channels_last (errors of the gradient's own size; measured, and checked
    against double-precision finite differences): in every batch-1 run with train.channels_last,
    and wherever a gradient arrives through a transposed view, as CUT's and UNSB's PatchNCE patch
    sampling produces. The incoming gradient is made contiguous first (NCHW; also channels_last
    inputs then get the right gradient). Batches of 2 or more, and inference, are unaffected.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._apply_instance_norm(x)  # what nn.InstanceNorm2d.forward runs (TorchScript has no super())
        if not torch.jit.is_scripting():  # TorchScript exports run without gradients
            guard_gradient(y)
        return y


@torch.jit.unused
def guard_gradient(y: torch.Tensor) -> None:
    if y.requires_grad and y.shape[0] == 1 and not torch.compiler.is_compiling():
        y.register_hook(contiguous_grad)


def contiguous_grad(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous()


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    # The reference uses InstanceNorm without affine parameters and without running stats,
    # so the norm layers contribute no state_dict entries.
    return InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _binomial_2d(taps: tuple[float, ...]) -> torch.Tensor:
    """Outer product of a binomial row with itself, normalised to sum 1: (k, k)."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Blur with [1, 2, 1] x [1, 2, 1] / 16, then keep every other pixel.

    (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2)); reflection padding by 1 on each side, so the
    border is blurred with mirrored neighbours. Replaces a stride-2 convolution's aliasing.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # (C, 1, 3, 3): one depthwise kernel per channel, a buffer (saved, never trained).
        self.register_buffer("filt", _binomial_2d((1.0, 2.0, 1.0))[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Insert zeros between pixels and blur with [1, 3, 3, 1] x [1, 3, 3, 1] (x 4 / 64).

    (N, C, H, W) -> (N, C, 2H, 2W). Written as a depthwise transposed convolution of the
    replication-padded input, cropped to the exact 2x size: unlike a learnt 3x3 transposed
    convolution with stride 2, every output pixel gets the same total weight, so no checkerboard.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # The kernel sums to 4 = stride**2: each output pixel sees a quarter of the taps.
        kernel = _binomial_2d((1.0, 3.0, 3.0, 1.0)) * 4
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))  # (C, 1, 4, 4)
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Padded (H+2) -> transposed conv: 2(H+2) - 2 - 4 + 4 = 2H + 2 rows; drop the first and last.
        y = F.conv_transpose2d(self.pad(x), self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]


class Residual(nn.Module):
    """x + body(x): the residual blocks of every generator kind. ``body`` is a sequence of plain
    layers, which is how exact tiling (inference/tiling.py) walks into a block."""

    body: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Skip(nn.Module):
    """skip(x) + body(x) with a pointwise ``skip`` (a per-pixel map, e.g. histogram matching) and a chain of
    plain layers ``body``: a residual around a whole network, which exact tiling walks into as into
    ``Residual``."""

    def __init__(self, skip: nn.Module, body: nn.Sequential) -> None:
        super().__init__()
        self.skip, self.body = skip, body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class ChannelAffine(nn.Module):
    """y = x * scale + shift per channel, with fixed (N, C) factors: a conditioning (noise, time,
    strength) bound to one value, as a plain layer. Per channel, so exact tiling keeps it exact."""

    def __init__(self, scale: torch.Tensor | None, shift: torch.Tensor | None) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift  # (N, C) each, or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None and self.shift is not None:  # one pass over x (FiLM's training cost)
            return torch.addcmul(self.shift[:, :, None, None].to(x.dtype), x, self.scale[:, :, None, None].to(x.dtype))
        if self.scale is not None:
            x = x * self.scale[:, :, None, None].to(x.dtype)
        if self.shift is not None:
            x = x + self.shift[:, :, None, None].to(x.dtype)
        return x


class ModulatedNorm(nn.Sequential):
    """An InstanceNorm then a ChannelAffine with its own (N, C) factors per image, computed in one pass.

    InstanceNorm is batch norm over (1, N*C, H, W); there each image's channel has its own affine
    weight, so the modulation rides in the norm's kernel instead of a pass (and its backward) of its
    own: what FiLM costs in training, where every image has its own strength. Walks as the
    ``nn.Sequential(norm, modulation)`` it is (exact tiling). ``norm`` has no affine parameters."""

    def __init__(self, norm: nn.InstanceNorm2d, modulation: ChannelAffine) -> None:
        super().__init__(norm, modulation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # exports: the (N*C) reshape would fix N
            return super().forward(x)
        norm, mod = self[0], self[1]
        n, c, h, w = x.shape
        # Half-precision activations keep fp32 parameters, as batch norm's mixed-precision kernels expect.
        dtype = torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype
        y = torch.batch_norm(x.contiguous().view(1, n * c, h, w), mod.scale.reshape(-1).to(dtype), mod.shift.reshape(-1).to(dtype),
                             None, None, True, 0.0, norm.eps, torch.backends.cudnn.enabled).view(n, c, h, w)
        guard_gradient(y)
        return y


class ResidualBlock(Residual):
    """A bound residual block: x + body(x) for a given list of layers (see ``Residual``)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)
