"""Mobile exports (gan_style/inference/mobile.py) without their converters: a converter that is missing
or refuses an op is one line and leaves nothing, the LiteRT rewrites of transposed convolutions are
exact, a Core ML package (a folder) replaces the previous one atomically, and off macOS its export
says it was checked, not run. The parity of the real converters (gan_style[mobile], not installed
by make) is tests/mobile_parity.py: docs/translate.md gives the command."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

from gan_style.cli import main as cli_main
from gan_style.inference import mobile
from gan_style.inference.export import ExportError, export_generator
from gan_style.nets import BlurUpsample, ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FORMATS = ["executorch", "coreml", "tflite"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mobile") / "G.pth"
    torch.save(init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).state_dict(), path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_converter_is_one_line_and_leaves_nothing(weights, tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.setitem(sys.modules, mobile.PACKAGES[fmt], None)
    assert cli_main(["export", "-w", str(weights), "-f", fmt, "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    package = {"executorch": "executorch", "coreml": "coremltools", "tflite": "litert-torch"}[fmt]
    assert err == [f"error: {fmt} export needs {package}: pip install 'gan_style[mobile]' (docs/translate.md, "
                   "mobile exports)"]
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refused_op_is_named_in_one_line_and_nothing_is_left(weights, tmp_path, monkeypatch, fmt):
    def refuse(model, names, example, check, path, half, reference):
        path.write_bytes(b"partial") if fmt != "coreml" else path.mkdir()  # a converter dying half-way
        raise RuntimeError("Operator aten.grid_sampler_2d.default is not supported\n  (a long trace)")

    monkeypatch.setattr(mobile, "_require", lambda fmt: None)
    monkeypatch.setattr(mobile, f"_{fmt}", refuse)
    with pytest.raises(ExportError) as e:
        export_generator(weights, fmt, tmp_path / "out", size=64)
    assert str(e.value) == f"{fmt} export of {weights} failed: the converter refused the op " \
        "aten.grid_sampler_2d.default; nothing written"
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("message, op", [
    ("error: failed to legalize operation 'mhlo.convolution' that was explicitly marked illegal", "mhlo.convolution"),
    ("Unsupported op: grid_sample", "grid_sample"),
    ("PyTorch convert function for op 'upsample_bicubic2d' not implemented.", "upsample_bicubic2d"),
])
def test_refused_ops_are_found_in_the_converters_words(message, op):
    assert mobile.refused_op(RuntimeError(message)) == f"the op {op}"
    assert mobile.refused_op(ValueError("")) == "the network (ValueError: ValueError)"


def test_litert_rewrites_of_transposed_convolutions_are_exact():
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=1, antialias=True, antialias_up=True), gain=0.2).eval()
    plain = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=1), gain=0.2).eval()
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    for model in (net, plain):
        rewritten = mobile.cropped_transposes(copy.deepcopy(model))
        kinds = {type(m) for m in rewritten.modules()}
        assert nn.ConvTranspose2d not in kinds - {type(m.conv) for m in rewritten.modules()
                                                   if isinstance(m, mobile.CroppedTranspose)}
        assert BlurUpsample not in kinds - {type(m.blur) for m in rewritten.modules()
                                            if isinstance(m, mobile.CroppedBlurUpsample)}
        with torch.inference_mode():
            assert (rewritten(x) - model(x)).abs().max() < 1e-5  # float rounding: another summation order


def test_a_coreml_package_replaces_the_previous_one_and_says_it_was_not_run(weights, tmp_path, monkeypatch, capsys):
    def package(model, names, example, check, path, half, reference):
        path.mkdir()
        (path / "Manifest.json").write_text(str(example[0].shape[-1]))
        return None, "coremltools: inputs checked; prediction needs macOS"

    monkeypatch.setattr(mobile, "_require", lambda fmt: None)
    monkeypatch.setattr(mobile, "_coreml", package)
    out = tmp_path / "G.mlpackage"
    for size in ("64", "128"):
        assert cli_main(["export", "-w", str(weights), "-f", "coreml", "-o", str(out), "--size", size]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        f"coreml: {out} (checked with coremltools: inputs checked; prediction needs macOS)"
    assert (out / "Manifest.json").read_text() == "128" and [p.name for p in tmp_path.iterdir()] == ["G.mlpackage"]


@pytest.mark.parametrize("args", [["--size", "66"], ["--half"]])
def test_bad_mobile_options_are_one_line(weights, tmp_path, monkeypatch, capsys, args):
    monkeypatch.setattr(mobile, "_require", lambda fmt: None)
    assert cli_main(["export", "-w", str(weights), "-f", "tflite", "-o", str(tmp_path / "out"), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --{args[0].lstrip('-')}") and \
        list((tmp_path / "out").iterdir()) == []
