"""The strength-conditioned ResNet generator: one network for a whole range of loss weights.

Loss-conditional training (Dosovitskiy & Djolonga, "You Only Train Once", ICLR 2020): the loss
weight is drawn per sample from a range during training, fed to the network, and used to weight
the loss; one network then covers the whole range. Here the weight is a **strength** s in [0, 1]
(1 translates most; each method maps it to its own loss weight, docs/strength.md), and it
reaches the network by FiLM (Perez et al., AAAI 2018): a small MLP of s gives, for every
InstanceNorm of the ResNet generator, a per-channel scale and shift applied after it:

    IN(h) -> (1 + dgamma_c(s)) * IN(h) + beta_c(s)

The backbone is the ResNet generator itself (``model``, the same keys as ``ResnetGenerator``),
so a trained unconditioned generator loads into it, and with the modulation at the identity
(dgamma = beta = 0) it computes exactly that generator. At a fixed s the network is a chain of
plain layers (``bind``): the modulation is per channel, so exact tiling, slides and the CPU's
bf16-blocks path work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .generator import ResnetBlock, ResnetGenerator, generator_arch
from .kind import GeneratorKind
from .layers import ChannelAffine, ModulatedNorm, ResidualBlock

HIDDEN = 64  # width of the strength MLP: 1 -> 64 -> 64 -> 2 x (channels of every norm)


class StrengthMLP(nn.Sequential):
    """s (N, 1) -> the modulations (N, ``out``): 1 -> HIDDEN -> HIDDEN -> out, ReLU between. The
    hidden layers keep PyTorch's default initialisation (``keeps_init``: the generators' N(0, 0.02)
    would make their activations ~100x smaller, and the modulations learn that much slower; measured
    in docs/strength.md); the last layer starts at zero: the identity modulation."""

    keeps_init = True

    def __init__(self, out: int) -> None:
        super().__init__(nn.Linear(1, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out))
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)


class FiLMResnetGenerator(nn.Module):
    """``ResnetGenerator`` (``model``) plus ``film``, the MLP from the strength to the modulations.

    ``strength_range`` (lo, hi): the strengths it was trained on (recorded with the architecture;
    translating outside it extrapolates). ``forward(x, strength)``: x (N, C_in, H, W), strength (N,)
    in [0, 1] -> (N, C_out, H, W) in [-1, 1].
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 antialias: bool = False, antialias_up: bool = False,
                 strength_range: list[float] | tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.strength_range = [float(strength_range[0]), float(strength_range[1])]  # a list: as JSON keeps it
        self.model = ResnetGenerator(in_channels, out_channels, ngf, n_blocks, antialias, antialias_up).model
        self.widths = [m.num_features for m in self.model.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.film = StrengthMLP(2 * sum(self.widths))

    def modulations(self, strength: torch.Tensor) -> list[ChannelAffine]:
        """One ChannelAffine per InstanceNorm, in order: scale 1 + dgamma, shift beta, (N, C) each."""
        s = strength.reshape(-1, 1).to(self.film[0].weight.dtype)
        dgamma, beta = self.film(s).chunk(2, dim=1)  # (N, sum of widths) each
        out, start = [], 0
        for c in self.widths:
            out.append(ChannelAffine(1 + dgamma[:, start : start + c], beta[:, start : start + c]))
            start += c
        return out

    def bind(self, strength: torch.Tensor, fold: bool = False) -> list[nn.Module]:
        """The network at ``strength`` (N,) as a chain of plain layers: each InstanceNorm followed by
        its modulation, each residual block a ``ResidualBlock`` of the same. ``fold`` (inference, one
        strength for the whole batch): each norm and its modulation become one affine InstanceNorm,
        one pass over the activations instead of three (the modulation costs nothing at translate time)."""
        mods = iter(self.modulations(strength))
        fold = fold and bool((strength == strength.reshape(-1)[0]).all())
        return [self._bound(layer, mods, fold) for layer in self.model]

    def _bound(self, layer: nn.Module, mods, fold: bool) -> nn.Module:
        if isinstance(layer, ResnetBlock):
            return ResidualBlock([self._bound(sub, mods, fold) for sub in layer.conv_block])
        if isinstance(layer, nn.InstanceNorm2d):
            return folded(layer, next(mods)) if fold else ModulatedNorm(layer, next(mods))
        return layer

    def forward(self, x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        for layer in self.bind(strength):
            x = layer(x)
        return x

    def forward_with_features(self, x: torch.Tensor, nce_layers: tuple[int, ...], strength: torch.Tensor):
        """The translation and the outputs of layers ``nce_layers`` of ``model`` (CUT's keys), one pass."""
        feats = []
        for i, layer in enumerate(self.bind(strength)):
            x = layer(x)
            if i in nce_layers:
                feats.append(x)
        return x, feats

    def encode(self, x: torch.Tensor, nce_layers: tuple[int, ...], strength: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of layers ``nce_layers`` (ascending), stopping after the last one: CUT's queries."""
        feats = []
        for i, layer in enumerate(self.bind(strength)[: max(nce_layers) + 1]):
            x = layer(x)
            if i in nce_layers:
                feats.append(x)
        return feats


def folded(norm: nn.InstanceNorm2d, mod: ChannelAffine) -> nn.InstanceNorm2d:
    """``norm`` then ``mod`` (the same factors for every image: row 0) as one affine InstanceNorm:
    (IN(h) * w + b) * scale + shift = IN(h) * (w * scale) + (b * scale + shift). For inference only
    (its parameters are copies, outside autograd)."""
    scale, shift = mod.scale[0].detach().float(), mod.shift[0].detach().float()  # (C,) each
    out = nn.InstanceNorm2d(norm.num_features, eps=norm.eps, affine=True, device=scale.device)
    weight, bias = (norm.weight.float(), norm.bias.float()) if norm.affine else (1.0, 0.0)
    out.weight.data.copy_(weight * scale)
    out.bias.data.copy_(bias * scale + shift)
    return out


class FiLMKind(GeneratorKind):
    """The strength-conditioned ResNet generator: one pass, exactly tileable at a fixed strength."""

    name = "film"
    bound_forward = True  # the folded layers: as fast as the plain ResNet generator
    module = FiLMResnetGenerator

    def recognises(self, state) -> bool:
        return "model.1.weight" in state and "film.0.weight" in state

    def arch(self, state) -> dict:
        backbone = {k: v for k, v in state.items() if k.startswith("model.")}
        if "film.0.weight" not in state:
            raise ValueError("not a strength-conditioned generator state_dict: key 'film.0.weight' is missing")
        return generator_arch(backbone)

    def defaults(self) -> dict:
        return {"strength_range": [0.0, 1.0]}

    def strength_range(self, arch: Mapping) -> tuple[float, float] | None:
        lo, hi = arch.get("strength_range", self.defaults()["strength_range"])
        return float(lo), float(hi)

    def layers(self, net: nn.Module, cond: Mapping[str, torch.Tensor]) -> list[nn.Module]:
        with torch.no_grad():  # inference: the modulations are constants
            return net.bind(cond["strength"], fold=True)

    def example_conditions(self, arch: Mapping, n: int) -> dict[str, torch.Tensor]:
        lo, hi = self.strength_range(arch)
        return {"strength": torch.full((n,), (lo + hi) / 2)}



def resnet_generator(in_channels: int, out_channels: int, ngf: int, n_blocks: int, antialias: bool = False,
                     antialias_up: bool = False, strength_range: list[float] | None = None) -> nn.Module:
    """The ResNet generator, strength-conditioned (``FiLMResnetGenerator``) when trained on a range."""
    if strength_range is None:
        return ResnetGenerator(in_channels, out_channels, ngf, n_blocks, antialias, antialias_up)
    return FiLMResnetGenerator(in_channels, out_channels, ngf, n_blocks, antialias, antialias_up, strength_range)
