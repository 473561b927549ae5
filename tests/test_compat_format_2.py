"""Format-2 files (tests/fixtures/format_2, written before checkpoints recorded generator kinds)
still load, translate to the same pixels and resume."""

import shutil
from pathlib import Path

import pytest
import torch

from gan_style.data.toydata import make_toy_dataset
from gan_style.inference.translate import load_generator, translate_tensor
from gan_style.io.checkpoint import FORMAT_VERSION, load_safe
from gan_style.methods import config_from_dict
from gan_style.training.loop import train

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "format_2"
EXPECTED = torch.load(FIXTURES / "expected.pt", weights_only=True)
FILES = [("cyclegan", "AtoB"), ("cyclegan", "BtoA"), ("cut", "BtoA"), ("science", "AtoB"), ("science", "BtoA")]


def _input(name: str) -> torch.Tensor:
    return EXPECTED["input_1ch" if name == "science" else "input"]


@pytest.mark.parametrize("name,direction", FILES)
@pytest.mark.parametrize("export", [False, True], ids=["checkpoint", "export"])
def test_format2_files_translate_to_the_same_pixels(name, direction, export):
    path = FIXTURES / (f"{name}_{direction}.safetensors" if export else f"{name}.pt")
    gen = load_generator(path, None if export else direction, device="cpu", precision="fp32")
    out = translate_tensor(gen, _input(name), tile=0)
    # fp32 on another CPU may round differently (1e-6); another generator differs by far more.
    torch.testing.assert_close(out, EXPECTED[f"{name}_{direction}"], atol=1e-5, rtol=0)
    assert gen.info.direction == direction
    assert bool(gen.info.source_intensity) == (name == "science")


@pytest.mark.parametrize("name", ["cyclegan", "cut"])
def test_format2_checkpoints_resume(name, tmp_path):
    old = load_safe(FIXTURES / f"{name}.pt")
    root = make_toy_dataset(tmp_path / "monet2photo", n_train=4, n_test=2, size=40)
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{name}.pt", run_dir / "last.pt")
    tree = old["config"] | {"out_dir": str(tmp_path / "runs"), "resume": "auto"}
    tree["data"] = tree["data"] | {"root": str(root)}
    tree["train"] = tree["train"] | {"max_steps": old["step"] + 2}
    new = load_safe(train(config_from_dict(tree)))
    assert new["step"] == old["step"] + 2 and new["format_version"] == FORMAT_VERSION
    assert set(new["models"]) == set(old["models"])
    opt_steps = [int(s["step"]) for s in new["optimizers"]["G"]["state"].values()]
    assert opt_steps and all(s == old["step"] + 2 for s in opt_steps)
