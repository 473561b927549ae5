"""Mobile exports with their real converters and runtimes (needs gan_style[mobile], which `make` does
not install: about 1.2 GB, and litert-torch pins typing-extensions below 4.13). Not collected by
`make test` (the name does not start with test_); run it by name:

    pip install 'gan_style[mobile]'
    python -m pytest -q tests/mobile_parity.py

ExecuTorch (XNNPACK) and LiteRT run here and must stay within 2/255 of fp32 PyTorch; Core ML's
converted program is checked (inputs, output, operations), its prediction only on macOS."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from gan_style.cli import main as cli_main
from gan_style.inference.export import export_generator
from gan_style.inference.mobile import MOBILE_TOLERANCE
from gan_style.nets import ResnetGenerator, init_weights

UNSB_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "unsb" / "official.pt"


@pytest.fixture(scope="module", params=["resnet", "unsb"])
def weights(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "unsb":
        state = {k: v.float() for k, v in torch.load(UNSB_FIXTURE, weights_only=True)["G"]["state"].items()}
    else:
        torch.manual_seed(0)
        state = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).state_dict()
    torch.save(state, folder / "latest_net_G.pth")
    return folder / "latest_net_G.pth"


@pytest.mark.parametrize("fmt", ["executorch", "tflite"])
def test_runs_within_2_of_255_of_pytorch(weights, tmp_path, fmt):
    result = export_generator(weights, fmt, tmp_path, size=64)
    assert result.max_diff is not None and result.max_diff < MOBILE_TOLERANCE and result.path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [result.path.name]  # nothing else left


def test_coreml_program_has_the_inputs_output_and_ops(weights, tmp_path, capsys):
    assert cli_main(["export", "-w", str(weights), "-f", "coreml", "-o", str(tmp_path), "--size", "64"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "inputs {'image': (1, 3, 64, 64)" in line and "output 'output'" in line and "conv" in line
    assert (tmp_path / "latest_net_G.mlpackage" / "Manifest.json").is_file()


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts only on macOS")
def test_coreml_predicts_within_2_of_255_on_macos(weights, tmp_path):
    result = export_generator(weights, "coreml", tmp_path, size=64)
    assert result.max_diff is not None and result.max_diff < MOBILE_TOLERANCE
