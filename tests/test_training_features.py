"""Training features for small data and published weights (issue 13): EMA generators, DiffAugment,
fine-tuning from generator files, antialiased CycleGAN upsampling, best.pt."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import tiny_overrides
from gan_style import load_generator, translate_image
from gan_style.methods import load_config
from gan_style.io.checkpoint import CheckpointError, load_safe
from gan_style.methods.diffaugment import DiffAugment
from gan_style.nets import ResnetGenerator, init_weights
from gan_style.training.best import BestTracker
from gan_style.training.ema import GeneratorEMA
from gan_style.training.loop import train

CPU = torch.device("cpu")


def run(root, out, **extra):
    return train(load_config(None, tiny_overrides(root, out, **extra)))


# ---------------------------------------------------------------- EMA


def test_ema_update_follows_the_formula_with_warm_up():
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = GeneratorEMA({"G": net}, decay=0.9)
    expected = 1.0
    for t, w in enumerate([3.0, -1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], start=1):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update()
        d = min(0.9, (1 + t) / (10 + t))  # step 1: 2/11, ... from step 80 on: 0.9
        expected = d * expected + (1 - d) * w
        assert ema.shadow["G"][0].item() == pytest.approx(expected, rel=1e-6)
    with ema.applied():
        assert net.weight.item() == pytest.approx(expected, rel=1e-6)
    assert net.weight.item() == 5.0  # the training weights come back


def test_ema_is_in_the_checkpoint_resumes_bitwise_and_is_what_translate_uses(toy_root, tmp_path):
    common = dict(train__ema=0.9, train__n_epochs=1, train__n_epochs_decay=1)
    run(toy_root, tmp_path / "straight", **common)
    run(toy_root, tmp_path / "split", train__max_steps=8, **common)
    run(toy_root, tmp_path / "split", resume="auto", **common)
    a, b = (load_safe(tmp_path / d / "t" / "last.pt") for d in ("straight", "split"))
    assert a["ema"]["updates"] == b["ema"]["updates"] == 16
    for name in ("G_A", "G_B"):
        assert all(torch.equal(v, b["ema"]["models"][name][k]) for k, v in a["ema"]["models"][name].items())
        assert any(not torch.equal(v, a["models"][name][k]) for k, v in a["ema"]["models"][name].items())
    path = tmp_path / "straight" / "t" / "last.pt"
    gen, raw = load_generator(path, "BtoA", "cpu"), load_generator(path, "BtoA", "cpu", ema=False)
    assert "EMA" in gen.info.origin and "EMA" not in raw.info.origin
    assert all(torch.equal(v, a["ema"]["models"]["G_B"][k]) for k, v in gen.net.state_dict().items())
    assert all(torch.equal(v, a["models"]["G_B"][k]) for k, v in raw.net.state_dict().items())


# ---------------------------------------------------------------- DiffAugment


def test_diffaugment_is_seeded_differentiable_shape_keeping_and_off_by_default():
    x = (torch.rand(4, 3, 24, 20) * 2 - 1).requires_grad_(True)
    policy = "color,translation,cutout"
    y1, y2 = DiffAugment(policy, 7, CPU)(x), DiffAugment(policy, 7, CPU)(x)
    assert y1.shape == x.shape and torch.equal(y1, y2)  # same seed, same augmentation
    assert not torch.equal(DiffAugment(policy, 8, CPU)(x), y1) and not torch.allclose(y1, x)
    y1.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the gradient reaches the input
    for name in ("color", "translation", "cutout"):  # each op alone changes the images, keeps the shape
        out = DiffAugment(name, 0, CPU)(x.detach())
        assert out.shape == x.shape and not torch.equal(out, x.detach()), name
    off = DiffAugment("", 0, CPU)
    assert off(x) is x  # identity: no copy, no random draw
    assert torch.equal(off.generator.get_state(), torch.Generator().manual_seed(0).get_state())


def test_diffaugment_training_resumes_bitwise(toy_root, tmp_path):
    common = dict(train__diffaugment="color,translation,cutout", train__n_epochs=1, train__n_epochs_decay=1)
    run(toy_root, tmp_path / "straight", **common)
    run(toy_root, tmp_path / "split", train__max_steps=5, **common)
    run(toy_root, tmp_path / "split", resume="auto", **common)
    a, b = (load_safe(tmp_path / d / "t" / "last.pt") for d in ("straight", "split"))
    assert all(torch.equal(v, b["models"][n][k]) for n, sd in a["models"].items() for k, v in sd.items())
    plain = load_safe(run(toy_root, tmp_path / "plain", train__n_epochs=1, train__n_epochs_decay=1))
    assert not torch.equal(plain["models"]["D_A"]["model.0.weight"], a["models"]["D_A"]["model.0.weight"])


# ---------------------------------------------------------------- fine-tuning


def test_finetune_loads_a_reference_generator_into_the_right_network(toy_root, tmp_path):
    torch.manual_seed(5)
    source = init_weights(ResnetGenerator(3, 3, 8, 2), 0.3).state_dict()
    torch.save(source, tmp_path / "latest_net_G_B.pth")  # the reference's format: a bare state_dict
    last = run(toy_root, tmp_path, finetune__G_B=str(tmp_path / "latest_net_G_B.pth"), train__lr=1e-9,
               train__max_steps=2)
    ckpt = load_safe(last)
    g_b = ckpt["models"]["G_B"]
    assert max((g_b[k] - v).abs().max().item() for k, v in source.items()) < 1e-6  # started from the file
    assert max((ckpt["models"]["G_A"][k] - v).abs().max().item() for k, v in source.items()) > 0.1  # G_A fresh
    assert "latest_net_G_B.pth" in ckpt["finetune"]["G_B"]
    info = json.loads((tmp_path / "t" / "run_info.json").read_text())
    assert info["finetune"] == ckpt["finetune"]


def test_finetune_with_another_architecture_is_one_line(toy_root, tmp_path):
    torch.save(ResnetGenerator(3, 3, 16, 2).state_dict(), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError) as e:
        run(toy_root, tmp_path, finetune__G_A=str(tmp_path / "wide.pth"))
    msg = str(e.value)
    assert "\n" not in msg and "finetune.G_A" in msg and "ngf=16" in msg and "ngf=8" in msg


# ---------------------------------------------------------------- antialiased CycleGAN


def test_antialiased_cyclegan_generator_trains_and_translates(toy_root, tmp_path):
    last = run(toy_root, tmp_path, model__antialias_up=True, data__max_dataset_size=4, train__n_epochs_decay=0)
    gen = load_generator(last, "AtoB", "cpu")
    assert gen.info.arch["antialias_up"] and not gen.info.arch["antialias"]
    assert "model.12.filt" in gen.net.state_dict()  # the first blur upsampling, after 2 blocks at 10, 11
    out = translate_image(gen, next((toy_root / "testA").iterdir()))
    assert out.size == (40, 40)


# ---------------------------------------------------------------- best.pt


def test_best_tracker_improves_exactly_when_the_metric_drops():
    best = BestTracker("kid_A")
    seq = [3.0, 2.0, 2.5, 2.0, 1.0, math.nan, 0.5]
    assert [best.improved({"eval/kid_A": v}) for v in seq] == [True, True, False, False, True, False, True]
    assert best.improved({"eval/fid_A": 0.1}) is False  # another metric: not this one
    restored = BestTracker("kid_A")
    restored.load_state_dict(best.state_dict())
    assert restored.best == 0.5 and not restored.improved({"eval/kid_A": 0.7})


def test_best_checkpoint_is_written_when_the_eval_metric_improves(toy_root, tmp_path, capsys):
    run(toy_root, tmp_path, eval__every=1, eval__n_images=2, eval__best="colour_w1_A", train__n_epochs=2,
        train__n_epochs_decay=1, data__max_dataset_size=2)
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    values = [(r["step"], r["eval/colour_w1_A"]) for r in rows if "eval/colour_w1_A" in r]
    bests = [r["eval/best_colour_w1_A"] for r in rows if "eval/best_colour_w1_A" in r]
    assert len(values) == 3 and bests == [min(v for _, v in values[: i + 1]) for i in range(3)]
    best_step = min(values, key=lambda sv: sv[1])[0]
    best = load_safe(tmp_path / "t" / "best.pt")
    assert best["step"] == best_step and best["best"]["best"] == bests[-1]
    assert load_safe(tmp_path / "t" / "last.pt")["best"]["best"] == bests[-1]
    # make eval BEST=1: both files, side by side, in one table and one JSON
    from gan_style.cli import main

    run_dir = tmp_path / "t"
    code = main(["eval", "--weights", str(run_dir / "best.pt"), str(run_dir / "last.pt"), "--metrics", "colour",
                 "--direction", "AtoB", "--json", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    columns = json.loads((tmp_path / "e.json").read_text())["results"]
    assert [c.split()[0] for c in columns] == ["best.pt", "last.pt"]
