"""The anchored generator kind (nets/anchored.py): histogram matching plus a learned residual. Why it
exists (a ResNet generator is blind to its input's brightness and contrast), that it starts at the
matching, tiles exactly, is recognised from its tensors, exports, and trains in CycleGAN
(train.histogram_prior) with its map learned from the data and kept across resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_overrides
from gan_style.cli import main as cli_main
from gan_style.config import ConfigError
from gan_style.inference.export import export_generator
from gan_style.inference.tiling import translate_tiled
from gan_style.io.scans import read_scan
from gan_style.methods import load_config
from gan_style.methods.anchor import matching_tables
from gan_style.nets import AnchoredGenerator, ResnetGenerator, init_weights, kind_named, matched, recognise
from gan_style.training.loop import train
from test_histogram_anchor import darken_domain_b, windowed_16bit_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_anchored(seed: int = 0) -> AnchoredGenerator:
    torch.manual_seed(seed)
    g = init_weights(AnchoredGenerator(1, 1, ngf=8, n_blocks=2), gain=0.2).eval()
    g.prior.table.copy_(torch.linspace(-1, 1, g.prior.table.shape[1]).pow(3)[None])  # a monotone, nonlinear map
    return g


def test_a_resnet_generator_cannot_see_its_inputs_brightness_or_contrast():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(1, 1, ngf=8, n_blocks=2), gain=1.0).eval()
    x = torch.rand(2, 1, 32, 32) * 0.5 - 0.5
    with torch.no_grad():
        torch.testing.assert_close(g(0.5 * x + 0.7), g(x), atol=2e-3, rtol=0)  # brighter, less contrast: same output
        assert (g(-x) - g(x)).abs().max() > 0.1  # (an inversion is seen)


def test_an_untrained_anchored_generator_is_its_histogram_map():
    g = random_anchored()
    g.start_at_prior()
    x = torch.rand(2, 1, 32, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), matched(x, g.prior.table), atol=1e-6, rtol=0)
        torch.testing.assert_close(g(0.5 * x), matched(0.5 * x, g.prior.table), atol=1e-6, rtol=0)  # absolute levels


def test_exact_tiling_of_an_anchored_generator():
    g = random_anchored()
    x = torch.rand(1, 1, 96, 128) * 2 - 1
    kind = kind_named("anchored")
    with torch.inference_mode():
        whole = g(x)
        tiled = translate_tiled(torch.nn.Sequential(*kind.layers(g, {})), x, 32, torch.device("cpu"))
    assert (whole - matched(x, g.prior.table)).abs().max() > 0.05  # the residual is not zero
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_the_kind_is_recognised_from_its_tensors():
    g = random_anchored()
    state = g.state_dict()
    kind = recognise(state)
    assert kind.name == "anchored" and kind.arch(state) == {
        "in_channels": 1, "out_channels": 1, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False,
        "grid": 1024}
    rebuilt = kind.build(kind.arch(state))
    rebuilt.load_state_dict(state)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), g(x))


def test_channels_must_match():
    with pytest.raises(ValueError, match="in_channels=1 and out_channels=3 differ"):
        AnchoredGenerator(1, 3, ngf=8, n_blocks=1)


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    return root, *windowed_16bit_run(root, histogram_prior=True)


def test_training_sets_each_prior_to_the_datas_histogram_matching(prior_run):
    root, overrides, last = prior_run
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["generators"]["AtoB"]["kind"] == "anchored"
    from gan_style.methods.base import scan_data
    tables = matching_tables(scan_data(load_config(None, overrides), 0, 1).dataset)
    torch.testing.assert_close(ckpt["models"]["G_A"]["prior.table"], tables["A"])
    torch.testing.assert_close(ckpt["models"]["G_B"]["prior.table"], tables["B"])


def test_translate_and_export_an_anchored_checkpoint(prior_run, tmp_path):
    import onnxruntime as ort

    root, _, last = prior_run
    assert cli_main(["translate", "-w", str(last), "-d", "AtoB", "-i", str(root / "data" / "trainA"),
                     "-o", str(tmp_path / "out"), "--tile", "32"]) == 0
    out = read_scan(tmp_path / "out" / "0.png").planes
    assert out.shape == (1, 40, 40, 1) and out.dtype == np.uint16 and out.max() > 0
    result = export_generator(last, "onnx", tmp_path, direction="AtoB")
    assert result.max_diff < 1e-4
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 1, 24, 32) * 2 - 1
    g = AnchoredGenerator(1, 1, ngf=8, n_blocks=2)
    g.load_state_dict(torch.load(last, weights_only=True)["models"]["G_A"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], g.eval()(x).numpy(), atol=1e-4)


def test_a_resumed_run_keeps_its_priors(prior_run):
    root, overrides, last = prior_run
    before = torch.load(last, weights_only=True)["models"]
    darken_domain_b(root)
    after = torch.load(train(load_config(None, overrides + ["train.max_steps=6", "resume=auto"])),
                       weights_only=True)["models"]
    for name in ("G_A", "G_B"):
        torch.testing.assert_close(after[name]["prior.table"], before[name]["prior.table"])


@pytest.mark.parametrize("extra, message", [
    (["model.output_nc=3"], r"train\.histogram_prior=True .*model.input_nc == output_nc"),
    (["train.strength_range=[0,1]"], r"train\.histogram_prior=true does not combine with train\.strength_range"),
])
def test_config_errors_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, tiny_overrides(tmp_path, tmp_path, train__histogram_prior=True, train__lambda_identity=0)
                    + ["model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range",
                       "data.intensity.B.mode=range", *extra])


@pytest.mark.parametrize("mode", ["exact", "kernel"])
def test_a_slide_streams_through_an_anchored_generator(tmp_path, monkeypatch, mode):
    import tifffile

    from gan_style.inference import slide
    from gan_style.inference.scans import translate_planes
    from gan_style.inference.translate import Generator
    from gan_style.inference.weights import GeneratorInfo
    from gan_style.io.intensity import Intensity

    monkeypatch.setattr(slide, "COMPUTE_TILE", 128)
    image = (np.random.default_rng(2).random((200, 260)) * 300).astype(np.float32)
    tifffile.imwrite(tmp_path / "slide.tif", image, tile=(64, 64))
    units = Intensity("window", -50.0, 350.0, dtype="float32").to_dict()
    info = GeneratorInfo(arch=kind_named("anchored").arch(random_anchored().state_dict()), origin="tiny",
                         kind="anchored", source_intensity=units, target_intensity=units)
    gen = Generator(random_anchored(), info, torch.device("cpu"), "fp32")
    slide.translate_slide(gen, tmp_path / "slide.tif", tmp_path / "out.tif", tile=64, norm=mode)
    out = tifffile.imread(tmp_path / "out.tif")
    whole = translate_planes(gen, image[None, ..., None], tile=0)[0, ..., 0]
    # Exact: float rounding; kernel: statistics from sampled cells (the prior's part is exact in both).
    # Kernel mode samples every cell of a slide this small, so both are exact up to float rounding
    # (data units: 1e-2 is 2.5e-5 of the 400-wide window).
    assert np.abs(out - whole).max() < 1e-2
