"""The style objective of an image too large for one pass of the feature network: its value and
its gradient with respect to the pixels, tile by tile, equal to the whole image's (up to the order
of float sums; tests/test_style_tiles.py). The Gram matrices stay global.

One evaluation is two passes over the tiles of the prepared image (``FeatureNet.prepare(x)``):

1. without gradients: each tile's share of every style layer's F F^T (C x C), summed into the
   global Gram matrices G_l and the style term;
2. with gradients, one tile at a time: the surrogate sum_l <dL/dR_l, F F^T of the tile's core>
   plus the core's content term, where R_l = F F^T over the whole image. Its gradient with
   respect to the tile's pixels is the core's share of the whole gradient (dL/dF = 2 (dL/dR) F
   for a symmetric dL/dR), and the shares add up.

Each tile is its core plus a halo of context on every side, at least the receptive field's
reach of the deepest layer used; core origins are multiples of that layer's stride, so a tile's
feature (i, j) is the image's (i + r0 / S_l, j + c0 / S_l). Every feature position belongs to
exactly one core. Memory: one tile's activations and gradients, the content targets (kept per
core) and a few image-sized buffers, whatever the image size (inference/style_memory.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import torch

from ..nets.perceptual import FeatureNet, StyleObjective, wide
from .lattice import without_lattice

Cast = Callable[[], contextlib.AbstractContextManager]  # a fresh autocast (or null) context


@dataclass(frozen=True)
class Geometry:
    """Where the layers' features sit: ``strides`` per layer, ``stride`` the largest (core origins
    are its multiples), ``halo`` px of context each side (a multiple of ``stride``), ``channels``
    per layer, and ``elements``: the feature network's activations up to the deepest layer, in
    values per input pixel (the memory estimate's unit, inference/style_memory.py)."""

    strides: dict[str, int]
    stride: int
    halo: int
    channels: dict[str, int]
    elements: float


def _sizes(net: FeatureNet, layers: Sequence[str], side: int) -> tuple[dict[str, torch.Size], float]:
    """Each layer's feature shape at a ``side`` px input, and all stages' outputs up to the deepest, in values per pixel."""
    shapes, total, h = {}, 0, torch.zeros(1, 3, side, side)
    with torch.no_grad():
        for name, stage in zip(net.names, net.stages):
            h = stage(h)
            total += h.numel()
            if name in layers:
                shapes[name] = h.shape
                if len(shapes) == len(set(layers)):
                    break
    return shapes, total / side**2


def _reach(net: FeatureNet, layer: str, stride: int, side: int) -> tuple[int, int] | None:
    """(before, after): how far the receptive field of a central feature of ``layer`` reaches from
    its anchor (index g -> pixel S·g), or None when it touches the probe's border (too small)."""
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0), requires_grad=True)
    with torch.enable_grad():
        f = net.run(x, [layer])[layer]  # (1, C, h, w)
        g = f.shape[-1] // 2
        (grad,) = torch.autograd.grad(f[0, :, g, g].sum(), x)
    cols = grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()  # the pixels' columns that reach it
    first, last = int(cols.min()), int(cols.max())
    if first == 0 or last == side - 1:
        return None
    return stride * g - first, last - stride * g


@lru_cache(maxsize=8)
def _geometry(net: FeatureNet, layers: tuple[str, ...]) -> Geometry:
    small, step = 256, 128
    (a, elements), (b, _) = _sizes(net, layers, small), _sizes(net, layers, small + step)
    strides = {k: round(step / (b[k][-1] - a[k][-1])) for k in layers}
    stride = max(strides.values())
    reach, side = 0, small
    for layer in layers:
        while (found := _reach(net, layer, strides[layer], side)) is None:
            side *= 2
        reach = max(reach, *found)
    # One stride more than measured: a max-pool routes the probe's gradient to its maxima only.
    halo = -(-(reach + stride) // stride) * stride
    return Geometry(strides, stride, halo, {k: a[k][1] for k in layers}, elements)


def geometry(net: FeatureNet, layers: Sequence[str]) -> Geometry:
    """The geometry of ``layers`` of ``net``, measured once (a gradient probe of each layer)."""
    return _geometry(net, tuple(dict.fromkeys(layers)))


@dataclass(frozen=True)
class Span:
    """One axis of a tile: its input ``[start, stop)`` px and its core ``[core, core_stop)`` px;
    ``last``: the core runs to the end of the image (and of every feature map)."""

    start: int
    stop: int
    core: int
    core_stop: int
    last: bool

    def features(self, stride: int, local: int) -> slice:
        """The core's features in the tile's feature map of ``local`` positions along this axis."""
        offset = self.start // stride
        return slice(self.core // stride - offset, local if self.last else self.core_stop // stride - offset)

    def local(self) -> "Span":
        """The same span in the tile's own coordinates (the tile cut out)."""
        return Span(0, self.stop - self.start, self.core - self.start, self.core_stop - self.start, self.last)


def spans(length: int, core: int, geo: Geometry) -> list[Span]:
    """Cores of ``core`` px (a multiple of the stride) covering ``length`` px, each with its halo."""
    out, c0 = [], 0
    while c0 < length:
        c1 = length if c0 + core >= length or length - (c0 + core) < geo.stride else c0 + core
        out.append(Span(max(0, c0 - geo.halo), min(length, c1 + geo.halo), c0, c1, c1 == length))
        c0 = c1
    return out


def tiles(shape: Sequence[int], tile: int, geo: Geometry) -> list[tuple[Span, Span]]:
    """(rows, columns) of the tiles of an image of ``shape`` (..., H, W), cores of ``tile`` px
    rounded up to a multiple of the stride."""
    core = -(-tile // geo.stride) * geo.stride
    return [(r, c) for r in spans(shape[-2], core, geo) for c in spans(shape[-1], core, geo)]


def cores(net: FeatureNet, prepared: torch.Tensor, tile: tuple[Span, Span], layers: Sequence[str], geo: Geometry,
          cast: Cast) -> dict[str, torch.Tensor]:
    """The cores of ``layers``' features of one tile of ``prepared``: {layer: (N, C, h, w)}, views."""
    r, c = tile
    with cast():
        feats = net.run(prepared[..., r.start:r.stop, c.start:c.stop], layers)
    return {k: f[..., r.features(geo.strides[k], f.shape[-2]), c.features(geo.strides[k], f.shape[-1])]
            for k, f in feats.items()}


def tiled_grams(net: FeatureNet, prepared: torch.Tensor, layers: Sequence[str], tile: int, cast: Cast,
                geo: Geometry | None = None) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The Gram matrices (N, C, C) of the whole prepared image, as nets.perceptual.gram, from its
    tiles, and each layer's number of feature positions h·w. Without gradients. ``geo``: that of
    ``layers`` unless given (a superset's)."""
    geo = geo or geometry(net, layers)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    with torch.no_grad():
        for t in tiles(prepared.shape, tile, geo):
            for k, f in cores(net, prepared, t, layers, geo, cast).items():
                flat = wide(f).flatten(2)  # (N, C, h·w)
                sums[k] = sums.get(k, 0) + (flat @ flat.transpose(1, 2)).double()
                counts[k] = counts.get(k, 0) + flat.shape[-1]
    return {k: (sums[k] / (sums[k].shape[-1] * counts[k])).float() for k in layers}, counts


def painting_grams(net: FeatureNet, paintings: Sequence[torch.Tensor], weights: Sequence[float], layers: Sequence[str],
                   tile: int, cast: Cast, geo: Geometry | None = None) -> dict[str, torch.Tensor]:
    """nets.perceptual.style_grams, tile by tile: the weighted mean of the paintings' Grams, (1, C, C)
    each. ``geo``: as in ``tiled_grams``."""
    total, out = float(sum(weights)), {}
    for painting, w in zip(paintings, weights):
        with torch.no_grad():
            grams, _ = tiled_grams(net, net.prepare(painting), layers, tile, cast, geo)
        out = {k: out.get(k, 0) + g * (w / total) for k, g in grams.items()}
    return out


def seen(x: torch.Tensor, lattice: int) -> torch.Tensor:
    """What the feature network sees of ``x``: all of it, or (``lattice`` > 0) all but that
    period's lattice of frequencies (inference/lattice.py)."""
    return without_lattice(x, lattice) if lattice else x


class TiledObjective:
    """``StyleObjective`` (gan_style/nets/perceptual.py) of a photo (N, 3, H, W), computed in
    tiles of ``tile`` px (rounded up to a multiple of the geometry's stride). ``evaluate(x)``
    sets ``x.grad`` and returns (total (N,), {"content", "style", "tv"} (N,)), all detached.
    The features are those of ``seen(photo, lattice)`` and ``seen(x, lattice)``; the TV term sees
    all of ``x``."""

    def __init__(self, net: FeatureNet, photo: torch.Tensor, grams: dict[str, torch.Tensor],
                 content_layers: Sequence[str], strength: float, tv: float, tile: int, cast: Cast,
                 lattice: int = 0) -> None:
        net.check([*content_layers, *grams])
        self.net, self.targets, self.content_layers = net, grams, tuple(content_layers)
        self.strength, self.tv, self.tile, self.cast, self.lattice = strength, tv, tile, cast, lattice
        self.geo = geometry(net, [*content_layers, *grams])
        with torch.no_grad():
            # The prepared photo, not its features: the content targets are computed again tile by
            # tile at each evaluation (the same values), a third of the memory of keeping them.
            self.photo = net.prepare(seen(photo, lattice))
            self.tiles = tiles(self.photo.shape, tile, self.geo)
            self.energy = {k: 0 for k in self.content_layers}  # ||F_l(p)||^2, (N,) per layer
            for t in self.tiles:
                for k, f in self._cores(self.photo, t, self.content_layers).items():
                    self.energy[k] = self.energy[k] + (wide(f) ** 2).flatten(1).sum(1)
            # Each style layer's distance for the photo itself: the unit of that layer, (N, L)
            self.style_scale = self._distance(self._grams(self.photo)[0]).clamp_min(1e-12)

    def _cores(self, prepared: torch.Tensor, tile: tuple[Span, Span], layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return cores(self.net, prepared, tile, layers, self.geo, self.cast)

    def _grams(self, prepared: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        return tiled_grams(self.net, prepared, list(self.targets), self.tile, self.cast, self.geo)

    def _distance(self, grams: dict[str, torch.Tensor]) -> torch.Tensor:
        """||G_l - G_l(a)||^2 per image and layer: (N, L)."""
        return torch.stack([((grams[k] - a) ** 2).flatten(1).sum(1) for k, a in self.targets.items()], dim=1)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s = self.strength
        prepared = self.net.prepare(seen(x, self.lattice))  # (N, 3, H', W'), with its graph back to x
        with torch.no_grad():
            grams, counts = self._grams(prepared)
            style = (self._distance(grams) / self.style_scale).mean(1)
            # dL/dR_l, R_l = sum over the image of F F^T = G_l · C·h·w: (N, C, C) per layer
            slopes = {k: s * 2 * (g - self.targets[k]) / (self.style_scale[:, i, None, None] * len(grams)
                                                           * g.shape[-1] * counts[k])
                      for i, (k, g) in enumerate(grams.items())}
        grad = torch.zeros_like(prepared)
        content = torch.zeros(x.shape[0], device=x.device)
        for r, c in self.tiles:
            with torch.no_grad():
                targets = self._cores(self.photo, (r, c), self.content_layers)
            tile = prepared.detach()[..., r.start:r.stop, c.start:c.stop].requires_grad_(True)
            part, content_part = self._surrogate(tile, (r.local(), c.local()), targets, slopes)
            part.sum().backward()
            grad[..., r.start:r.stop, c.start:c.stop] += tile.grad
            content += content_part.detach()
        prepared.backward(grad)
        tv = total_variation_in_bands(x, self.tv)
        total = (1 - s) * content + s * style + self.tv * tv
        return total, {"content": content, "style": style, "tv": tv}

    def _surrogate(self, tile: torch.Tensor, spans: tuple[Span, Span], targets: dict[str, torch.Tensor],
                   slopes: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the surrogate of the module doc for one tile, its content term), both (N,)."""
        feats = self._cores(tile, spans, [*self.content_layers, *self.targets])
        content = sum(((wide(feats[k]) - wide(t)) ** 2).flatten(1).sum(1) / self.energy[k].clamp_min(1e-12)
                      for k, t in targets.items())
        style = sum(((slope @ wide(feats[k]).flatten(2)) * wide(feats[k]).flatten(2)).flatten(1).sum(1)
                    for k, slope in slopes.items())  # <dL/dR, F F^T> = sum((dL/dR F) * F)
        return (1 - self.strength) * content + style, content



def total_variation_in_bands(x: torch.Tensor, weight: float, rows: int = 256) -> torch.Tensor:
    """nets.perceptual.total_variation(x) (N,), detached, with ``weight`` times its gradient added
    to ``x.grad``, ``rows`` rows at a time (autograd over the whole image would hold several
    image-sized buffers)."""
    n, c, h, w = x.shape
    total = torch.zeros(n, dtype=x.dtype, device=x.device)
    for top in range(0, h, rows):
        band = x.detach()[..., top:top + rows + 1, :].requires_grad_(True)  # one row more: its last vertical pairs
        inner = band[..., :min(rows, h - top), :]
        value = ((band[..., 1:, :] - band[..., :-1, :]).abs().flatten(1).sum(1) / (c * (h - 1) * w)
                 + (inner[..., 1:] - inner[..., :-1]).abs().flatten(1).sum(1) / (c * h * (w - 1)))
        (weight * value).sum().backward()
        x.grad[..., top:top + band.shape[-2], :] += band.grad
        total += value.detach()
    return total


class WholeObjective:
    """``StyleObjective`` on the whole image in one pass, behind ``TiledObjective``'s ``evaluate``;
    ``objective`` was built on ``seen(photo, lattice)``, and sees ``x`` so too."""

    def __init__(self, objective: StyleObjective, cast: Cast, lattice: int = 0) -> None:
        self.objective, self.cast, self.lattice = objective, cast, lattice

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self.cast():
            total, parts = self.objective(seen(x, self.lattice))
        total.sum().backward()
        return total.detach(), {k: v.detach() for k, v in parts.items()}

