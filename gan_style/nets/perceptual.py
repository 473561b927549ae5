"""Perceptual feature networks and the losses of style transfer (Gatys, Ecker, Bethge 2015;
Johnson, Alahi, Fei-Fei 2016). They are not generators: frozen, they only measure images.

Networks (``FEATURES``; each maps an image (N, 3, H, W) in [-1, 1] to named feature maps, running
only up to the deepest layer asked for):

- ``inception`` (default): the FID InceptionV3 (2015-12-05 TF release) of the metrics extra,
  layer by layer; offline, its sha256 verified (gan_style/io/inception.py). Layers: conv, conv_1,
  conv_2 (stride-2 stem), pool0, conv_3, conv_4, pool1, mixed, mixed_1, ... (see ``LAYERS``).
- ``vgg19``, ``vgg16``: torchvision's ImageNet VGG features, downloaded once into the cache with
  the published sha256 prefix verified; layers named as in the papers, relu1_1 ... relu5_4.

Losses, with the paper's names: content (feature MSE), style (normalised Gram matrices, Gatys'
G^l = F^l F^l^T / (C_l H_l W_l)), total variation. ``StyleObjective`` normalises the terms so that
one ``strength`` in [0, 1] means the same across image sizes, paintings and networks:

    L = (1 - s) * sum_l ||F_l(x) - F_l(p)||^2 / ||F_l(p)||^2        (content, by its feature energy)
      + s * mean_l ||G_l(x) - G_l(a)||^2 / ||G_l(p) - G_l(a)||^2     (style, by the photo's own distance)
      + tv * TV(x)

with x the output, p the photo, a the painting(s): at x = p the style term is 1 and the content
term 0, so ``s`` is the share of the objective given to looking like the painting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..io.download import DownloadError, download
from ..io.inception import cache_dir, load_inception_script

# Inception's layers in order (names of the TorchScript submodules), and the default choices.
INCEPTION_LAYERS = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                    "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9", "mixed_10")
# VGG's ReLU outputs: block b, conv c -> relu{b}_{c}. 16 has 2, 2, 3, 3, 3 convs per block; 19: 2, 2, 4, 4, 4.
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
# torchvision's published weights: the file name carries the first 8 hex digits of the sha256.
VGG_URLS = {"vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
            "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_LAYERS = {  # (content layers, style layers)
    "inception": (("conv_4",), ("conv", "conv_2", "conv_4", "mixed", "mixed_2")),
    "vgg19": (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "vgg16": (("relu3_3",), ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
}
MIN_STYLE_SIDE = 64  # below this, the deeper style layers have (almost) no pixels left


class FeatureError(ValueError):
    """A feature network that cannot be used; one line naming the file or layer and the fix."""


def vgg_layer_names(name: str) -> list[str]:
    """The names of torchvision's ``features`` modules: conv{b}_{c}, relu{b}_{c}, pool{b}."""
    names = []
    for b, convs in enumerate(VGG_BLOCKS[name], start=1):
        for c in range(1, convs + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return names


class FeatureNet(nn.Module):
    """A frozen feature network as an ordered list of named stages: ``forward(x, layers)`` runs
    the stages up to the deepest of ``layers`` and returns {name: (N, C_l, H_l, W_l)}."""

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], prepare: Callable[[torch.Tensor], torch.Tensor],
                 name: str) -> None:
        super().__init__()
        self.names = [n for n, _ in stages]
        self.stages = nn.ModuleList([m for _, m in stages])
        self.prepare, self.name = prepare, name
        self.requires_grad_(False).eval()

    def check(self, layers: Sequence[str]) -> None:
        unknown = [layer for layer in layers if layer not in self.names]
        if unknown:
            raise FeatureError(f"{self.name} has no layer {', '.join(unknown)}; its layers: {', '.join(self.names)}")

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.run(self.prepare(x), layers)

    def run(self, h: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The stages on an already prepared input (``prepare(x)``, or a tile of it)."""
        wanted, out = set(layers), {}
        for name, stage in zip(self.names, self.stages):
            h = stage(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out


INCEPTION_PAD = 16  # px of reflection around the image (see _inception_input)


def _inception_input(x: torch.Tensor) -> torch.Tensor:
    # The FID network's convention: RGB in [0, 255] mapped by (v - 128) / 128, i.e. ~[-1, 1].
    # Its convolutions are unpadded ("valid"), so the border pixels would reach few features and
    # stay unconstrained (coloured bands at the edges of a stylised image): reflect them in.
    pad = min(INCEPTION_PAD, x.shape[-2] - 1, x.shape[-1] - 1)
    return F.pad((x + 1) * (255.0 / 256.0) - 1.0 / 256.0, (pad, pad, pad, pad), mode="reflect")


def _imagenet_input(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def inception_features(weights: str | Path | None = None) -> FeatureNet:
    script, _ = load_inception_script(weights)
    layers = script.net.layers  # the TorchScript Sequential of the FID graph's layers
    return FeatureNet([(name, getattr(layers, name)) for name in INCEPTION_LAYERS], _inception_input, "inception")


def vgg_weights_path(name: str) -> Path:
    """torchvision's ImageNet weights for ``name``, downloaded once into the cache (sha256 checked)."""
    url = os.environ.get(f"GAN_STYLE_{name.upper()}_URL", VGG_URLS[name])
    path = cache_dir() / "weights" / Path(VGG_URLS[name]).name
    if not path.is_file():
        prefix = Path(VGG_URLS[name]).stem.rsplit("-", 1)[1]
        try:
            download(url, path, sha256=os.environ.get(f"GAN_STYLE_{name.upper()}_SHA256", prefix), desc=path.name)
        except DownloadError as e:
            raise FeatureError(f"--features {name} needs torchvision's ImageNet weights: {e} "
                               "(or use --features inception, which works offline)") from None
    return path


def vgg_features(name: str, pretrained: bool = True) -> FeatureNet:
    """torchvision's VGG ``features`` as a FeatureNet; ``pretrained=False``: random weights (the
    bench times it: speed does not depend on the weights)."""
    from torchvision.models import vgg16, vgg19

    net = (vgg19 if name == "vgg19" else vgg16)(weights=None)
    if pretrained:
        state = torch.load(vgg_weights_path(name), map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise FeatureError(f"{vgg_weights_path(name)}: not torchvision's {name} ({str(e).splitlines()[0]})") from None
    modules = list(net.features)
    # Style transfer's habit: the ReLUs out of place, so that a recorded activation is not
    # overwritten by the next layer.
    modules = [nn.ReLU() if isinstance(m, nn.ReLU) else m for m in modules]
    return FeatureNet(list(zip(vgg_layer_names(name), modules)), _imagenet_input, name)


FEATURES: dict[str, Callable[[], FeatureNet]] = {
    "inception": inception_features,
    "vgg19": lambda: vgg_features("vgg19"),
    "vgg16": lambda: vgg_features("vgg16"),
}


def load_features(name: str) -> FeatureNet:
    if name not in FEATURES:
        raise FeatureError(f"unknown feature network {name!r}: choose one of {', '.join(FEATURES)}")
    return FEATURES[name]()


# ---------------------------------------------------------------- losses


def wide(t: torch.Tensor) -> torch.Tensor:
    """fp32 for bf16/fp16 features (sums of squares overflow or lose precision), else as is."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gatys' Gram matrix, normalised by the layer's size: (N, C, H, W) -> (N, C, C), in fp32 or fp64."""
    n, c, h, w = f.shape
    flat = wide(f).reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(feats: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_l ||F_l(x) - F_l(p)||^2 / ||F_l(p)||^2 per image: (N,)."""
    return sum(((wide(feats[k]) - wide(t)) ** 2).flatten(1).sum(1) / (wide(t) ** 2).flatten(1).sum(1).clamp_min(1e-12)
               for k, t in targets.items())


def style_distance(feats: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """||G_l(x) - G_l(a)||^2 per layer and image: (N, L), layers in ``target_grams`` order."""
    return torch.stack([((gram(feats[k]) - g) ** 2).flatten(1).sum(1) for k, g in target_grams.items()], dim=1)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image: (N,)."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def style_grams(net: FeatureNet, paintings: Sequence[torch.Tensor], weights: Sequence[float],
                layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The target Gram matrices: the weighted mean over the paintings (each (1, 3, H, W)), (1, C, C) each."""
    total = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for painting, w in zip(paintings, weights):
            for k, f in net(painting, layers).items():
                out[k] = out.get(k, 0) + gram(f) * (w / total)
    return {k: out[k] for k in layers}


class StyleObjective:
    """The normalised objective of the module doc for photos ``photo`` (N, 3, H, W), with the
    paintings' Gram matrices fixed. ``__call__(x)`` -> (total (N,), {"content", "style", "tv"} (N,))."""

    def __init__(self, net: FeatureNet, photo: torch.Tensor, grams: dict[str, torch.Tensor],
                 content_layers: Sequence[str], strength: float | torch.Tensor, tv: float = 0.0) -> None:
        # strength: one value, or one per photo (N,) (loss-conditional training, docs/strength.md)
        low, high = (float(strength.min()), float(strength.max())) if torch.is_tensor(strength) else (strength,) * 2
        if not 0.0 <= low <= high <= 1.0:
            raise FeatureError(f"strength {strength}: must be in [0, 1] (0 = the photo, 1 = style only)")
        net.check([*content_layers, *grams])
        self.net, self.grams, self.content_layers = net, grams, tuple(content_layers)
        self.strength, self.tv = strength, tv
        with torch.no_grad():
            feats = net(photo, [*content_layers, *grams])
            self.content_targets = {k: feats[k].detach() for k in content_layers}
            # Each style layer's distance at the start (the photo itself): the unit of that layer.
            self.style_scale = style_distance(feats, grams).clamp_min(1e-12)  # (N, L)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.net(x, [*self.content_layers, *self.grams])
        content = content_loss(feats, self.content_targets)
        style = (style_distance(feats, self.grams) / self.style_scale).mean(1)
        tv = total_variation(x)
        total = (1 - self.strength) * content + self.strength * style + self.tv * tv
        return total, {"content": content, "style": style, "tv": tv}



def fit_painting(painting: torch.Tensor, long_side: int) -> torch.Tensor:
    """A painting (1, 3, H, W) resized so that its long side is ``long_side`` (at least
    MIN_STYLE_SIDE on the short side): Gram statistics compare at the output's scale."""
    h, w = painting.shape[-2:]
    scale = max(long_side / max(h, w), MIN_STYLE_SIDE / min(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(painting, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
