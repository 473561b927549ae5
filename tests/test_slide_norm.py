"""Slides within a disk budget: the kernel and thumbnail normalisation modes against exact on a
generated slide, auto's choice under --max-disk, the one line when even kernel mode does not fit,
and that kernel mode keeps no whole-slide activations on disk."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from gan_style.bench.slides import difference, seam_score, synthetic_tiles
from gan_style.cli import main as cli_main
from gan_style.cli.translate import bytes_arg
from gan_style.inference import slide, slide_norm, tiling
from gan_style.inference.translate import Generator
from gan_style.inference.weights import GeneratorInfo
from gan_style.io.scan import ScanError
from gan_style.nets import ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 512  # the slide's side; cells of 64 px: an 8 x 8 grid
CELL = 64  # kernel cells in the scaled-down setting (``small_cells``): 1/8 of the real 512 px
ARCH = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}

# Measured on this slide and generator (docs/science.md): kernel mean 1.06 %, p99 4.3 % of the window
# (before the sample's calibration and the relative kernel: 6.2 % and 27.8 %); with a local kernel of
# 4 cells 2.5 % and 13.3 %; seam scores 0.99 (cell borders) and 0.94 (tile borders), as exact's own;
# thumbnail 10.3 % and 42.7 %. Cells normalised by their own statistics (no smoothing, no
# interpolation): seam scores over 1.15. The bounds sit between, with margin both ways.
KERNEL_MEAN, KERNEL_P99 = 2.5, 9.0
THUMB_MEAN, THUMB_P99 = 16.0, 60.0
LOCAL = 4.0 * CELL  # px: a local kernel of 4 cells, as 2048 px over the real 512 px cells
LOCAL_MEAN, LOCAL_P99 = 5.0, 25.0
SEAMLESS = 1.1


@pytest.fixture(scope="module")
def stain(tmp_path_factory) -> Path:
    """A synthetic stain slide (tissue on glass, textured) as a tiled TIFF."""
    folder = tmp_path_factory.mktemp("stain")
    tiles = list(synthetic_tiles(SIZE, seed=0, tile=128))
    per_row = SIZE // 128
    image = np.concatenate([np.concatenate(tiles[i : i + per_row], 1) for i in range(0, len(tiles), per_row)], 0)
    tifffile.imwrite(folder / "slide.tif", image, tile=(64, 64), photometric="rgb")
    return folder


def generator() -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.05).eval()
    return Generator(net, GeneratorInfo(arch=ARCH, origin="tiny"), torch.device("cpu"), "fp32")


def scale_down(mp: pytest.MonkeyPatch) -> None:
    """Cells of 64 px, tiles of 128 px and a thumbnail of 128 px (4x reduced): a tiny slide has a grid of
    cells and a reduced thumbnail, as a large one does (a local kernel: ``LOCAL``, 4 cells)."""
    mp.setattr(slide_norm, "CELL", CELL)
    mp.setattr(slide_norm, "THUMB_SIDE", 128)
    mp.setattr(slide, "COMPUTE_TILE", 128)


@pytest.fixture
def small_cells(monkeypatch):
    scale_down(monkeypatch)


def translate(stain: Path, mode: str, out: Path, **kwargs) -> Path:
    slide.translate_slide(generator(), stain / "slide.tif", out, tile=64, norm=mode, **kwargs)
    return out


@pytest.fixture(scope="module")
def outputs(stain, tmp_path_factory) -> dict[str, Path]:
    """The slide translated in each mode, scaled down (``scale_down``), and kernel mode with a local kernel."""
    folder = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as mp:
        scale_down(mp)
        out = {mode: translate(stain, mode, folder / f"{mode}.tif") for mode in ("exact", "kernel", "thumbnail")}
        return out | {"local": translate(stain, "kernel", folder / "local.tif", kernel_sigma=LOCAL)}


def read(path: Path) -> np.ndarray:
    return tifffile.imread(path).astype(np.int64)


def test_kernel_and_thumbnail_are_close_to_exact_and_kernel_shows_no_seams(outputs):
    kernel, thumb = difference(outputs["kernel"], outputs["exact"]), difference(outputs["thumbnail"], outputs["exact"])
    local = difference(outputs["local"], outputs["exact"])
    assert 0 < kernel["mean_pct"] < KERNEL_MEAN and kernel["p99_pct"] < KERNEL_P99
    assert 0 < local["mean_pct"] < LOCAL_MEAN and local["p99_pct"] < LOCAL_P99
    assert 0 < thumb["mean_pct"] < THUMB_MEAN and thumb["p99_pct"] < THUMB_P99  # not exact: the thumbnail is reduced
    # Seams at the cells' borders (64 px) and at the tiling's rectangles (128 px): none beyond exact's own texture.
    for period in (CELL, 128):
        assert seam_score(outputs["local"], period) <= SEAMLESS
        assert seam_score(outputs["kernel"], period) <= SEAMLESS
        assert seam_score(outputs["exact"], period) <= SEAMLESS


def test_cells_normalised_on_their_own_show_seams(stain, tmp_path, small_cells, monkeypatch):
    """The bounds above catch a kernel mode that forgot to smooth and interpolate (URUST without the kernel)."""
    weights = slide_norm._weights

    def nearest(start, stop, node, vertical):  # each pixel takes its own cell's statistics
        i0, i1, t = weights(start, stop, node, vertical)
        return i0, i1, (t >= 0.5).float()

    monkeypatch.setattr(slide_norm, "_weights", nearest)
    broken = translate(stain, "kernel", tmp_path / "broken.tif", kernel_sigma=1e-6)  # no smoothing
    exact = translate(stain, "exact", tmp_path / "exact.tif")
    assert seam_score(broken, CELL) > 1.15 and seam_score(broken, 128) > 1.15
    d = difference(broken, exact)
    assert d["mean_pct"] > 2 * LOCAL_MEAN and d["p99_pct"] > LOCAL_P99


def test_kernel_equals_exact_on_one_cell(stain, tmp_path):
    """A 512 px slide is one cell of the real size: its statistics are the whole slide's, exactly."""
    kernel = translate(stain, "kernel", tmp_path / "kernel.tif")
    exact = translate(stain, "exact", tmp_path / "exact.tif")
    assert np.abs(read(kernel) - read(exact)).max() <= 1  # uint8: float rounding at most


def test_kernel_equals_exact_with_every_cell_sampled_and_a_kernel_wider_than_the_slide(stain, tmp_path, small_cells,
                                                                                       monkeypatch):
    """On an 8 x 8 grid: reference statistics from every cell are the whole slide's (the calibration keeps
    them uniform), and a kernel wider than the slide gives every cell the whole slide's deviation from
    them, none: each norm gets exactly exact's statistics, with no kernel or with one."""
    monkeypatch.setattr(slide_norm, "SAMPLE", 64)
    exact = translate(stain, "exact", tmp_path / "exact.tif")
    for sigma in (None, 1e9):
        kernel = translate(stain, "kernel", tmp_path / f"kernel{sigma}.tif", kernel_sigma=sigma)
        assert np.abs(read(kernel) - read(exact)).max() <= 1
    monkeypatch.setattr(slide_norm, "SAMPLE", 16)  # the default sample: not exact any more (the test can fail)
    assert np.abs(read(translate(stain, "kernel", tmp_path / "sampled.tif")) - read(exact)).max() > 1


def test_auto_picks_exact_within_the_budget_and_kernel_with_a_note_below(stain, tmp_path, small_cells, monkeypatch,
                                                                         caplog):
    monkeypatch.setattr(slide, "CACHE_LIMIT", 1)  # exact spills every 1/4-resolution cache: it needs disk
    caplog.set_level(logging.INFO, logger="gan_style.inference.slide")
    translate(stain, "auto", tmp_path / "a.tif", max_disk=10**9)
    assert "exact normalisation" in caplog.text and "kernel" not in caplog.text
    caplog.clear()
    translate(stain, "auto", tmp_path / "b.tif", max_disk=10**5)
    notes = [r.getMessage() for r in caplog.records if "kernel normalisation instead" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0] and "--max-disk" in notes[0]
    assert np.array_equal(read(tmp_path / "b.tif"), read(translate(stain, "kernel", tmp_path / "k.tif")))
    with pytest.raises(ScanError, match="raise --max-disk or use --slide-norm kernel"):
        translate(stain, "exact", tmp_path / "c.tif", max_disk=10**5)
    assert not (tmp_path / "c.tif").exists()


def test_disk_needs():
    """Exact needs three 1/4-resolution caches of 4 ngf channels in fp32 (3 ngf bytes per input pixel);
    kernel none without --pyramid; thumbnail those of its thumbnail. Lazy: a 60,000 px slide at ngf 64 in no time."""
    net = ResnetGenerator(3, 3, ngf=64, n_blocks=9)
    side = 60000
    inp = tiling.Input(torch.empty(1, 3, side, side, device="meta"), torch.device("cpu"))
    needs = slide.disk_needs(list(net.model), inp, 0)
    assert needs["exact"] == 3 * 4 * 256 * (side // 4) ** 2 == 3 * 64 * side**2
    assert needs["kernel"] == 0
    h, w = slide_norm.thumbnail_shape(side, side)
    # The thumbnail's 1/4-resolution caches (256 x 500 x 500 fp32: 256 MB) stay under CACHE_LIMIT, in memory.
    assert max(h, w) <= slide_norm.THUMB_SIDE and 4 * 256 * (h // 4) * (w // 4) <= slide.CACHE_LIMIT
    assert needs["thumbnail"] == 0
    scratch = slide.pyramid_scratch((side, side, 3), np.dtype(np.uint8), True, False)
    assert scratch == side * side * 3 * 4 // 3 and slide.pyramid_scratch((side, side, 3), np.uint8, False, False) == 0
    assert slide.disk_needs(list(net.model), inp, scratch)["kernel"] == scratch
    assert slide.choose_mode("auto", needs, 200 * 10**9, Path("s.tif")) == "kernel"
    assert slide.choose_mode("auto", needs, needs["exact"], Path("s.tif")) == "exact"


def test_a_budget_too_small_even_for_kernel_is_one_line_and_writes_nothing(stain, tmp_path, capsys):
    from safetensors.torch import save_file

    save_file(generator().net.state_dict(), str(tmp_path / "g.safetensors"))
    out = tmp_path / "out"
    rc = cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(stain / "slide.tif"), "-o", str(out),
                   "--slide", "--slide-tile", "64", "--precision", "fp32", "--pyramid", "--max-disk", "100K"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err  # a failed file, as for any bad input (argparse's errors are 2)
    lines = [line for line in err.splitlines() if "--max-disk" in line]
    assert len(lines) == 1 and "slide.tif" in lines[0] and "too small even for kernel" in lines[0]
    assert "leave out --pyramid" in lines[0]
    assert not out.exists() or not list(out.iterdir())


def test_kernel_mode_writes_no_whole_slide_activations(stain, tmp_path, small_cells, monkeypatch):
    """With every cache past the spill limit, exact puts its activations on disk and kernel mode none."""
    monkeypatch.setattr(slide, "CACHE_LIMIT", 0)
    spilled, made = [], tiling.DiskTensor.__init__

    def recording(self, shape, chunk, folder):
        spilled.append(shape)
        made(self, shape, chunk, folder)

    monkeypatch.setattr(tiling.DiskTensor, "__init__", recording)
    translate(stain, "exact", tmp_path / "exact.tif", max_disk=10**9)
    assert spilled  # the test can see a spill
    spilled.clear()
    translate(stain, "kernel", tmp_path / "kernel.tif", max_disk=0)  # no pyramid: kernel needs no disk
    assert spilled == []


def test_kernel_progress_counts_every_pass(stain, tmp_path, small_cells, monkeypatch):
    bars = []

    class Recording(slide.tqdm):
        def close(self):
            bars.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(slide, "tqdm", Recording)
    translate(stain, "kernel", tmp_path / "k.tif")
    n, total = bars[0]
    assert n == total > (SIZE // 64) ** 2 + (SIZE // CELL) ** 2  # the references, every cell read, every output tile
    bars.clear()
    translate(stain, "kernel", tmp_path / "local.tif", kernel_sigma=LOCAL)
    n_local, total_local = bars[-1]  # the last closed (tqdm may close the earlier bar again when it is collected)
    assert n_local == total_local == total + (SIZE // CELL) ** 2  # and every cell's statistics


@pytest.mark.parametrize(("text", "value"), [("5G", 5 * 10**9), ("500M", 500 * 10**6), ("1.5GiB", 3 * 2**29),
                                             ("20000000000", 2 * 10**10), ("64kb", 64000), ("2 TB", 2 * 10**12)])
def test_bytes_arg(text, value):
    assert bytes_arg(text) == value


@pytest.mark.parametrize("text", ["", "G", "5X", "-1G", "5 G B x", "1e9", "five"])
def test_bytes_arg_refuses_junk(text):
    with pytest.raises(argparse.ArgumentTypeError, match="5G"):
        bytes_arg(text)


def test_calibration_weights_match_the_whole_grids_means():
    """Weighted to the whole grid's feature means (pixel-weighted), uniform when the sample already matches."""
    g = torch.Generator().manual_seed(0)
    features = torch.rand(100, 3, generator=g, dtype=torch.float64)
    counts = torch.randint(100, 400, (100,), generator=g)
    sampled = torch.arange(0, 100, 6)  # 17 cells
    w = slide_norm.calibration_weights(features, counts, sampled)
    assert w.shape == (17,) and (w >= 0).all() and not torch.allclose(w, torch.ones(17, dtype=torch.float64))
    n = counts.double()
    whole = (n[:, None] * features).sum(0) / n.sum()
    ws = w * n[sampled]
    assert torch.allclose((ws[:, None] * features[sampled]).sum(0) / ws.sum(), whole, atol=1e-9)
    every = slide_norm.calibration_weights(features, counts, torch.arange(100))
    assert torch.allclose(every, torch.ones(100, dtype=torch.float64), atol=1e-9)


def test_calibrated_references_are_closer_to_the_whole_slides_statistics(stain):
    """On the 8 x 8 grid, a sample of 16 cells by chance holds another share of glass than the slide:
    uniform, the references miss exact's statistics (by 0.135 std here); weighted to the slide's
    proportions (``calibrate``), by a third of that (0.047)."""
    gen = generator()
    src = stain / "slide.tif"
    inp = slide.SlideInput(slide.open_slide(src), slide.side_intensity(gen.info, "source"), gen.device)
    layers = slide.streamable_layers(gen, src)
    with torch.inference_mode():
        whole = tiling.Whole(128)
        tiling.build(layers, inp, 128, plan=whole)
        exact = [n.statistics() for n in whole.norms]

        def worst(calibrated: bool) -> float:  # the largest error of a mean, in units of exact's std
            _, grid = slide_norm.kernel_plan(layers, inp, 128, cell=CELL, sample=16)
            if calibrated:
                slide_norm.calibrate(grid)
            return max(((ref.statistics()[0] - e[0]).abs() / e[1].sqrt()).max().item()
                       for ref, e in zip(grid.references, exact))

        uniform, calibrated = worst(False), worst(True)
    assert calibrated < uniform / 2


def test_a_kernel_sigma_that_is_not_a_positive_width_is_one_line(capsys):
    for bad in ("0", "-5", "wide", "nan"):
        with pytest.raises(SystemExit) as stop:
            cli_main(["translate", "-w", "g.safetensors", "-i", "s.tif", "-o", "out", "--kernel-sigma", bad])
        assert stop.value.code == 2
        assert "--kernel-sigma" in capsys.readouterr().err


def test_the_benchs_stopped_runs_keep_the_kernel_sigma(tmp_path, monkeypatch):
    """``--max-tiles`` runs (the bench's ``_limited``) pass ``--kernel-sigma`` on, as the full command does."""
    from gan_style.bench import slides as bench

    seen = {}
    monkeypatch.setattr(slide, "translate_slide", lambda gen, src, dest, **kw: seen.update(kw))
    monkeypatch.setattr(slide, "output_tiles", slide.output_tiles)  # _limited wraps it (for its own process)
    weights = bench.generator(tmp_path / "g.safetensors")
    assert bench._limited(3, str(weights), "in.tif", "out.tif", "kernel", "fp32", "2048") == 1  # no tiles: no rate
    assert seen == {"norm": "kernel", "kernel_sigma": 2048.0}
    bench._limited(3, str(weights), "in.tif", "out.tif", "kernel", "fp32")
    assert seen["kernel_sigma"] is None
