"""End-to-end training on a toy dataset: smoke run, reproducibility, exact resume, signals, NaN stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gan_style.methods.cyclegan
from conftest import REPO, tiny_overrides
from gan_style.io.checkpoint import load_safe
from gan_style.methods import load_config
from gan_style.training.loop import TrainingStopped, train


def run(root, out, **extra):
    return train(load_config(None, tiny_overrides(root, out, **extra)))


def losses(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(("loss/", "D/"))} for r in rows]


def weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_safe(path)
    return {f"{net}.{k}": v for net, sd in ckpt["models"].items() for k, v in sd.items()}


def test_smoke_run_writes_full_checkpoint(toy_root, tmp_path):
    last = run(toy_root, tmp_path)
    run_dir = tmp_path / "t"
    assert last == run_dir / "last.pt"
    ckpt = torch.load(last, weights_only=True)  # plain data: loads without unpickling objects
    assert set(ckpt["models"]) == {"G_A", "G_B", "D_A", "D_B"}
    assert set(ckpt["optimizers"]) == {"G", "D"} and set(ckpt["schedulers"]) == {"G", "D"}
    assert {"scaler", "pools", "rng", "config", "format_version"} <= set(ckpt)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]) == (2, 0, 16)
    assert ckpt["config"]["model"]["ngf"] == 8
    assert ckpt["pools"]["A"]["images"].shape == (16, 3, 32, 32)  # pool filled with the 16 fakes seen
    mask = os.umask(0)
    os.umask(mask)
    assert last.stat().st_mode & 0o777 == 0o666 & ~mask  # permissions like any new file, not mkstemp's 0600
    assert (run_dir / "config.yaml").is_file()
    assert load_config(run_dir / "config.yaml").model.n_blocks == 2  # saved config reloads
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == [
        "epoch_0001_A.png", "epoch_0001_B.png", "epoch_0002_A.png", "epoch_0002_B.png"]
    assert len(losses(run_dir)) == 8 and all(v == v for r in losses(run_dir) for v in r.values())


def test_two_runs_with_same_seed_are_identical(toy_root, tmp_path):
    run(toy_root, tmp_path / "a")
    run(toy_root, tmp_path / "b")
    assert losses(tmp_path / "a" / "t") == losses(tmp_path / "b" / "t")
    wa, wb = weights(tmp_path / "a" / "t" / "last.pt"), weights(tmp_path / "b" / "t" / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_equals_straight_bitwise(toy_root, tmp_path):
    common = dict(train__n_epochs=2, train__n_epochs_decay=2, train__pool_size=5, data__flip=True)
    run(toy_root, tmp_path / "straight", **common)
    # 2 epochs (8 steps each), stop, resume from last.pt, 2 more epochs.
    run(toy_root, tmp_path / "split", train__max_steps=16, **common)
    assert load_safe(tmp_path / "split" / "t" / "last.pt")["epoch"] == 2
    run(toy_root, tmp_path / "split", resume="auto", **common)
    straight, split = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert straight.keys() == split.keys()
    assert all(torch.equal(straight[k], split[k]) for k in straight), "resumed run diverged"
    ckpt_a, ckpt_b = load_safe(tmp_path / "straight" / "t" / "last.pt"), load_safe(tmp_path / "split" / "t" / "last.pt")
    assert torch.equal(ckpt_a["pools"]["A"]["images"], ckpt_b["pools"]["A"]["images"])
    assert ckpt_a["optimizers"]["G"]["param_groups"][0]["lr"] == ckpt_b["optimizers"]["G"]["param_groups"][0]["lr"]


def test_resume_mid_epoch_equals_straight(toy_root, tmp_path):
    run(toy_root, tmp_path / "straight")
    run(toy_root, tmp_path / "split", train__max_steps=5)  # stops inside epoch 1
    ckpt = load_safe(tmp_path / "split" / "t" / "last.pt")
    assert (ckpt["epoch"], ckpt["epoch_step"]) == (0, 5)
    run(toy_root, tmp_path / "split", resume=str(tmp_path / "split" / "t" / "last.pt"))
    a, b = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_is_not_overwritten(toy_root, tmp_path):
    run(toy_root, tmp_path)
    with pytest.raises(ValueError, match="resume=auto"):
        run(toy_root, tmp_path)


def test_resume_with_other_architecture_is_explained(toy_root, tmp_path):
    run(toy_root, tmp_path)
    with pytest.raises(ValueError, match="model.ngf|'ngf': 8"):
        run(toy_root, tmp_path, resume="auto", model__ngf=16)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toy_root, tmp_path, monkeypatch):
    run(toy_root, tmp_path, train__n_epochs=2, train__max_steps=8)  # one good epoch saved
    last = tmp_path / "t" / "last.pt"
    before = last.read_bytes()
    real_loss, calls = gan_style.methods.cyclegan.gan_loss, {"n": 0}

    def poisoned(prediction, target_is_real, mode):
        calls["n"] += 1
        loss = real_loss(prediction, target_is_real, mode)
        return loss * float("nan") if calls["n"] > 6 * 3 else loss  # 6 gan_loss calls per step: NaN from step 4

    monkeypatch.setattr(gan_style.methods.cyclegan, "gan_loss", poisoned)
    with pytest.raises(TrainingStopped, match=r"loss/G_A became nan at step 12") as e:
        run(toy_root, tmp_path, train__n_epochs=2, resume="auto")
    assert "last good checkpoint" in str(e.value)
    assert last.read_bytes() == before


def test_cli_reports_config_error_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gan_style", "train", "train.lamda_A=1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "did you mean 'train.lambda_A'" in out.stderr


def test_cli_reports_missing_data_in_one_line(tmp_path):
    overrides = tiny_overrides(tmp_path / "nowhere", tmp_path)
    out = subprocess.run([sys.executable, "-m", "gan_style", "train", *overrides],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert "nowhere/trainA does not exist" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("sig,workers", [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGINT, 2),
                                         (signal.SIGTERM, 2)])
def test_signal_saves_and_resume_continues(toy_root, tmp_path, sig, workers):
    """With DataLoader workers the signal goes to the whole process group, as a terminal's Ctrl-C,
    `timeout` and cluster schedulers send it: the workers must not die before the main process saves."""
    overrides = tiny_overrides(toy_root, tmp_path, train__n_epochs=200, logging__log_every=1,
                               data__num_workers=workers)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "gan_style", "train", *overrides], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = tmp_path / "t" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 12):
        time.sleep(0.1)  # wait until it has trained past the first epoch (8 steps)
    os.killpg(proc.pid, sig)  # the process and its workers, as a terminal or `timeout` does
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert "saved" in stderr and "resume=" in stderr and "Traceback" not in stderr
    ckpt = load_safe(tmp_path / "t" / "last.pt")
    assert ckpt["step"] >= 12 and ckpt["step"] == ckpt["epoch"] * 8 + ckpt["epoch_step"]
    # Resume from what it saved and train 3 more steps.
    run(toy_root, tmp_path, train__n_epochs=200, resume="auto", train__max_steps=ckpt["step"] + 3)
    assert load_safe(tmp_path / "t" / "last.pt")["step"] == ckpt["step"] + 3


def test_make_train_with_data_root(toy_root, tmp_path):
    """The README's `make train DOMAIN=monet DATA_ROOT=... ARGS=...` trains and writes last.pt."""
    args = " ".join(tiny_overrides(toy_root, tmp_path)[:1] + [o for o in tiny_overrides(toy_root, tmp_path)[1:]
                                                              if not o.startswith("data.root")])
    out = subprocess.run(["make", "-s", "-C", str(REPO), "train", "DOMAIN=monet", f"DATA_ROOT={toy_root}",
                          f"ARGS={args}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "t" / "last.pt").is_file()


@pytest.mark.parametrize("log_every", [3, 100])
def test_every_log_point_logs_the_same_keys(toy_root, tmp_path, log_every):
    """Periodic log points, epoch ends and a run shorter than log_every all log losses, gradient
    norms, learning rates and timing (8 steps per epoch, 2 epochs)."""
    run(toy_root, tmp_path, logging__log_every=log_every)
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == ([3, 6, 8, 9, 12, 15, 16] if log_every == 3 else [8, 16])
    keys = {"loss/G_A", "loss/D_B", "D/A_real", "grad_norm/G", "grad_norm/D", "lr/G", "lr/D", "epoch",
            "time/img_per_s", "time/data_wait_frac"}
    for row in rows:
        assert keys <= set(row), sorted(keys - set(row))
    assert len({frozenset(r) for r in rows}) == 1
