"""The ResNet generator of CycleGAN and CUT, weight-for-weight compatible with both official codes.

Naming follows the reference code (junyanz/pytorch-CycleGAN-and-pix2pix) and maps to the
CycleGAN paper (Zhu et al., 2017) as follows:

    G_A = G : A -> B        (e.g. Monet -> photo for monet2photo)
    G_B = F : B -> A
    D_A = D_Y : judges G_A(A) against real B
    D_B = D_X : judges G_B(B) against real A

CUT (Park et al., 2020) has one generator G : X -> Y; its encoder's features also feed the
PatchNCE loss (``forward(x, nce_layers)`` and ``encode``).

The ``nn.Sequential`` layouts reproduce the official ``state_dict`` keys exactly: a CycleGAN
9-block generator has ``model.1.weight`` ... ``model.26.bias``; the antialiased CUT one has blur
buffers ``model.7.filt``, ``model.11.filt``, ``model.21.filt``, ``model.25.filt`` and ends at
``model.30.bias``. Reference checkpoints (``latest_net_G_A.pth``, ``style_monet.pth``) and CUT's
``latest_net_G.pth`` load with ``strict=True``.

This module holds pure ``nn.Module``s with explicit arguments: it imports nothing from the
training code, so inference and export can use it alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .kind import GeneratorKind
from .layers import BlurDownsample, BlurUpsample, Residual, instance_norm


class ResnetBlock(Residual):
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

    @property
    def body(self) -> nn.Sequential:  # type: ignore[override]
        return self.conv_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def encoder_layers(in_channels: int, ngf: int, antialias: bool) -> list[nn.Module]:
    """The stem and the two downsamplings of the ResNet generators (CycleGAN's, CUT's, UNSB's):
    (N, in_channels, H, W) -> (N, 4*ngf, H/4, W/4); 10 layers, or 12 with ``antialias``."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, ngf, kernel_size=7, bias=True),
        instance_norm(ngf),
        nn.ReLU(inplace=True),
    ]
    for c in (ngf, 2 * ngf):  # downsample: c -> 2c channels, halving H and W each time
        if antialias:
            layers += [nn.Conv2d(c, 2 * c, kernel_size=3, padding=1, bias=True), instance_norm(2 * c),
                       nn.ReLU(inplace=True), BlurDownsample(2 * c)]
        else:
            layers += [nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=True), instance_norm(2 * c),
                       nn.ReLU(inplace=True)]
    return layers


def decoder_layers(ngf: int, out_channels: int, antialias_up: bool) -> list[nn.Module]:
    """The two upsamplings and the output layer of the ResNet generators:
    (N, 4*ngf, H/4, W/4) -> (N, out_channels, H, W) in [-1, 1]."""
    layers: list[nn.Module] = []
    for c in (4 * ngf, 2 * ngf):  # upsample: c -> c/2 channels, doubling H and W each time
        if antialias_up:
            layers += [BlurUpsample(c), nn.Conv2d(c, c // 2, kernel_size=3, padding=1, bias=True)]
        else:
            layers += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True)]
        layers += [instance_norm(c // 2), nn.ReLU(inplace=True)]
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()]


class ResnetGenerator(nn.Module):
    """The ResNet generator (Johnson et al. architecture), as in the CycleGAN and CUT codes.

    Shapes for an input (N, in_channels, H, W) with H and W multiples of 4:
    7x7 conv -> (N, ngf, H, W); two downsamplings -> (N, 4*ngf, H/4, W/4);
    ``n_blocks`` residual blocks at that size; two upsamplings -> (N, ngf, H, W);
    7x7 conv + tanh -> (N, out_channels, H, W) in [-1, 1].

    ``antialias`` (CUT's default) downsamples with conv 3x3 stride 1, IN, ReLU, blur-and-subsample
    instead of a stride-2 conv; ``antialias_up`` upsamples with a fixed blur then conv 3x3 instead
    of a learnt transposed conv (no checkerboard). Both off = the CycleGAN layout.
    Other input sizes work too: the output then has the input's size rounded up to a multiple
    of 4 (inference pads and crops, see ``inference/translate.py``).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 antialias: bool = False, antialias_up: bool = False) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        layers = encoder_layers(in_channels, ngf, antialias)
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        layers += decoder_layers(ngf, out_channels, antialias_up)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_with_features(self, x: torch.Tensor, nce_layers: tuple[int, ...]):
        """The translation and the outputs of layers ``nce_layers`` of ``self.model`` on the way
        (CUT's keys: the encoder features of the real images), from one pass."""
        feats = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in nce_layers:
                feats.append(x)
        return x, feats

    def encode(self, x: torch.Tensor, nce_layers: tuple[int, ...]) -> list[torch.Tensor]:
        """The outputs of layers ``nce_layers`` (ascending), stopping after the last one: CUT's
        queries. For indices 0, 4, 8, 12, 16 of the antialiased 9-block generator and a 256 px
        input: (N, 3, 262, 262), (N, 2ngf, 256, 256), (N, 4ngf, 128, 128), (N, 4ngf, 64, 64) x 2."""
        feats = []
        for i, layer in enumerate(self.model[: max(nce_layers) + 1]):
            x = layer(x)
            if i in nce_layers:
                feats.append(x)
        return feats


def generator_arch(state_dict: dict[str, torch.Tensor]) -> dict:
    """Read a ResnetGenerator's architecture (channels, ngf, n_blocks, antialiasing) from its state_dict.

    Works for our checkpoints, the reference's and CUT's, so a user never has to guess.
    """
    try:
        first = state_dict["model.1.weight"]  # (ngf, in_channels, 7, 7)
    except KeyError:
        raise ValueError("not a ResnetGenerator state_dict: key 'model.1.weight' is missing") from None
    blocks = {int(k.split(".")[1]) for k in state_dict if ".conv_block." in k}
    convs = [int(k.split(".")[1]) for k in state_dict if k.startswith("model.") and k.endswith(".weight")]
    blurs = [int(k.split(".")[1]) for k in state_dict if k.startswith("model.") and k.endswith(".filt")]
    last = state_dict[f"model.{max(convs)}.weight"]  # (out_channels, ngf, 7, 7)
    antialias = 7 in blurs  # the first downsampling's blur; the encoder then ends at index 11
    return {
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": len(blocks),
        "antialias": antialias,
        "antialias_up": any(i > 11 for i in blurs) if antialias else bool(blurs),
    }


class WithFeatures(nn.Module):
    """``forward(x)`` -> ``net.forward_with_features(x, nce_layers)``: lets DDP (which hooks only
    ``forward``) and torch.compile wrap CUT's generator pass that also returns the features, while
    the generator's own ``forward`` keeps one return type (TorchScript export needs that)."""

    def __init__(self, net: ResnetGenerator, nce_layers: tuple[int, ...]) -> None:
        super().__init__()
        self.net, self.nce_layers = net, tuple(nce_layers)

    def forward(self, x: torch.Tensor, *conditions: torch.Tensor):
        return self.net.forward_with_features(x, self.nce_layers, *conditions)


class ResnetKind(GeneratorKind):
    """The CycleGAN / CUT ResNet generator: one pass, no conditioning, exactly tileable."""

    name = "resnet"
    module = ResnetGenerator

    def recognises(self, state) -> bool:
        # UNSB's generator has the same encoder keys, plus its blocks and noise mapping.
        return "model.1.weight" in state and not any(k.startswith(("model_res.", "z_transform.")) for k in state)

    def arch(self, state) -> dict:
        return generator_arch(state)

    def layers(self, net: nn.Module, cond) -> list[nn.Module]:
        return list(net.model)
