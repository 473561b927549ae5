"""`method: style`: a feed-forward network trained against one painting, as one method file plus its
registry line. Smoke train, learning, exact resume (with and without the PatchGAN), its checkpoint's
generator record, translate and export with no change, and its config errors."""

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from gan_style.cli import main as cli_main
from gan_style.config import ConfigError
from gan_style.inference.translate import load_generator
from gan_style.io.checkpoint import load_safe
from gan_style.methods import METHODS, load_config
from gan_style.training.loop import train


def style_overrides(root: Path, out: Path, **extra) -> list[str]:
    painting = METHODS["style"].synthetic_overrides(out)["style.paintings"][0]
    values = dict(method="style", style__paintings=f"[{painting}]", style__photos="trainB", model__n_blocks=1,
                  train__batch_size=2, train__lr=0.002, data__max_dataset_size=4, logging__log_every=1)
    return tiny_overrides(root, out, **(values | extra))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net, sd in load_safe(path)["models"].items() for k, v in sd.items()}


def test_style_trains_learns_and_records_its_generator(toy_root, tmp_path):
    last = train(load_config(None, style_overrides(toy_root, tmp_path, train__n_epochs=6, train__n_epochs_decay=0)))
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    style = [r["loss/style"] for r in rows]
    assert len(rows) == 12 and style[-1] < style[0]  # 2 steps per epoch, 6 epochs: the style distance falls
    assert {"loss/content", "loss/tv", "grad_norm/G", "time/img_per_s"} <= set(rows[-1])
    ckpt = load_safe(last)
    assert set(ckpt["models"]) == {"G"} and ckpt["method"] == "style"
    described = ckpt["generators"]["AtoB"]
    assert (described["net"], described["source"], described["target"]) == ("G", "photo", "synthetic_painting")
    assert sorted(p.name for p in (tmp_path / "t" / "samples").glob("*.png"))[-1] == "epoch_0006_photo.png"
    gen = load_generator(last, device="cpu", precision="fp32")  # translate needs nothing new
    assert gen.info.direction == "AtoB" and gen.info.target == "synthetic_painting"
    out = tmp_path / "translated"
    assert cli_main(["translate", "--weights", str(last), "--input", str(toy_root / "testA"), "-o", str(out)]) == 0
    assert len(list(out.iterdir())) == 2
    assert cli_main(["export", "--weights", str(last), "-o", str(tmp_path / "g.safetensors")]) == 0
    from gan_style.app.models import file_choices  # the web app's Translate tab offers it like any model

    choices = file_choices(last, "runs", "t")
    assert [(c.direction, c.label) for c in choices] == [("AtoB", "t: photo → synthetic_painting (AtoB)")]


@pytest.mark.parametrize("lambda_gan", [0.0, 0.5])
def test_style_resume_equals_straight_bitwise(toy_root, tmp_path, lambda_gan):
    common = dict(train__n_epochs=2, train__n_epochs_decay=2, style__lambda_GAN=lambda_gan)
    train(load_config(None, style_overrides(toy_root, tmp_path / "straight", **common)))
    train(load_config(None, style_overrides(toy_root, tmp_path / "split", train__max_steps=3, **common)))  # mid-epoch
    train(load_config(None, style_overrides(toy_root, tmp_path / "split", resume="auto", **common)))
    straight, split = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert {k.split(".")[0] for k in straight} == ({"G", "D"} if lambda_gan else {"G"})
    assert straight.keys() == split.keys() and all(torch.equal(straight[k], split[k]) for k in straight)


def test_style_config_errors_are_one_line(toy_root, tmp_path):
    with pytest.raises(ConfigError, match=r"style.paintings is empty: give a painting"):
        load_config(None, ["method=style"])
    with pytest.raises(ConfigError, match=r"train.pool_size=3 does not apply to method=style \(only to cyclegan\)"):
        load_config(None, style_overrides(toy_root, tmp_path) + ["train.pool_size=3"])
    with pytest.raises(ConfigError, match=r"style.painting_weights has 2 values for 1 paintings"):
        load_config(None, style_overrides(toy_root, tmp_path) + ["style.painting_weights=[1, 2]"])
    with pytest.raises(ConfigError, match=r"'style.strength' \(1.5\)"):
        load_config(None, style_overrides(toy_root, tmp_path) + ["style.strength=1.5"])
    cfg = load_config("style_monet", ["data.dataset=null"])
    assert cfg.method == "style" and cfg.style.paintings == ["trainA"]


def test_eval_every_measures_the_style_and_keeps_the_best(toy_root, tmp_path):
    last = train(load_config(None, style_overrides(toy_root, tmp_path, train__n_epochs=3, train__n_epochs_decay=0,
                                                   eval__every=1, eval__best="style")))
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/style" in r]
    assert [r["step"] for r in evals] == [2, 4, 6] and all(0 < r["eval/style"] and r["eval/content"] >= 0 for r in evals)
    best = min(r["eval/style"] for r in evals)
    assert (tmp_path / "t" / "best.pt").is_file() and load_safe(last)["best"]["best"] == pytest.approx(best)
    with pytest.raises(ConfigError, match="method=style evaluates its own metrics"):
        load_config(None, style_overrides(toy_root, tmp_path, eval__every=1, eval__best="kid_A", eval__fid=True))


def test_a_painting_folder_means_its_first_image(toy_root, tmp_path):
    cfg = load_config(None, style_overrides(toy_root, tmp_path, style__paintings="[trainA]", train__max_steps=1))
    last = train(cfg)
    first = sorted((toy_root / "trainA").iterdir())[0].stem
    assert load_safe(last)["generators"]["AtoB"]["target"] == first
