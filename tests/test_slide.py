"""Gigapixel slides: a generated tiled TIFF streams from disk to disk through the exact tiling,
with every whole-slide activation spilled to disk and only tile-sized reads of the input; the
output equals translating the image whole, is a tiled BigTIFF (with a pyramid on request), and
an interruption leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from gan_style.cli import main as cli_main
from gan_style.inference import slide, tiling
from gan_style.inference.scans import translate_planes
from gan_style.inference.translate import Generator
from gan_style.inference.weights import GeneratorInfo
from gan_style.io.intensity import Intensity
from gan_style.nets import ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 298, 418  # not multiples of the tile or of 4: edges and mirroring are exercised
ARCH = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}


def rgb_generator() -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).eval()
    return Generator(net, GeneratorInfo(arch=ARCH, origin="tiny"), torch.device("cpu"), "fp32")


def write_slide(path: Path) -> np.ndarray:
    """A smooth uint8 RGB 'stain' image as a tiled TIFF with a resolution."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (H // 20 + 1, W // 20 + 1, 3)).astype(np.float64)
    image = np.kron(coarse, np.ones((20, 20, 1)))[:H, :W].astype(np.uint8)
    tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb", resolution=(4000.0, 4000.0),
                     resolutionunit="CENTIMETER")
    return image


@pytest.fixture
def bounded(monkeypatch):
    """Spill every cache to disk and record the largest input rectangle read."""
    monkeypatch.setattr(slide, "CACHE_LIMIT", 1)
    monkeypatch.setattr(slide, "COMPUTE_TILE", 128)
    reads, spilled, released = [], [], []
    pull, disk_init, release = slide.SlideInput.pull, tiling.DiskTensor.__init__, tiling.DiskTensor.release

    def recording_pull(self, r):
        reads.append((r[1] - r[0]) * (r[3] - r[2]))
        return pull(self, r)

    def recording_init(self, shape, folder, dtype):
        spilled.append(shape)
        disk_init(self, shape, folder, dtype)

    def recording_release(self):
        # Released caches leave the disk at once: at most the live ones are there.
        if self.fd is None or not Path(self.path).parent.is_dir():
            release(self)  # released before, or collected after the run removed its folder
            return
        release(self)
        live = [p for p in Path(self.path).parent.iterdir() if p.name.startswith("cache-")]
        assert len(live) < len(spilled) and not Path(self.path).exists()
        released.append(self.path)

    monkeypatch.setattr(slide.SlideInput, "pull", recording_pull)
    monkeypatch.setattr(tiling.DiskTensor, "__init__", recording_init)
    monkeypatch.setattr(tiling.DiskTensor, "release", recording_release)
    return reads, spilled, released


def float_generator() -> Generator:
    """1 channel, float data in [-50, 350] both ways (a fluorescence-like slide)."""
    torch.manual_seed(1)
    net = init_weights(ResnetGenerator(1, 1, ngf=8, n_blocks=2), gain=0.2).eval()
    units = Intensity("window", -50.0, 350.0, dtype="float32").to_dict()
    info = GeneratorInfo(arch=ARCH | {"in_channels": 1, "out_channels": 1}, origin="tiny", source_intensity=units,
                         target_intensity=units)
    return Generator(net, info, torch.device("cpu"), "fp32")


def test_slide_streams_exactly_with_bounded_reads_and_disk_caches(tmp_path, bounded):
    reads, spilled, released = bounded
    rng = np.random.default_rng(2)
    image = (rng.random((H, W)) * 300).astype(np.float32)  # noise: every mirrored edge row differs
    tifffile.imwrite(tmp_path / "slide.tif", image, tile=(64, 64), resolution=(4000.0, 4000.0),
                     resolutionunit="CENTIMETER")
    gen = float_generator()
    slide.translate_slide(gen, tmp_path / "slide.tif", tmp_path / "out" / "slide.tif", tile=128)
    with tifffile.TiffFile(tmp_path / "out" / "slide.tif") as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and (page.tilelength, page.tilewidth) == (128, 128)
        assert page.resolution == pytest.approx((4000.0, 4000.0))
        out = page.asarray()
    assert out.shape == (H, W) and out.dtype == np.float32
    whole = translate_planes(gen, image[None, ..., None], tile=0)[0, ..., 0]  # the image translated whole
    assert np.abs(out - whole).max() < 1e-2  # data units: 2.5e-5 of the 400-wide window (float rounding)
    assert max(reads) < (128 + 64) ** 2 < H * W  # never the whole slide, only tiles with their halos
    assert len(spilled) >= 3  # the 1/4-resolution activations lived on disk
    assert released and len(released) < len(spilled)  # each deleted once no later stage read it
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "slide.tif"]  # temporary files removed


def test_pyramid_levels_halve_down_to_one_tile(tmp_path, bounded):
    write_slide(tmp_path / "slide.tif")
    slide.translate_slide(rgb_generator(), tmp_path / "slide.tif", tmp_path / "p.tif", tile=64, pyramid=True)
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        levels = tif.series[0].levels
        shapes = [level.shape[:2] for level in levels]
        base, half = levels[0].asarray().astype(float), levels[1].asarray().astype(float)
    assert shapes[:3] == [(H, W), (H // 2, W // 2), (H // 4, W // 4)] and min(shapes[-1]) <= 64
    expected = base[: H // 2 * 2, : W // 2 * 2].reshape(H // 2, 2, W // 2, 2, 3).mean((1, 3))
    assert np.abs(half - expected).max() <= 0.5 + 1e-9  # 2 x 2 means, rounded


def test_interrupted_slide_leaves_no_output_and_no_temporary_files(tmp_path, bounded, monkeypatch):
    write_slide(tmp_path / "slide.tif")
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = slide.cast_to
    monkeypatch.setattr(slide, "cast_to", interrupt)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        slide.translate_slide(rgb_generator(), tmp_path / "slide.tif", tmp_path / "out" / "slide.tif", tile=64)
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_streams_tiffs_as_slides_with_a_photo_generator(tmp_path, bounded):
    write_slide(tmp_path / "slide.tif")
    from safetensors.torch import save_file

    gen = rgb_generator()
    save_file(gen.net.state_dict(), str(tmp_path / "g.safetensors"))
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "slide.tif"),
                     "-o", str(tmp_path / "out"), "--slide", "--slide-tile", "64", "--precision", "fp32"]) == 0
    with tifffile.TiffFile(tmp_path / "out" / "slide.tif") as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].shape == (H, W, 3)


def test_progress_counts_the_whole_slide_passes_and_the_tiles(tmp_path, bounded, monkeypatch):
    write_slide(tmp_path / "slide.tif")
    bars = []

    class Recording(slide.tqdm):
        def close(self):
            bars.append((self.n, self.total, self.unit))
            super().close()

    monkeypatch.setattr(slide, "tqdm", Recording)
    slide.translate_slide(rgb_generator(), tmp_path / "slide.tif", tmp_path / "o.tif", tile=64)
    n, total, unit = bars[0]  # (tqdm may close a bar twice)
    tiles = -(-H // 64) * -(-W // 64)
    assert unit == "tile" and n == total > tiles  # every pass ticked, then each output tile


class _Rectangles(tiling.Node):
    """A network output that records the rectangles pulled from it: (1, 3, h, w) of its row index / 1000."""

    def __init__(self, height: int, width: int) -> None:
        self.inputs, self.channels, self.height, self.width, self.scale = (), 3, height, width, 1.0
        self.pulled: list[tuple[int, int, int, int]] = []

    def pull(self, r):
        self.pulled.append(r)
        rows = torch.arange(r[0], r[1], dtype=torch.float32)[:, None].expand(-1, r[3] - r[2]) / 1000
        return rows[None, None].expand(1, 3, -1, -1)


@pytest.mark.parametrize(("band_bytes", "rect_bytes"), [(2**30, 2**30), (1, 2**30), (2**30, 4 * 3 * 64 * 128)])
def test_output_rectangles_keep_their_area_and_bands_their_budget(monkeypatch, band_bytes, rect_bytes):
    """Rectangles of about COMPUTE_TILE^2 pixels, or RECT_BYTES of the widest activation; a band too large
    for BAND_BYTES is one tile high and its rectangles wider (a 60,000 px slide's); every tile comes out
    once, in row order, from the right rows."""
    monkeypatch.setattr(slide, "COMPUTE_TILE", 128)
    monkeypatch.setattr(slide, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(slide, "RECT_BYTES", rect_bytes)
    node, target = _Rectangles(300, 700), slide.side_intensity(rgb_generator().info, "target")
    with slide.tqdm(disable=True) as bar:
        tiles = list(slide.output_tiles(node, 300, 700, 64, target, np.dtype(np.uint8), bar))
    assert len(tiles) == 5 * 11 and all(t.shape == (64, 64, 3) for t in tiles)
    heights = {r[1] - r[0] for r in node.pulled if r[1] < 300}
    widths = {r[3] - r[2] for r in node.pulled if r[3] < 700}
    assert (heights, widths) == (({64}, {256}) if band_bytes == 1 else ({64}, {128}) if rect_bytes < 2**20 else
                                 ({128}, {128}))
    expected = target.from_model(np.full((1, 1, 3), 0.0, dtype=np.float32))  # row 0 of the first tile
    assert np.array_equal(tiles[0][0, 0], slide.cast_to(expected, np.uint8)[0][0, 0])
    assert not np.array_equal(tiles[0][0], tiles[11][0])  # the second tile row is rows 64.., not 0..


@pytest.mark.parametrize(("ngf", "pixels"), [(64, 512 * 1024), (16, 1024**2)])
def test_wide_networks_get_smaller_output_rectangles(ngf, pixels):
    """The widest activation of a ResNet generator is its full-resolution ngf channels: at ngf 64 an
    output rectangle is 512 x 1024 px (RECT_BYTES), narrower networks keep COMPUTE_TILE^2."""
    net = ResnetGenerator(3, 3, ngf=ngf, n_blocks=1)
    src = tiling.Input(torch.empty(1, 3, 64, 64, device="meta"), torch.device("cpu"))
    assert slide.rectangle_pixels(tiling.build(list(net.model), src, 64)) == pixels
