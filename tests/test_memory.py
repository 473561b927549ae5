"""translate --max-memory (inference/memory.py): the estimate of an image's peak against the
measured one, the budget met by smaller tiles and caches on disk (the same pixels), TIFFs that do
not fit streamed as slides, and an image that cannot fit refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from gan_style.bench.memory import can_measure, measured_peak
from gan_style.cli import main as cli_main
from gan_style.inference import memory
from gan_style.inference.route import SLIDE, pipeline
from gan_style.inference.translate import Generator, translate_tensor
from gan_style.inference.weights import GeneratorInfo
from gan_style.nets import ResnetGenerator, init_weights

ARCH = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}

@pytest.mark.skipif(not can_measure(), reason="needs Linux's /proc peak reset")
@pytest.mark.parametrize("ngf,h,w,tile", [(32, 1024, 768, 0), (8, 3000, 4000, 1024)], ids=["whole", "tiled-12mp"])
def test_the_estimate_is_within_30_percent_of_the_measured_peak(ngf, h, w, tile):
    estimate = memory.peak_bytes(ngf, h, w, 3, 3, tile)
    peak = measured_peak(ngf, h, w, tile)
    assert 0.7 * peak <= estimate <= 1.3 * peak, (estimate, peak)


def tiny_generator(max_memory: int | None = None) -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, 8, 2), gain=0.2).eval().requires_grad_(False)
    return Generator(net, GeneratorInfo(arch=ARCH, origin="tiny"), torch.device("cpu"), "fp32").within(max_memory)


def test_a_budget_is_met_by_smaller_tiles_then_caches_on_disk_with_the_same_pixels(tmp_path, monkeypatch):
    x = torch.rand(1, 3, 600, 520) * 2 - 1
    monkeypatch.setattr(memory, "SPILL_LIMIT", 1024)  # every cache on disk, and the estimate with it
    low = memory.peak_bytes(8, 600, 520, 3, 3, 256, True)
    assert low < memory.peak_bytes(8, 600, 520, 3, 3, 256) < memory.peak_bytes(8, 600, 520, 3, 3, 0)
    spilled = []
    monkeypatch.setattr("gan_style.inference.spill.DiskTensor.release", lambda self: spilled.append(self.path))
    with_disk = translate_tensor(tiny_generator(low), x, tile=0)
    assert spilled, "the caches did not go to disk"
    in_memory = translate_tensor(tiny_generator(), x, tile=256)
    assert torch.equal(with_disk, in_memory)  # the same tiles: bit for bit
    torch.testing.assert_close(in_memory, translate_tensor(tiny_generator(), x, tile=0), atol=2e-5, rtol=0)
    budget = memory.peak_bytes(8, 3000, 4000, 3, 3, 512)
    plan = memory.plan(8, 3000, 4000, 3, 3, 0, budget)
    assert (plan.tile, plan.spill) == (512, False)  # the largest tile that fits, caches in memory


def test_an_image_that_cannot_fit_is_one_line_and_the_others_are_translated(tmp_path, capsys):
    from safetensors.torch import save_file

    save_file(tiny_generator().net.state_dict(), str(tmp_path / "g.safetensors"))
    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 48), "red").save(tmp_path / "in" / "small.png")
    Image.new("RGB", (1600, 1200), "blue").save(tmp_path / "in" / "large.png")
    budget = memory.peak_bytes(8, 48, 64, 3, 3, 0) * 2
    code = cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "in"), "-o",
                     str(tmp_path / "out"), "--max-memory", str(budget), "--precision", "fp32", "--verbose"])
    err = capsys.readouterr().err
    assert code != 0 and (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "large.png").exists()
    line = next(line for line in err.splitlines() if "large.png" in line and "--max-memory" in line)
    assert "1600 x 1200 px) needs about" in line and "raise --max-memory or translate it smaller" in line
    assert "64 x 48 px: about" in err  # --verbose: each image's estimate
    assert "Traceback" not in err


def test_a_tiff_over_the_budget_streams_as_a_slide(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64), photometric="rgb")
    info = GeneratorInfo(arch=ARCH, origin="tiny")
    assert pipeline(tmp_path / "big.tif", info, max_memory=None) != SLIDE
    assert pipeline(tmp_path / "big.tif", info, max_memory=4 * 2**30) != SLIDE
    assert pipeline(tmp_path / "big.tif", info, max_memory=100_000) == SLIDE


def test_the_web_app_translates_within_the_servers_budget():
    from gan_style.app.models import Catalog, ModelChoice

    catalog = Catalog([ModelChoice("a", "a.pt", "AtoB", "run")], loader=lambda *_: tiny_generator(),
                      max_memory=memory.peak_bytes(8, 48, 64, 3, 3, 0) * 2)
    gen = catalog.get("a", "cpu", "fp32", strength=None)
    assert gen.max_memory == catalog.max_memory
    with pytest.raises(memory.MemoryBudgetError, match="raise --max-memory"):  # the page shows it as one line
        translate_tensor(gen, torch.zeros(1, 3, 1200, 1600), tile="auto")


def test_a_changed_plan_is_said_once_per_image_size_not_per_image(caplog):
    gen = tiny_generator(memory.peak_bytes(8, 600, 520, 3, 3, 256))  # fits in 256 px tiles, not whole
    x = torch.rand(1, 3, 600, 520) * 2 - 1
    with caplog.at_level("INFO", logger="gan_style"):
        for _ in range(3):  # e.g. three video frames
            translate_tensor(gen, x, tile=0)
    notes = [r for r in caplog.records if "over --max-memory" in r.getMessage()]
    assert len(notes) == 1 and "in 256 px tiles" in notes[0].getMessage()
