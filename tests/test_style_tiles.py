"""Stylize at full size (inference/style_tiles.py, style_memory.py): the objective in tiles equals
the whole image's (value and gradient), the painting's Grams likewise, the budget met by tiles
then a shorter history, a budget too small refused in one line, the measured peak of a large
generated photo within the budget (bench/memory.py), the lattice removed from what the objective
sees (inference/lattice.py), and the grid scores (metrics/grid.py)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from PIL import Image

from gan_style.bench.memory import can_measure, measured_stylize_peak, stylize_estimate
from gan_style.cli import main as cli_main
from gan_style.inference import style_memory
from gan_style.inference.lattice import without_lattice
from gan_style.inference.memory import MemoryBudgetError
from gan_style.inference.style_tiles import (TiledObjective, WholeObjective, geometry, painting_grams,
                                             total_variation_in_bands)
from gan_style.inference.stylize import StylizeSettings, stylize
from gan_style.metrics.grid import grid_scores
from gan_style.nets.perceptual import DEFAULT_LAYERS, StyleObjective, load_features, style_grams, total_variation

CONTENT, STYLE = DEFAULT_LAYERS["inception"]
NULL = contextlib.nullcontext


@pytest.fixture(scope="module")
def inception():
    return load_features("inception")


def textured(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth random image with fine noise (1, 3, H, W) in [-1, 1]: every layer has something to see."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g) * 2 - 1
    smooth = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    return (smooth + 0.1 * torch.randn(1, 3, h, w, generator=g)).clamp(-1, 1)


def test_the_geometry_is_the_inception_stems(inception):
    geo = geometry(inception, [*CONTENT, *STYLE])
    assert geo.strides == {"conv_4": 4, "conv": 2, "conv_2": 2, "mixed": 8, "mixed_2": 8}
    assert geo.stride == 8 and geo.halo % 8 == 0 and geo.halo >= 76  # mixed_2 reaches 76 px past its anchor
    assert geo.channels["mixed_2"] == 288


def test_the_tiled_objective_has_the_whole_images_value_and_gradient(inception):
    # odd sizes and small tiles: the prepared (16 px reflected) 264 x 332 image in 5 x 6 tiles
    photo, x0 = textured(232, 300, 1), textured(232, 300, 3)
    grams = style_grams(inception, [textured(256, 256, 2)], [1.0], STYLE)
    whole = WholeObjective(StyleObjective(inception, photo, grams, CONTENT, 0.6, 0.01), NULL)
    tiled = TiledObjective(inception, photo, grams, CONTENT, 0.6, 0.01, 64, NULL)
    assert len(tiled.tiles) == 30
    x = x0.clone().requires_grad_(True)
    value, terms = whole.evaluate(x)
    expected = x.grad.clone()
    x = x0.clone().requires_grad_(True)
    tiled_value, tiled_terms = tiled.evaluate(x)
    torch.testing.assert_close(tiled_value, value, rtol=1e-5, atol=0)
    for k in ("content", "style", "tv"):
        torch.testing.assert_close(tiled_terms[k], terms[k], rtol=1e-5, atol=0)
    assert float((x.grad - expected).norm() / expected.norm()) < 1e-5


def test_the_paintings_grams_in_tiles_are_the_whole_ones(inception):
    paintings = [textured(200, 280, 4), textured(180, 180, 5)]
    whole = style_grams(inception, paintings, [2.0, 1.0], STYLE)
    tiled = painting_grams(inception, paintings, [2.0, 1.0], STYLE, 64, NULL)
    for k in STYLE:
        torch.testing.assert_close(tiled[k], whole[k], rtol=1e-5, atol=1e-7)


def test_total_variation_in_bands_is_the_whole_one_with_its_gradient():
    x0 = torch.randn(2, 3, 23, 17)
    x = x0.clone().requires_grad_(True)
    (0.3 * total_variation(x)).sum().backward()
    expected = x.grad.clone()
    x = x0.clone().requires_grad_(True)
    x.grad = torch.zeros_like(x)
    value = total_variation_in_bands(x, 0.3, rows=5)
    torch.testing.assert_close(value, total_variation(x0))
    torch.testing.assert_close(x.grad, expected)


def test_stylize_in_tiles_gives_the_whole_images_result(inception):
    photo, painting = textured(136, 176, 6), textured(160, 160, 7)
    settings = dict(steps=3, start_side=1000, strength=0.7)
    whole, _ = stylize(inception, photo, [painting], StylizeSettings(**settings), torch.device("cpu"))
    tiled, _ = stylize(inception, photo, [painting], StylizeSettings(**settings, tile=64), torch.device("cpu"))
    assert (whole - photo).abs().mean() > 0.004  # it did something
    assert (tiled - whole).abs().max() < 2e-3


def test_the_budget_is_met_by_tiles_then_a_shorter_history_else_one_line(inception):
    geo = geometry(inception, [*CONTENT, *STYLE])
    size, peak = (3000, 4000), style_memory.peak_bytes
    whole = peak(size, geo, CONTENT, 0, 10)
    tiled = peak(size, geo, CONTENT, 1024, 10)
    assert tiled < whole and peak(size, geo, CONTENT, 512, 10) < tiled
    assert style_memory.plan_scale(size, geo, CONTENT, 10, "fp32", "lbfgs", None) == style_memory.StylePlan(0, 10, whole)
    assert style_memory.plan_scale(size, geo, CONTENT, 10, "fp32", "lbfgs", tiled).tile == 1024
    short = style_memory.plan_scale(size, geo, CONTENT, 10, "fp32", "lbfgs", peak(size, geo, CONTENT, 512, 5))
    assert (short.tile, short.history) in {(1024, 5), (512, 5)}
    with pytest.raises(MemoryBudgetError, match="4000x3000.*--max-memory"):
        style_memory.plan_scale(size, geo, CONTENT, 10, "fp32", "lbfgs", 2**30)


def test_a_photo_over_the_budget_is_one_line_and_the_others_are_stylized(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (96, 72), "red").save(photos / "small.png")
    Image.new("RGB", (3000, 2000), "blue").save(photos / "large.png")
    Image.new("RGB", (128, 128), "green").save(tmp_path / "painting.png")
    code = cli_main(["stylize", "--content", str(photos), "--style", str(tmp_path / "painting.png"), "--steps", "2",
                     "-o", str(tmp_path / "out"), "--max-memory", "400M"])
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "out" / "small.png").exists() and not (tmp_path / "out" / "large.png").exists()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--max-memory" in lines[0] and "Traceback" not in err


@pytest.mark.skipif(not can_measure(), reason="needs Linux's /proc peak reset")
def test_a_large_photo_is_stylized_within_the_budget_and_the_estimate():
    h, w, budget = 768, 1024, 600 * 2**20  # whole, it would need about 1.2 GB
    plan, estimate = stylize_estimate(h, w, budget)
    assert plan.tile, plan
    measured = measured_stylize_peak(h, w, budget)
    assert measured <= budget
    assert 0.7 * measured <= estimate <= 1.3 * measured, (estimate, measured)


def test_the_grid_scores_find_a_checkerboard_and_a_lattice():
    image = textured(256, 320, 8)
    plain = grid_scores(image)
    yy, xx = torch.meshgrid(torch.arange(256), torch.arange(320), indexing="ij")
    checker = grid_scores(image + 0.02 * ((yy + xx) % 2 * 2 - 1))
    lattice = grid_scores(image + 0.02 * ((yy % 8 < 4) ^ (xx % 8 < 4)))
    assert checker[2] > 50 * plain[2] and checker[8] == pytest.approx(plain[8], rel=1e-6)
    assert lattice[8] > 10 * plain[8] and lattice[2] == pytest.approx(plain[2], rel=1e-6)


def test_without_lattice_is_a_projection_that_removes_a_grid_and_keeps_the_rest():
    image = textured(120, 152, 9)  # sizes not multiples of 8: the lattice falls between bins
    yy, xx = torch.meshgrid(torch.arange(120), torch.arange(152), indexing="ij")
    grid = 0.05 * ((yy + xx) % 2 * 2 - 1) + 0.05 * (((yy % 4 < 2) ^ (xx % 4 < 2)) * 2 - 1)  # zero mean
    once = without_lattice(image + grid, 8)
    torch.testing.assert_close(without_lattice(once, 8), once, atol=1e-5, rtol=0)  # a projection
    assert (once - without_lattice(image, 8)).abs().max() < 0.02  # the grid is gone...
    kept = ((without_lattice(image, 8) - image) ** 2).sum() / ((image - image.mean()) ** 2).sum()
    assert kept < 0.01  # ...and little else: under 1 % of the image's own energy
    x = torch.randn(1, 3, 40, 56, requires_grad=True)
    v = torch.randn(1, 3, 40, 56)
    (without_lattice(x, 8) * v).sum().backward()
    torch.testing.assert_close(x.grad, without_lattice(v, 8), atol=1e-5, rtol=0)  # its gradient is itself


def test_the_tiled_objective_seen_without_the_lattice_is_the_whole_ones(inception):
    photo, x0 = textured(136, 176, 10), textured(136, 176, 11)
    grams = style_grams(inception, [textured(160, 160, 12)], [1.0], STYLE)
    whole_objective = StyleObjective(inception, without_lattice(photo, 8), grams, CONTENT, 0.5, 0.01)
    whole = WholeObjective(whole_objective, NULL, lattice=8)
    tiled = TiledObjective(inception, photo, grams, CONTENT, 0.5, 0.01, 64, NULL, lattice=8)
    x = x0.clone().requires_grad_(True)
    value, _ = whole.evaluate(x)
    expected = x.grad.clone()
    x = x0.clone().requires_grad_(True)
    torch.testing.assert_close(tiled.evaluate(x)[0], value, rtol=1e-5, atol=0)
    assert float((x.grad - expected).norm() / expected.norm()) < 2e-4  # float32 FFTs in the sum
