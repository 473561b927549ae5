"""Export: safetensors / TorchScript / ONNX files match the PyTorch generator and carry their metadata."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from gan_style import load_generator, translate_image
from gan_style.io.checkpoint import CheckpointError, save_atomic
from gan_style.cli import main as cli_main
from gan_style.inference.export import export_generator
from gan_style.nets import PatchDiscriminator, ResnetGenerator, init_weights
from gan_style.inference.weights import WeightsError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: fastest, and immune to competing processes
    yield
    torch.set_num_threads(before)


def tiny_net(seed: int) -> ResnetGenerator:
    torch.manual_seed(seed)
    return init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).eval()


@pytest.fixture
def checkpoint(tmp_path):
    """A training checkpoint in train.py's layout (monet2photo: A = Monet, B = photo)."""
    nets = {"G_A": tiny_net(1), "G_B": tiny_net(2), "D_A": PatchDiscriminator(3, 8), "D_B": PatchDiscriminator(3, 8)}
    ckpt = {
        "format_version": 1,
        "models": {k: v.state_dict() for k, v in nets.items()},
        "config": {"name": "monet", "data": {"root": "datasets/monet2photo", "dataset": "monet2photo"}},
    }
    return save_atomic(ckpt, tmp_path / "runs" / "monet" / "last.pt"), nets


def expected(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return net(x).numpy()


def test_safetensors_export_is_self_describing(checkpoint, tmp_path):
    path, nets = checkpoint
    result = export_generator(path, "safetensors", tmp_path / "out", direction="BtoA")
    assert result.path == tmp_path / "out" / "monet_BtoA.safetensors" and result.max_diff == 0
    gen = load_generator(result.path, device="cpu", precision="fp32")  # no other file needed
    info = gen.info
    assert info.arch == {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False,
                         "antialias_up": False}
    assert (info.direction, info.source, info.target) == ("BtoA", "photo", "monet")
    assert (info.mean, info.std, info.multiple) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 4)
    x = torch.rand(1, 3, 36, 28) * 2 - 1
    assert np.array_equal(gen(x).numpy(), expected(nets["G_B"], x))
    with pytest.raises(WeightsError, match="holds only the BtoA generator"):
        load_generator(result.path, direction="AtoB", device="cpu")
    half = export_generator(path, "safetensors", tmp_path / "out", direction="BtoA", half=True)
    assert (
        half.path.name == "monet_BtoA_fp16.safetensors" and half.path.stat().st_size < result.path.stat().st_size * 0.6
    )
    assert np.abs(load_generator(half.path, device="cpu", precision="fp32")(x).numpy() - expected(nets["G_B"], x)).max() < 3e-2


def test_torchscript_export_matches_and_has_dynamic_shapes(checkpoint, tmp_path):
    path, nets = checkpoint
    result = export_generator(path, "torchscript", tmp_path / "g.torchscript.pt", direction="AtoB")
    assert result.max_diff < 1e-4
    files = {"gan_style.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(result.path), _extra_files=files)
    assert json.loads(files["gan_style.json"])["direction"] == "AtoB"
    x = torch.rand(3, 3, 44, 60) * 2 - 1  # neither the export's nor the check's shape
    with torch.inference_mode():
        assert np.abs(module(x).numpy() - expected(nets["G_A"], x)).max() < 1e-4


def test_onnx_export_matches_with_onnxruntime(checkpoint, tmp_path, opset=17):
    import onnx
    import onnxruntime as ort

    path, nets = checkpoint
    result = export_generator(path, "onnx", tmp_path, direction="BtoA", opset=opset)
    assert result.path == tmp_path / "monet_BtoA.onnx" and result.max_diff < 1e-4
    proto = onnx.load(str(result.path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["gan_style"])
    assert (meta["source"], meta["target"], meta["arch"]["n_blocks"]) == ("photo", "monet", 2)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 44, 60) * 2 - 1
    y = session.run(None, {"image": x.numpy()})[0]
    assert y.shape == (3, 3, 44, 60) and np.abs(y - expected(nets["G_B"], x)).max() < 1e-4


def test_half_onnx_export(checkpoint, tmp_path):
    import onnxruntime as ort

    path, _ = checkpoint
    result = export_generator(path, "onnx", tmp_path, direction="BtoA", half=True)
    assert result.path.name == "monet_BtoA_fp16.onnx" and result.max_diff < 3e-2
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"


def test_export_cli_defaults_and_errors(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["export", "-w", "runs/monet", "-f", "safetensors", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert "exports/monet_BtoA.safetensors" in out and "exports/monet_BtoA.torchscript.pt" in out
    img = translate_image(load_generator("exports/monet_BtoA.safetensors", device="cpu"), tiny_image())
    assert img.size == (30, 22)
    torch.save(PatchDiscriminator(3, 8).state_dict(), tmp_path / "D.pth")
    assert cli_main(["export", "-w", "D.pth"]) == 2
    assert "D.pth: not a generator (its keys match no generator kind" in capsys.readouterr().err
    assert not (tmp_path / "exports" / "D.safetensors").exists()


def test_safetensors_metadata_must_match_the_weights(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    path, _ = checkpoint
    good = export_generator(path, "safetensors", tmp_path, direction="AtoB").path
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        meta = f.metadata()
    meta["arch"] = json.dumps({"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 9})
    save_file(load_file(str(good)), str(tmp_path / "lying.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="metadata says architecture"):
        load_generator(tmp_path / "lying.safetensors", device="cpu")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        load_generator(tmp_path / "cut.safetensors", device="cpu")


def tiny_image():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (22, 30, 3), dtype=np.uint8))
