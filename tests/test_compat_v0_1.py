"""Checkpoints describe their generators, and v0.1 files (tests/fixtures/v0_1, written by the v0.1
code before they did) still load, translate to the same pixels and resume."""

import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from gan_style.data.toydata import make_toy_dataset
from gan_style.inference.translate import load_generator, translate_tensor
from gan_style.io.checkpoint import FORMAT_VERSION, load_safe, save_atomic
from gan_style.methods import config_from_dict, load_config
from gan_style.training.loop import train

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1"
EXPECTED = torch.load(FIXTURES / "expected.pt", weights_only=True)
# What v0.1 answered for each file: (method, direction) -> (source, target).
V01 = {("cyclegan", "AtoB"): ("monet", "photo"), ("cyclegan", "BtoA"): ("photo", "monet"),
       ("cut", "BtoA"): ("photo", "monet"), ("fastcut", "BtoA"): ("photo", "monet")}


def translate(weights: Path, direction: str | None) -> tuple[torch.Tensor, object]:
    gen = load_generator(weights, direction, device="cpu", precision="fp32")
    return translate_tensor(gen, EXPECTED["input"], tile=0), gen.info


@pytest.mark.parametrize("method,direction", list(V01))
def test_v01_checkpoints_translate_to_the_same_pixels(method, direction):
    out, info = translate(FIXTURES / f"{method}.pt", direction)
    # fp32 on another CPU may round differently (1e-6); a wrong generator, or raw instead of EMA
    # weights, differs by far more than the tolerance.
    torch.testing.assert_close(out, EXPECTED[f"{method}_{direction}"], atol=1e-5, rtol=0)
    assert (info.direction, info.source, info.target) == (direction, *V01[method, direction])
    assert ("EMA" in info.origin) == (method == "cyclegan")  # only the CycleGAN fixture trained with EMA


@pytest.mark.parametrize("method,direction", list(V01))
def test_v01_exports_translate_to_the_same_pixels(method, direction):
    out, info = translate(FIXTURES / f"{method}_{direction}.safetensors", None)
    torch.testing.assert_close(out, EXPECTED[f"{method}_{direction}"], atol=1e-5, rtol=0)
    assert (info.direction, info.source, info.target) == (direction, *V01[method, direction])


@pytest.mark.parametrize("method", ["cyclegan", "cut", "fastcut"])
def test_v01_checkpoints_resume(method, tmp_path):
    old = load_safe(FIXTURES / f"{method}.pt")
    root = make_toy_dataset(tmp_path / "monet2photo", n_train=4, n_test=2, size=40)
    run_dir = tmp_path / "runs" / method
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{method}.pt", run_dir / "last.pt")
    tree = old["config"] | {"out_dir": str(tmp_path / "runs"), "resume": "auto"}
    tree["data"] = tree["data"] | {"root": str(root)}
    tree["train"] = tree["train"] | {"max_steps": old["step"] + 2}
    new = load_safe(train(config_from_dict(tree)))
    assert new["step"] == old["step"] + 2 and new["format_version"] == FORMAT_VERSION
    assert set(new["generators"]) == ({"AtoB", "BtoA"} if method == "cyclegan" else {"BtoA"})
    assert set(new["models"]) == set(old["models"]) and set(new["optimizers"]) == set(old["optimizers"])
    # The optimizer went on from the saved state: Adam's step counters count the new steps too.
    opt_steps = [int(s["step"]) for s in new["optimizers"]["G"]["state"].values()]
    assert opt_steps and all(s == old["step"] + 2 for s in opt_steps)


def test_checkpoints_describe_their_generators(toy_root, tmp_path):
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__max_steps=2)))
    ckpt = load_safe(last)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}
    # toy_root is a folder named "toy...": no domain names in it, so A and B.
    weights = "train.lambda_A=10.0, train.lambda_B=10.0, train.lambda_identity=0.5"  # what --strength says it can't change
    assert ckpt["generators"] == {
        "AtoB": {"net": "G_A", "source": "A", "target": "B", "kind": "resnet", "arch": arch, "trained_at": weights},
        "BtoA": {"net": "G_B", "source": "B", "target": "A", "kind": "resnet", "arch": arch, "trained_at": weights}}
    assert ckpt["method"] == "cyclegan" and ckpt["format_version"] == FORMAT_VERSION


def test_inference_follows_the_record_not_the_network_names(toy_root, tmp_path):
    """A checkpoint whose record maps AtoB to G_B is translated with G_B: nothing is guessed."""
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__max_steps=2)))
    ckpt = load_safe(last)
    ckpt["generators"]["AtoB"]["net"], ckpt["generators"]["BtoA"]["net"] = "G_B", "G_A"
    ckpt["generators"]["AtoB"]["source"] = "dusk"
    swapped = save_atomic(ckpt, tmp_path / "swapped.pt")
    x = EXPECTED["input"][..., :32, :32]
    gen = load_generator(swapped, "AtoB", device="cpu", precision="fp32")
    g_b = load_generator(last, "BtoA", device="cpu", precision="fp32")
    assert gen.info.source == "dusk" and "(G_B)" in gen.info.origin
    assert torch.equal(translate_tensor(gen, x, tile=0), translate_tensor(g_b, x, tile=0))
