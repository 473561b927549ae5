"""Style metrics of stylised photos (``gan-style eval --painting``, ``gan-style stylize --metrics``):
how close each result is to the painting's style, how much of its photo's content it keeps, and
its colours, measured before (the photo) and after (the result), in the feature network's terms.

    style    mean over style layers of ||G_l(x) - G_l(a)||^2 / ||G_l(p) - G_l(a)||^2: 1 for the photo itself
    content  sum over content layers of ||F_l(x) - F_l(p)||^2 / ||F_l(p)||^2: 0 for the photo itself
    colour_w1_before / _after   colour W1 of the photo / the result to the painting (metrics/colour.py)

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


def _w1(a: torch.Tensor, b: torch.Tensor) -> float:
    return colour_w1(ColourHistogram().add(float_to_uint8(a)), ColourHistogram().add(float_to_uint8(b)))


@torch.no_grad()
def style_scores(net: FeatureNet, result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor) -> dict[str, float]:
    """The metrics of one result (1, 3, H, W) against its photo and the painting, all in [-1, 1]."""
    photo = F.interpolate(photo, size=result.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    content_layers, style_layers = DEFAULT_LAYERS[net.name]
    grams = style_grams(net, [fit_painting(painting, max(result.shape[-2:]))], [1.0], style_layers)
    _, terms = StyleObjective(net, photo, grams, content_layers, 0.5)(result)
    return {"style": float(terms["style"][0]), "content": float(terms["content"][0]),
            "colour_w1_before": _w1(photo, painting), "colour_w1_after": _w1(result, painting)}


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
