"""Style metrics of stylised photos (``gan-style eval --painting``, ``gan-style stylize --metrics``):
how close each result is to the painting's style, how much of its photo's content it keeps, and
its colours, measured before (the photo) and after (the result), in the feature network's terms.

    style    mean over style layers of ||G_l(x) - G_l(a)||^2 / ||G_l(p) - G_l(a)||^2: 1 for the photo itself
    content  sum over content layers of ||F_l(x) - F_l(p)||^2 / ||F_l(p)||^2: 0 for the photo itself
    colour_w1_before / _after   colour W1 of the photo / the result to the painting (metrics/colour.py)
    style_held_out   ``style`` on layers that no default objective optimises (``HELD_OUT``): an
                     independent check that the result took the painting's style, not only the
                     statistics it was optimised for
    edges    Pearson correlation of the Sobel gradient magnitudes of the result's and the photo's
             luminance: 1 = every edge kept where it was
    grid_2, grid_4, grid_8   grid scores of the result (metrics/grid.py; the photo's and painting's
             are ``grid_*_photo``, ``grid_*_painting``)

x: the result, p: its photo (resized to the result's size), a: the painting (long side = the
result's). The normalisation is the objective's (gan_style/nets/perceptual.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io.images import list_images, read_rgb
from ..io.tensors import float_to_uint8, image_to_float
from ..nets.perceptual import DEFAULT_LAYERS, FeatureNet, StyleObjective, fit_painting, load_features, style_grams
from .colour import ColourHistogram, colour_w1
from .grid import grid_scores

# Layers that no default objective of nets/perceptual.py optimises, spread over the same depths.
HELD_OUT = {"inception": ("conv_1", "conv_3", "mixed_1"), "vgg19": ("relu1_2", "relu2_2", "relu3_2"),
            "vgg16": ("relu1_1", "relu2_1", "relu3_1")}


def _w1(a: torch.Tensor, b: torch.Tensor) -> float:
    return colour_w1(ColourHistogram().add(float_to_uint8(a)), ColourHistogram().add(float_to_uint8(b)))


@torch.no_grad()
def style_scores(net: FeatureNet, result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor) -> dict[str, float]:
    """The metrics of one result (1, 3, H, W) against its photo and the painting, all in [-1, 1]."""
    photo = F.interpolate(photo, size=result.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    terms = _terms(net, result, photo, painting, DEFAULT_LAYERS[net.name][1])
    scores = {"style": float(terms["style"][0]), "content": float(terms["content"][0]),
              "style_held_out": held_out_style(net, result, photo, painting), "edges": edges_kept(result, photo),
              "colour_w1_before": _w1(photo, painting), "colour_w1_after": _w1(result, painting)}
    for name, image in (("", result), ("_photo", photo), ("_painting", painting)):
        scores |= {f"grid_{p}{name}": v for p, v in grid_scores(image).items()}
    return scores


@torch.no_grad()
def held_out_style(net: FeatureNet, result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor) -> float:
    """The normalised style distance (1 = the photo's) on ``HELD_OUT`` layers; ``photo`` at the result's size."""
    return float(_terms(net, result, photo, painting, HELD_OUT[net.name])["style"][0])


def _terms(net: FeatureNet, result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor,
           style_layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The objective's terms of ``result`` with these style layers (the painting at the result's scale)."""
    grams = style_grams(net, [fit_painting(painting, max(result.shape[-2:]))], [1.0], style_layers)
    return StyleObjective(net, photo, grams, DEFAULT_LAYERS[net.name][0], 0.5)(result)[1]


def _sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    gray = image.mean(dim=1, keepdim=True)  # (1, 1, H, W)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=gray.dtype).view(1, 1, 3, 3)
    gx, gy = F.conv2d(gray, kx), F.conv2d(gray, kx.transpose(-1, -2))
    return (gx**2 + gy**2).sqrt().flatten()


def edges_kept(result: torch.Tensor, photo: torch.Tensor) -> float:
    """Pearson correlation of the Sobel magnitudes of ``result`` and ``photo`` (same size, [-1, 1])."""
    a, b = _sobel_magnitude(result.double()), _sobel_magnitude(photo.double())
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def grid_text(m: dict[str, float]) -> str:
    """The grid scores of ``style_scores`` in one phrase: result, photo, painting at 2/4/8 px."""
    row = lambda suffix: "/".join(f"{m[f'grid_{p}{suffix}']:.1f}" for p in (2, 4, 8))  # noqa: E731
    return f"grid scores at 2/4/8 px {row('')} (photo {row('_photo')}, painting {row('_painting')})"


def folder_style_scores(net: FeatureNet, pairs: list[tuple[Path, Path]], painting: Path) -> dict[str, float]:
    """The mean of ``style_scores`` over (result file, photo file) pairs, and their number."""
    style = image_to_float(read_rgb(painting))[None]
    rows = [style_scores(net, image_to_float(read_rgb(r))[None], image_to_float(read_rgb(p))[None], style)
            for r, p in pairs]
    if not rows:
        raise ValueError("no stylised image has a photo of the same name in --input")
    return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0]} | {"images": len(rows)}


def evaluate_style(painting: Path, photos: Path, features: str = "inception", fake: Path | None = None,
                   weights: str | None = None, limit: int | None = None, strength: float | None = None) -> dict[str, float]:
    """``folder_style_scores`` of the stylised images in ``fake`` (same file names as the photos),
    or of ``weights``' translations of the (first ``limit``) photos (at ``strength``, for a
    strength-conditioned model), with the ``features`` network."""
    found = {p.stem: p for p in list_images(photos)[:limit]}
    net = load_features(features)
    with tempfile.TemporaryDirectory(prefix="gan_style_eval_") as tmp:
        fakes = fake if fake else translate_all(weights, list(found.values()), Path(tmp), strength)
        pairs = [(f, found[f.stem]) for f in list_images(fakes) if f.stem in found]
        return folder_style_scores(net, pairs, painting)


def translate_all(weights: str, photos: list[Path], out: Path, strength: float | None = None) -> Path:
    """Translate ``photos`` with ``weights`` (at ``strength``) into ``out`` as <stem>.png; returns ``out``."""
    from ..inference.translate import load_generator, translate_image

    gen = load_generator(weights, strength=strength)
    for photo in photos:
        translate_image(gen, photo).save(out / f"{photo.stem}.png")
    return out
