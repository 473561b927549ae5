"""Large planes stream from and into their arrays (inference/plane.py): bit for bit the in-memory
path's values, with no whole-plane float copy, and an estimate that holds for the streamed path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import torch

from gan_style.bench.memory import can_measure
from gan_style.inference import memory, scans
from gan_style.inference.plane import stream_plan
from gan_style.inference.translate import Generator, auto_tile
from gan_style.inference.weights import GeneratorInfo, side_intensity
from gan_style.io.intensity import Intensity, cast_to
from gan_style.nets import ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scan_generator(c_in: int = 1, c_out: int = 1, source: Intensity | None = None, target: Intensity | None = None,
                   max_memory: int | None = None) -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(c_in, c_out, ngf=8, n_blocks=2), gain=0.3).eval().requires_grad_(False)
    arch = {"in_channels": c_in, "out_channels": c_out, "ngf": 8, "n_blocks": 2, "antialias": False,
            "antialias_up": False}
    source = source or Intensity("window", 0.0, 65535.0, dtype="uint16")
    target = target or Intensity("window", -1000.0, 2000.0, dtype="int16")
    info = GeneratorInfo(arch=arch, origin="tiny", source_intensity=source.to_dict(), target_intensity=target.to_dict())
    return Generator(net, info, torch.device("cpu"), "fp32").within(max_memory)


def in_memory(gen: Generator, planes: np.ndarray, tile: int, dtype, limits) -> np.ndarray:
    """The path planes took before streaming: float32 in, float32 out, then cast."""
    target = side_intensity(gen.info, "target")
    return np.stack([cast_to(target.from_model(scans.translated_plane(gen, p, tile, None)), dtype, limits)[0]
                     for p in planes])


def smooth_planes(shape: tuple[int, ...], dtype, high: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    s, h, w, c = shape
    coarse = rng.uniform(0, high, (s, h // 16 + 1, w // 16 + 1, c))
    return np.kron(coarse, np.ones((1, 16, 16, 1)))[:, :h, :w].astype(dtype)


@pytest.mark.parametrize("case", ["uint16-to-int16", "percentile-rgb-to-float", "spilled"])
def test_streamed_planes_equal_the_in_memory_path_bit_for_bit(case, monkeypatch):
    """Edges not on the tile or 4 px grids, two planes, a per-image window, limits, caches on disk."""
    planes, dtype, limits = smooth_planes((2, 298, 418, 1), np.uint16, 65535), np.dtype(np.int16), (-900.0, 1500.0)
    gen = scan_generator()
    if case == "percentile-rgb-to-float":
        source = Intensity("percentile", 0.0, 1.0, percentiles=(1.0, 99.0), per_image=True, dtype="float32", channels=3)
        target = Intensity("window", 0.0, 1.0, dtype="float32", channels=3)
        planes, dtype, limits = smooth_planes((2, 298, 418, 3), np.float32, 5.0), np.dtype(np.float32), None
        gen = scan_generator(3, 3, source, target)
    if case == "spilled":
        monkeypatch.setattr(memory, "SPILL_LIMIT", 1024)  # every cache on disk, and the estimate with it
        gen = gen.within(memory.peak_bytes(8, 300, 420, 1, 1, 64, True, 4, streamed=True))
    fit = stream_plan(gen, planes[0].shape, 64, planes.dtype.itemsize + dtype.itemsize)
    assert fit is not None and fit.tile == 64 and fit.spill == (case == "spilled")
    streamed, clipped = scans.translate_cast(gen, planes, 64, None, dtype, limits)
    assert streamed.dtype == dtype and streamed.shape == planes.shape[:3] + (gen.info.arch["out_channels"],)
    assert np.array_equal(streamed, in_memory(gen.within(None), planes, 64, dtype, limits))
    assert (clipped > 0) == (limits is not None)  # the limits clip this random generator's outputs


def test_untiled_resized_and_multi_step_planes_stay_in_memory():
    gen = scan_generator()
    assert stream_plan(gen, (298, 418, 1), 0, 4) is None  # untiled: one pass over the float plane
    assert stream_plan(gen, (298, 418, 1), "auto", 4) is None  # under 4 MP: untiled
    assert stream_plan(gen, (6, 418, 1), 64, 4) is None  # too short to mirror as the padding reflects
    assert stream_plan(gen, (2048, 2500, 1), "auto", 4).tile == auto_tile(gen) == 512  # ngf 8 on the CPU


def test_streaming_holds_no_whole_plane_float_array():
    """numpy's allocations (tracemalloc sees them): the in-memory path's float32 plane, not the streamed one's."""
    side = 1024
    planes = smooth_planes((1, side, side, 1), np.uint16, 65535)
    gen, float_plane, out_bytes = scan_generator(), side * side * 4, side * side * 2

    def numpy_peak(run) -> int:
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    streamed = numpy_peak(lambda: scans.translate_cast(gen, planes, 128, None, np.dtype(np.int16), None))
    whole = numpy_peak(lambda: in_memory(gen, planes, 128, np.int16, None))
    assert streamed < out_bytes + float_plane / 2 < whole, (streamed, whole)


MEASURE = textwrap.dedent("""
    import sys, numpy as np, torch
    from gan_style.inference import scans
    from gan_style.inference.translate import Generator
    from gan_style.inference.weights import GeneratorInfo
    from gan_style.io.intensity import Intensity
    from gan_style.nets import ResnetGenerator, init_weights
    side, tile = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = {"in_channels": 1, "out_channels": 1, "ngf": 8, "n_blocks": 9, "antialias": False, "antialias_up": False}
    units = Intensity("window", 0.0, 65535.0, dtype="uint16").to_dict()
    info = GeneratorInfo(arch=arch, origin="m", source_intensity=units, target_intensity=units)
    gen = Generator(init_weights(ResnetGenerator(1, 1, 8, 9)).eval(), info, torch.device("cpu"), "fp32")
    scans.translate_cast(gen, np.zeros((1, 64, 64, 1), np.uint16), 0, None, np.dtype(np.uint16), None)  # warm-up
    status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current size
    planes = np.random.default_rng(0).integers(0, 65535, (1, side, side, 1), dtype=np.uint16)  # as a file is read
    scans.translate_cast(gen, planes, tile, None, np.dtype(np.uint16), None)
    print(status("VmHWM") - before)
""")


@pytest.mark.skipif(not can_measure(), reason="needs Linux's /proc peak reset")
def test_the_streamed_estimate_is_within_30_percent_of_the_measured_peak():
    side, tile = 2048, 512
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(side), str(tile)], capture_output=True, text=True,
                          timeout=600, check=True)
    peak = int(proc.stdout.split()[-1])
    estimate = memory.peak_bytes(8, side, side, 1, 1, tile, io_bytes=4, streamed=True)
    assert 0.7 * peak <= estimate <= 1.3 * peak, (estimate, peak)


def photo_generator() -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.3).eval().requires_grad_(False)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}
    return Generator(net, GeneratorInfo(arch=arch, origin="tiny"), torch.device("cpu"), "fp32")


def test_a_photo_over_the_budget_streams_from_its_pixels_with_the_same_pixels(tmp_path, monkeypatch, caplog):
    """Refused before: over --max-memory even with caches on disk. Through the CLI, bit for bit the
    in-memory translation."""
    from safetensors.torch import save_file
    from PIL import Image

    from gan_style.cli import main as cli_main
    from gan_style.inference.plane import translate_photo

    monkeypatch.setattr(memory, "SPILL_LIMIT", 1024)  # every cache on disk, and the estimate with it
    pixels = smooth_planes((1, 298, 418, 3), np.uint8, 255)[0]
    budget = memory.peak_bytes(8, 300, 420, 3, 3, 64, True, 2, streamed=True)
    assert memory.peak_bytes(8, 300, 420, 3, 3, 64, True, 2) > budget  # in memory it cannot fit
    gen = photo_generator()
    whole = translate_photo(gen, pixels, 64)  # no budget: in memory
    with caplog.at_level("INFO"):
        assert np.array_equal(translate_photo(gen.within(budget), pixels, 64), whole)
    assert "streamed from its pixels" in caplog.text
    save_file(gen.net.state_dict(), str(tmp_path / "g.safetensors"))
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "big.png")
    code = cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "in"), "-o",
                     str(tmp_path / "out"), "--max-memory", str(budget), "--tile", "64", "--precision", "fp32"])
    assert code == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "out" / "big.png")), whole)


def test_a_scan_tiff_that_fits_streamed_is_not_sent_to_the_slide_path(tmp_path):
    """The routing's estimate is the streamed one for scientific generators (a photo's holds float copies)."""
    import tifffile

    from gan_style.inference.route import SCAN, SLIDE, pipeline

    tifffile.imwrite(tmp_path / "big.tif", smooth_planes((1, 2400, 2000, 1), np.uint16, 65535)[0, ..., 0],
                     tile=(256, 256))
    streamed = memory.peak_bytes(8, 2400, 2000, 1, 1, 256, False, 4, streamed=True)  # the least it can take
    budget = int(streamed * 1.05)
    assert memory.peak_bytes(8, 2400, 2000, 1, 1, 256, False, 4) > budget  # with float copies: the least over it
    assert pipeline(tmp_path / "big.tif", scan_generator().info, max_memory=budget) == SCAN
    assert pipeline(tmp_path / "big.tif", scan_generator().info, max_memory=streamed // 2) == SLIDE
