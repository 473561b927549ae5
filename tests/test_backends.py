"""The CPU backends (gan_style/inference/backends.py): ONNX Runtime and OpenVINO against fp32
PyTorch, auto's rule (the fastest within its tolerance, named), exact tiling staying on PyTorch,
multi-step generators calling the backend at each step, and a backend that is not installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gan_style.cli import main as cli_main
from gan_style.inference import backend_auto, backends
from gan_style.inference.backend_auto import Trial
from gan_style.inference.backends import BackendError, Engine, with_backend
from gan_style.inference.translate import load_generator, translate_tensor
from gan_style.nets import ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread", "choices_in_tmp")
UNSB_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "unsb" / "official.pt"
STEP = 1 / 127.5  # one 8-bit step in the [-1, 1] output range


@pytest.fixture
def choices_in_tmp(tmp_path, monkeypatch):
    """auto remembers its choices under $GAN_STYLE_CACHE: a fresh one per test."""
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).eval()
    path = tmp_path_factory.mktemp("backends") / "g.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def fp32(weights: Path):
    return load_generator(weights, device="cpu", precision="fp32")


def image(n: int = 2, h: int = 40, w: int = 52) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_cpu_backend_matches_fp32_pytorch(weights, backend):
    gen = with_backend(fp32(weights), backend)
    assert gen.engine is not None and gen.choice.startswith(backend)
    x = image()  # 40 x 52: padded to 40 x 52 (multiples of 4), a batch of 2
    y, ref = translate_tensor(gen, x, tile=0), translate_tensor(fp32(weights), x, tile=0)
    assert y.shape == ref.shape == (2, 3, 40, 52)
    assert (y - ref).abs().max().item() < 0.05 * STEP  # fp32 graphs: rounding only
    assert not torch.equal(y, translate_tensor(fp32(weights), image(2, 40, 52) * 0.5, tile=0))


def fake(name: str, precision: str, seconds: float, error_255: float) -> Trial:
    return Trial(name, seconds, error_255, backend_auto.TOLERANCE_255[precision],
                 Engine(name, precision, lambda x, cond: torch.zeros_like(x)))


def test_auto_picks_the_fastest_within_its_tolerance_and_says_so(weights, monkeypatch):
    trials = {
        "torch fp32": fake("torch fp32", "fp32", 1.0, 0.0),
        "openvino bf16": fake("openvino bf16", "bf16", 0.2, 3.5),  # fastest, but over 3/255
        "onnxruntime fp32": fake("onnxruntime fp32", "fp32", 0.5, 1.9),  # within 2/255: chosen
        "openvino fp32": fake("openvino fp32", "fp32", 0.4, 2.1),  # faster, but over 2/255
    }
    monkeypatch.setattr(backend_auto, "candidates", lambda gen, onnx: [(n, lambda n=n: trials[n].engine) for n in trials])
    monkeypatch.setattr(backend_auto, "measure", lambda engine, x, cond, ref: (trials[engine.name], torch.zeros(1)))
    gen = with_backend(fp32(weights), "auto")
    assert gen.engine is trials["onnxruntime fp32"].engine
    assert gen.choice.startswith("onnxruntime fp32 (auto, at 256 px: ")
    assert "openvino bf16 0.2 s 3.50/255 (over)" in gen.choice
    assert translate_tensor(gen, image(1), tile=0).abs().max() == 0  # the chosen engine runs the network


def test_auto_remembers_its_choice_for_the_same_weights_and_machine(weights, tmp_path, monkeypatch):
    first = with_backend(fp32(weights), "auto")
    measured = []
    monkeypatch.setattr(backend_auto, "measure", lambda *a: measured.append(a) or pytest.fail("measured again"))
    again = with_backend(fp32(weights), "auto")
    assert again.choice == f"{first.choice} [remembered]" and measured == []
    assert (again.engine and again.engine.name) == (first.engine and first.engine.name)  # the same runtime, rebuilt
    assert list(json.loads((tmp_path / "cache" / "backends.json").read_text()).values())[0]["choice"] == first.choice
    other = load_generator(weights, device="cpu", precision="fp32")
    with torch.no_grad():
        next(other.net.parameters()).add_(0.01)  # other weights: measured anew
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        with_backend(other, "auto")


def test_auto_on_a_real_generator_stays_within_its_tolerance(weights, capsys):
    gen = with_backend(load_generator(weights, device="cpu"), "auto")
    name = gen.choice.split(" (auto")[0]
    assert name in gen.choice and "torch fp32" in gen.choice  # every candidate is listed, the reference too
    bound = 3 if "bf16" in name else 2
    x = image(1, 64, 64)
    assert (translate_tensor(gen, x, tile=0) - translate_tensor(fp32(weights), x, tile=0)).abs().max() <= bound * STEP


def test_tiled_images_stay_on_pytorchs_exact_tiling(weights):
    calls = []

    def run(x, cond):
        calls.append(tuple(x.shape))
        raise AssertionError("a tiled image reached the backend")

    gen = backends.wrap(fp32(weights), Engine("spy fp32", "fp32", run), "spy")
    x = image(1, 64, 64)
    tiled = translate_tensor(gen, x, tile=32)
    assert calls == [] and torch.equal(tiled, translate_tensor(fp32(weights), x, tile=32))
    with pytest.raises(AssertionError, match="reached the backend"):
        translate_tensor(gen, x, tile=0)
    assert calls == [(1, 3, 64, 64)]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_multi_step_generator_calls_the_backend_at_each_step(tmp_path, backend):
    state = {k: v.float() for k, v in torch.load(UNSB_FIXTURE, weights_only=True)["G"]["state"].items()}
    torch.save(state, tmp_path / "latest_net_G.pth")
    ref = load_generator(tmp_path / "latest_net_G.pth", device="cpu", precision="fp32", steps=3, seed=5)
    gen = with_backend(ref, backend)
    calls = []
    engine_run = gen.engine.run
    gen.engine.run = lambda x, cond: calls.append(sorted(cond)) or engine_run(x, cond)
    x = image(1, 32, 32)
    y = translate_tensor(gen, x, tile=0)
    assert calls == [["time_cond", "z"]] * 3  # the steps stay in Python; each is one backend evaluation
    assert (y - translate_tensor(ref, x, tile=0)).abs().max().item() < 0.05 * STEP


def test_a_backend_not_installed_is_one_line(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(BackendError, match=r"^--backend openvino: openvino is not installed: pip install "
                       r"'gan_style\[cpu\]'$"):
        with_backend(fp32(weights), "openvino")
    (tmp_path / "in").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 32), (90, 140, 200)).save(tmp_path / "in" / "a.png")
    code = cli_main(["translate", "-w", str(weights), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                     "--backend", "openvino"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --backend openvino: openvino is not installed: pip install 'gan_style[cpu]'"]
    assert not (tmp_path / "out").exists()


def test_translate_cli_names_the_backend_and_writes_close_outputs(weights, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.effect_mandelbrot((48, 40), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(tmp_path / "in" / "a.png")
    outs = {}
    for backend in ("torch", "onnxruntime"):
        code = cli_main(["translate", "-w", str(weights), "-i", str(tmp_path / "in"), "-o", str(tmp_path / backend),
                         "--backend", backend, "--precision", "fp32", "--workers", "0"])
        assert code == 0 and f"backend: {backend}" in capsys.readouterr().err
        outs[backend] = torch.from_numpy(np.array(Image.open(tmp_path / backend / "a.png"))).float()
    assert (outs["torch"] - outs["onnxruntime"]).abs().max() <= 1


def test_serve_loads_each_model_on_the_backend(weights, monkeypatch, capsys):
    import argparse

    from gan_style.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["-w", str(weights), "--only-weights", "--backend", "onnxruntime"])
    catalog = serve.build_catalog(args)
    gen = catalog.get(catalog.labels[0], device="cpu", precision="fp32")
    assert gen.choice == "onnxruntime fp32" and gen.engine is not None
    assert capsys.readouterr().err.strip().endswith("g.safetensors: backend onnxruntime fp32")  # the app's log
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert serve.run(parser.parse_args(["-w", str(weights), "--only-weights", "--backend", "openvino"])) == 2
    assert capsys.readouterr().err.strip() == "serve: --backend openvino: openvino is not installed: " \
        "pip install 'gan_style[cpu]'"


def test_videos_run_on_the_backend(weights, tmp_path, capsys):
    import av

    from gan_style.bench.clips import write_clip

    clip = write_clip(tmp_path / "clip.mp4", 48, 32, seconds=0.5, fps=6)
    frames = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / f"{backend}.mkv"
        code = cli_main(["translate", "-w", str(weights), "-i", str(clip), "-o", str(out), "--backend", backend,
                         "--precision", "fp32", "--codec", "ffv1"])
        assert code == 0 and f"backend: {backend}" in capsys.readouterr().err
        with av.open(str(out)) as c:
            frames[backend] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
    assert frames["torch"].shape == frames["openvino"].shape and len(frames["torch"]) == 3
    assert np.abs(frames["torch"] - frames["openvino"]).max() <= 1  # lossless codec: the translations' rounding


def test_a_network_the_backend_cannot_take_is_one_line(weights, monkeypatch):
    def refuse(net, info, path, opset=17):
        raise RuntimeError("Exporting the operator 'aten::grid_sampler' to ONNX opset version 17 is not supported.\n"
                           "  (a long trace)")

    monkeypatch.setattr(backends, "write_onnx", refuse)
    with pytest.raises(BackendError) as e:
        with_backend(fp32(weights), "onnxruntime")
    assert str(e.value) == f"--backend onnxruntime: cannot run {weights} (RuntimeError: Exporting the operator " \
        "'aten::grid_sampler' to ONNX opset version 17 is not supported.); use --backend torch"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_leaves_the_threads_signal_stack_as_it_was(weights, precision):
    """OpenVINO's CPU plugin installs its own alternate signal stack and frees it later; a Python
    signal handler then runs on freed memory (the suite crashed with SIGSEGV at a DataLoader
    child's exit). The engine puts the previous stack back after each call."""
    from gan_style.inference.signal_stack import current

    backends.require("openvino")
    engine = backends.make_engine(fp32(weights), "openvino", precision)
    before = current()
    for size in ((1, 3, 32, 32), (1, 3, 48, 40)):  # compiled for each new shape
        engine.run(torch.rand(size) * 2 - 1, {})
        after = current()
        assert (after.ss_sp, after.ss_size, after.ss_flags) == (before.ss_sp, before.ss_size, before.ss_flags)
