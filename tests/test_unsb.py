"""UNSB as a method (gan_style/methods/unsb.py) and its generators everywhere a generator runs:
training, exact resume, translate with --steps and --seed, tiling, exports, fine-tuning from the
official weights, and the one-line errors. The networks against the official code: test_unsb_nets.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from gan_style.cli import main as cli_main
from gan_style.inference.export import export_generator
from gan_style.inference.translate import load_generator, translate_tensor
from gan_style.inference.weights import WeightsError
from gan_style.io.checkpoint import CheckpointError, load_safe
from gan_style.methods import UNSB, load_config
from gan_style.methods.unsb import energy_loss, per_image_logsumexp
from gan_style.nets import UNSBGenerator
from gan_style.training.loop import train

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "unsb" / "official.pt"
TINY = dict(method="unsb", unsb__num_patches=16, unsb__netF_nc=16, data__max_dataset_size=4)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net, sd in load_safe(path)["models"].items() for k, v in sd.items()}


@pytest.fixture(scope="module")
def unsb_run(toy_root, tmp_path_factory) -> Path:
    """A tiny UNSB run of 2 epochs (ngf 8, 2 blocks, 32 px), photo -> ... on the toy data."""
    out = tmp_path_factory.mktemp("unsb")
    return train(load_config(None, tiny_overrides(toy_root, out, train__max_steps=8, **TINY)))


def official_state(tmp_path: Path) -> Path:
    """The official generator's state_dict (tests/fixtures/unsb: ngf 8, 2 blocks) as its code saves it."""
    state = {k: v.float() for k, v in torch.load(FIXTURE, weights_only=True)["G"]["state"].items()}
    torch.save(state, tmp_path / "latest_net_G.pth")
    return tmp_path / "latest_net_G.pth"


def test_a_run_records_a_unsb_generator_and_every_network(unsb_run):
    ckpt = load_safe(unsb_run)
    (record,) = ckpt["generators"].values()
    assert record["kind"] == "unsb" and record["net"] == "G"
    assert record["arch"]["num_timesteps"] == 5 and record["arch"]["tau"] == 0.01
    assert set(ckpt["models"]) == {"G", "D", "E", "F"} and set(ckpt["optimizers"]) == {"G", "D", "E"}
    assert set(ckpt["method_rng"]) == {"patches", "time"}
    rows = (unsb_run.parent / "metrics.jsonl").read_text()
    for key in ("loss/G_GAN", "loss/NCE", "loss/NCE_Y", "loss/SB", "loss/E", "loss/D_real", "grad_norm/E"):
        assert key in rows, key
    # Frozen parameters (the official blocks' unused conv and time projection) never change.
    fresh = UNSBGenerator(3, 3, 8, 2)
    frozen = {k for k, p in fresh.named_parameters() if not p.requires_grad}
    assert frozen and all(k.split(".")[2] in ("conv_block", "Dense_time", "style") or k.startswith("time_embed")
                          for k in frozen)


def test_resume_equals_straight_bitwise(toy_root, tmp_path):
    common = dict(train__n_epochs=2, train__n_epochs_decay=2, **TINY)
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "straight", **common)))
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", train__max_steps=6, **common)))  # mid-epoch 2
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", resume="auto", **common)))
    straight, split = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert straight.keys() == split.keys() and {k.split(".")[0] for k in straight} == {"G", "D", "E", "F"}
    assert all(torch.equal(straight[k], split[k]) for k in straight), "resumed run diverged"


def test_bf16_training_on_the_cpu_runs_and_keeps_fp32_weights(toy_root, tmp_path):
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__precision="bf16", train__max_steps=3,
                                                  **TINY)))
    for sd in load_safe(last)["models"].values():
        assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_translate_steps_and_seed(unsb_run, toy_root, tmp_path):
    x = torch.rand(2, 3, 36, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    five = load_generator(unsb_run, device="cpu", precision="fp32")
    assert five.steps == 5 and five.info.kind == "unsb"
    out = translate_tensor(five, x, tile=0)
    assert torch.equal(out, translate_tensor(five, x, tile=0))  # seeded: the same output again
    # An image's noise ignores its batch (the batch changes only the convolutions' float rounding).
    torch.testing.assert_close(out[1:], translate_tensor(five, x[1:], tile=0), atol=1e-5, rtol=0)
    other = load_generator(unsb_run, device="cpu", precision="fp32", seed=1)
    assert (translate_tensor(other, x, tile=0) - out).abs().max() > 1e-4  # another seed, other noise
    one = load_generator(unsb_run, device="cpu", precision="fp32", steps=1)
    assert (translate_tensor(one, x, tile=0) - out).abs().max() > 1e-4
    # Exact tiling at every step: the network is bound to each step's time and noise as plain layers.
    torch.testing.assert_close(translate_tensor(five, x, tile=32), out, atol=2e-5, rtol=0)
    code = cli_main(["translate", "-w", str(unsb_run), "-i", str(toy_root / "testA"), "-o", str(tmp_path / "o"),
                     "--steps", "2", "--seed", "3"])
    assert code == 0 and len(list((tmp_path / "o").iterdir())) == 2


@pytest.mark.parametrize("steps", ["0", "-1", "6"])
def test_bad_steps_are_one_line(unsb_run, toy_root, tmp_path, capsys, steps):
    code = cli_main(["translate", "-w", str(unsb_run), "-i", str(toy_root / "testA"), "-o", str(tmp_path), "--steps",
                     steps])
    err = capsys.readouterr().err
    assert code == 2 and f"--steps {steps}: use 1 to 5" in err and "Traceback" not in err


def test_steps_for_a_one_pass_generator_is_one_line(toy_root, tmp_path, capsys):
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__max_steps=1)))
    code = cli_main(["translate", "-w", str(last), "-i", str(toy_root / "testA"), "-o", str(tmp_path / "o"),
                     "--steps", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "is a one-pass resnet generator; steps apply to multi-step generators" in err


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_exports_are_the_one_step_network_with_its_schedule(unsb_run, tmp_path):
    gen = load_generator(unsb_run, device="cpu", precision="fp32")
    for fmt in ("safetensors", "onnx", "torchscript"):
        result = export_generator(unsb_run, fmt, tmp_path / f"g.{fmt}")
        assert result.max_diff < 1e-4, fmt
    again = load_generator(tmp_path / "g.safetensors", device="cpu", precision="fp32")
    assert again.info.kind == "unsb" and again.info.arch == gen.info.arch and again.steps == 5
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(translate_tensor(again, x, tile=0), translate_tensor(gen, x, tile=0))
    # The ONNX graph run step by step with the documented loop gives gan_style's translation.
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(xi: torch.Tensor, cond: dict) -> torch.Tensor:
        feed = {"image": xi.numpy()} | {k: v.numpy() for k, v in cond.items() if k in names}
        return torch.from_numpy(session.run(None, feed)[0])

    onnx_out = gen.kind.translate(run, x, gen.info.arch, 5, 0)
    torch.testing.assert_close(onnx_out, translate_tensor(gen, x, tile=0), atol=1e-4, rtol=0)


def test_official_weights_load_strictly_and_finetune(toy_root, tmp_path):
    official = official_state(tmp_path)
    gen = load_generator(official, device="cpu", precision="fp32")
    assert gen.info.kind == "unsb" and gen.info.arch["n_blocks"] == 2 and gen.info.arch["ngf"] == 8
    fixture = torch.load(FIXTURE, weights_only=True)["G"]
    net = UNSBGenerator(**fixture["config"])
    net.load_state_dict({k: v.float() for k, v in fixture["state"].items()}, strict=True)
    with torch.no_grad():
        expected = net(fixture["x"].float(), fixture["t"], fixture["z"].float())
    torch.testing.assert_close(gen.net(fixture["x"].float(), fixture["t"], fixture["z"].float()), expected)
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path / "ft", train__max_steps=1,
                                                  finetune__G=str(official), **TINY)))
    assert "latest_net_G.pth" in load_safe(last)["finetune"]["G"]


def test_an_official_checkpoint_with_a_missing_key_is_one_line(tmp_path, capsys):
    state = torch.load(official_state(tmp_path), weights_only=True)
    del state["model_res.1.adaptive.style_net.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=r"missing model_res\.1\.adaptive\.style_net\.bias"):
        load_generator(tmp_path / "broken.pth", device="cpu")
    assert cli_main(["export", "-w", str(tmp_path / "broken.pth"), "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "model_res.1.adaptive.style_net.bias" in err and len(err.strip().splitlines()) == 1


def test_a_unsb_generator_cannot_finetune_another_kind(unsb_run, toy_root, tmp_path):
    with pytest.raises(CheckpointError, match="is a unsb generator but method=cyclegan trains a resnet generator"):
        train(load_config(None, tiny_overrides(toy_root, tmp_path, finetune__G_A=str(unsb_run), train__max_steps=1,
                                               data__direction="AtoB", finetune__G_B=None)))


def test_config_errors_name_the_key(toy_root, tmp_path):
    def load(**extra):
        return load_config(None, tiny_overrides(toy_root, tmp_path, **TINY | extra))

    with pytest.raises(ValueError, match=r"unsb.nce_layers=\[0, 4, 8, 12, 16\]: G has feature layers 0..13"):
        load(unsb__nce_layers="[0,4,8,12,16]")
    with pytest.raises(ValueError, match="method=unsb needs model.input_nc == output_nc"):
        load(model__output_nc=1, data__intensity__B__mode="range")
    with pytest.raises(ValueError, match="cut.lambda_NCE=2.0 does not apply to method=unsb"):
        load(cut__lambda_NCE=2.0)
    assert load().unsb.lambda_SB == 0.1 and load(unsb__lambda_SB=1.0).unsb.lambda_SB == 1.0  # the official default


def test_energy_loss_is_the_official_one_at_batch_1():
    """The official E loss, -mean E(pairs) + l + l^2 with l = logsumexp over the whole batch's E
    outputs, equals ours at batch 1; at batch 2 ours is the mean of the per-image terms."""
    g = torch.Generator().manual_seed(0)
    matched, mixed = torch.randn(1, 1, 5, 5, generator=g), torch.randn(1, 1, 5, 5, generator=g)
    lse = torch.logsumexp(mixed.reshape(-1), dim=0)
    torch.testing.assert_close(energy_loss(matched, mixed), -matched.mean() + lse + lse**2)
    two = torch.randn(2, 1, 5, 5, generator=g)
    per = torch.stack([torch.logsumexp(m.reshape(-1), 0) for m in two])
    torch.testing.assert_close(per_image_logsumexp(two), per)
    torch.testing.assert_close(energy_loss(two, two), -two.mean() + (per + per**2).mean())


def test_the_second_source_image_and_noise_come_from_the_sample(toy_root, tmp_path):
    cfg = load_config(None, tiny_overrides(toy_root, tmp_path, **TINY))
    data = UNSB.make_data(cfg, 0, 1)
    data.sampler.set_epoch(0)
    key = next(iter(data.sampler))
    a, b = data.dataset[key], data.dataset[key]
    assert torch.equal(a["X2"], b["X2"]) and a["seed"] == key[2]
    assert a["X2"].shape == a["A"].shape


def test_the_app_offers_a_steps_slider_for_multi_step_models_only(unsb_run, toy_root, tmp_path):
    from gan_style.app.models import Catalog, file_choices
    from gan_style.app.ui import steps_slider

    resnet = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__max_steps=1)))
    choices = file_choices(unsb_run, "run", "unsb") + file_choices(resnet, "run", "cyclegan")
    catalog = Catalog(choices)
    (unsb_label,) = [c.label for c in choices if c.steps == 5]
    one_pass = [c.label for c in choices if c.steps == 1]
    assert len(one_pass) == 2  # CycleGAN's two directions
    assert steps_slider(catalog, unsb_label) == {"visible": True, "maximum": 5, "value": 5}
    assert steps_slider(catalog, one_pass[0])["visible"] is False
    assert catalog.get(unsb_label, "cpu", "fp32", 2).steps == 2
    assert catalog.get(unsb_label, "cpu", "fp32").steps == 5
    with pytest.raises(WeightsError, match="--steps 9: use 1 to 5"):
        catalog.get(unsb_label, "cpu", "fp32", 9)
