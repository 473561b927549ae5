"""Shared fixtures: a generated toy dataset and the overrides of a tiny CPU model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gan_style.data.toydata import make_toy_dataset
from gan_style.logs import show_warnings

# In-process runs show the library's warnings and notes on stderr, as the commands do.
show_warnings()

REPO = Path(__file__).resolve().parents[1]

# Keep tests independent of the developer's W&B login and of each other's threads.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """trainA/trainB (8 images each) and testA/testB (2 each), 40x40 PNGs."""
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), n_train=8, n_test=2, size=40)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is fastest, and immune to other processes competing for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_overrides(root: Path, out_dir: Path, **extra) -> list[str]:
    """key=value overrides for a tiny, fast, deterministic CPU run."""
    values = {
        "name": "t",
        "out_dir": str(out_dir),
        "data.root": str(root),
        "data.dataset": None,
        "data.load_size": 36,
        "data.crop_size": 32,
        "data.num_workers": 0,
        "model.ngf": 8,
        "model.ndf": 8,
        "model.n_blocks": 2,
        "train.n_epochs": 1,
        "train.n_epochs_decay": 1,
        "train.precision": "fp32",
        "train.device": "cpu",
        "checkpoint.save_every": 0,
        "logging.log_every": 2,
        "logging.image_every": 0,
        "logging.n_samples": 2,
        "logging.wandb": "disabled",
    }
    values.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={'null' if v is None else v}" for k, v in values.items()]


def synthetic_extra(method: str, folder: Path) -> dict:
    """``tiny_overrides`` keyword arguments for the files a method needs on synthetic data (the
    style method's painting, written in ``folder``); {} for most methods."""
    from gan_style.methods import METHODS

    def value(v):
        return f"[{','.join(map(str, v))}]" if isinstance(v, list) else v

    return {k.replace(".", "__"): value(v) for k, v in METHODS[method].synthetic_overrides(folder).items()}


@pytest.fixture
def run_cli(tmp_path, monkeypatch, capsys):
    """``gan-style eval ARGS`` in this process (cwd and cache in tmp_path): (exit code, stdout, stderr)."""
    from gan_style.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["eval", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
