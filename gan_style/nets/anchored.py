"""The anchored generator: histogram matching of the input plus a learned residual (the ``anchored`` kind).

Why: a ResNet generator normalises its first convolution's output per image (InstanceNorm), so it is
blind to the input's brightness and contrast: G(a·x + c) = G(x) for any a > 0, c (checked in
tests/test_anchored.py). It can map intensities only through what each crop's structures imply,
which is why a CycleGAN loses to plain histogram matching on intensity tasks, and why unpaired
intensity tasks admit inverted solutions (docs/science.md, "Learning that holds").

Here the absolute intensities bypass the network: G(x) = clamp(H(x) + R(x), -1, 1), where H is the
histogram-matching map of the input's domain onto the output's (a per-channel table learned from the
training data, data/histograms.py, stored as a buffer) and R a ResNet generator whose last
convolution starts at zero, so that training starts from histogram matching and learns the
departures from it that the losses pay for (texture, point-spread, context). H is per pixel, so
exact tiling holds (``Skip`` in nets/layers.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .generator import ResnetGenerator, generator_arch
from .kind import GeneratorKind
from .layers import Skip

GRID = 1024  # the map's table: values at GRID points evenly spread over [-1, 1]


def matched(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) in [-1, 1] through the per-channel map ``table`` (C, G), linearly interpolated."""
    c, g = table.shape
    pos = (x.float().clamp(-1, 1) + 1) * ((g - 1) / 2)  # (N, C, H, W) in [0, G-1]
    low = pos.floor().clamp(max=g - 2)
    # Index into the flattened table: channel c's row starts at c * G.
    index = low.long() + torch.arange(c, device=x.device).view(1, c, 1, 1) * g
    flat = table.to(x.device).flatten()
    below, above = flat[index], flat[index + 1]
    return (below + (pos - low) * (above - below)).to(x.dtype)


class HistogramMap(nn.Module):
    """A per-channel intensity map (the ``table`` buffer, (C, GRID); the identity until set)."""

    def __init__(self, channels: int, grid: int = GRID) -> None:
        super().__init__()
        self.register_buffer("table", torch.linspace(-1, 1, grid).repeat(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return matched(x, self.table)


class AnchoredGenerator(nn.Module):
    """clamp(prior(x) + net(x), -1, 1): ``prior`` a HistogramMap, ``net`` a ResnetGenerator (its arguments).
    (N, C, H, W) -> (N, C, H, W); input and output have the same channels (the map is per channel)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, n_blocks: int = 9,
                 antialias: bool = False, antialias_up: bool = False, grid: int = GRID) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"an anchored generator maps each channel onto itself: in_channels={in_channels} "
                             f"and out_channels={out_channels} differ")
        self.prior = HistogramMap(in_channels, grid)
        self.net = ResnetGenerator(in_channels, out_channels, ngf, n_blocks, antialias, antialias_up)

    def start_at_prior(self) -> None:
        """Zero the residual's last convolution: the untrained generator is exactly the prior."""
        last = self.net.model[-2]  # the 7x7 output convolution, before the tanh
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.prior(x) + self.net(x)).clamp(-1, 1)


class AnchoredKind(GeneratorKind):
    """Histogram matching plus a ResNet residual: one pass, no conditioning, exactly tileable."""

    name = "anchored"
    module = AnchoredGenerator

    def recognises(self, state) -> bool:
        return "prior.table" in state and "net.model.1.weight" in state

    def arch(self, state) -> dict:
        body = generator_arch({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
        return body | {"grid": int(state["prior.table"].shape[1])}

    def layers(self, net: nn.Module, cond) -> list[nn.Module]:
        return [Skip(net.prior, nn.Sequential(*net.net.model)), nn.Hardtanh()]
