"""Many processes, one translate (gan_style/inference/shard.py): 2 torchrun ranks on the CPU write the
same files with the same bytes as one process; ``--shard 0/2`` and ``1/2`` cover every input exactly
once; existing outputs are skipped, so a killed job resumes; a bad ``--shard`` is one line.

Each run is a process of its own, as in a job array (and as torchrun's ranks are): within one
process, the first video translated in fp32 can differ from later ones in its encoded bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from PIL import Image

from gan_style.bench.clips import write_clip
from gan_style.cli import main as cli_main
from gan_style.inference.shard import Shard, resolve_shard
from gan_style.nets import ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZES = [(40, 32), (40, 32), (52, 44), (36, 36), (60, 28)]  # two of a size: batched together in one process


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, dict[str, bytes]]:
    """Weights, an input folder (5 photos and a video) and what one process writes from it."""
    root = tmp_path_factory.mktemp("shard")
    torch.manual_seed(0)
    weights = root / "G.pth"
    torch.save(init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).eval().state_dict(), weights)
    folder = root / "in"
    folder.mkdir()
    for i, (w, h) in enumerate(SIZES):
        Image.effect_mandelbrot((w, h), (-2 + 0.1 * i, -1.2, 1, 1.2), 40).convert("RGB").save(folder / f"p{i}.png")
    write_clip(folder / "clip.mp4", 48, 32, seconds=1, fps=6)
    assert command(translate(weights, folder, root / "one")).returncode == 0
    return weights, folder, files(root / "one")


def command(args: list[str], torchrun: bool = False) -> subprocess.CompletedProcess:
    """``gan-style ARGS`` in a new process (under torchrun with 2 ranks), one thread each."""
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
    done = subprocess.run([sys.executable, *launcher, "-m", "gan_style", *args], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def translate(weights: Path, folder: Path, out: Path, *extra: str) -> list[str]:
    return ["translate", "-w", str(weights), "-i", str(folder), "-o", str(out), "--workers", "0", *extra]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_torchrun_ranks_write_what_one_process_writes(setup, tmp_path):
    weights, folder, one = setup
    done = command(translate(weights, folder, tmp_path / "two"), torchrun=True)
    assert "shard 0/2 (torchrun rank 0): 3 of 6 input(s)" in done.stderr
    assert "shard 1/2 (torchrun rank 1): 3 of 6 input(s)" in done.stderr
    two = files(tmp_path / "two")
    assert sorted(two) == sorted(one) == ["clip.mp4", "p0.png", "p1.png", "p2.png", "p3.png", "p4.png"]
    assert two == one  # same files, same bytes


def test_shards_cover_every_input_once_and_a_killed_job_resumes(setup, tmp_path):
    weights, folder, one = setup
    out = tmp_path / "out"
    assert "shard 0/2 (--shard 0/2): 3 of 6 input(s)" in command(translate(weights, folder, out, "--shard", "0/2")).stderr
    first = files(out)
    command(translate(weights, folder, out, "--shard", "1/2"))
    both = files(out)
    assert len(first) == 3 and both == one  # disjoint halves, together everything, same bytes
    # A killed shard 0 (one output missing): run again, only that file is translated.
    victim = sorted(first)[0]
    (out / victim).unlink()
    stamps = {p: (out / p).stat().st_mtime_ns for p in first if p != victim}
    err = command(translate(weights, folder, out, "--shard", "0/2")).stderr
    assert "skipped 2 existing output(s)" in err
    assert files(out) == one and all((out / p).stat().st_mtime_ns == t for p, t in stamps.items())


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/3"])
def test_a_bad_shard_is_one_line(setup, tmp_path, capsys, text):
    weights, folder, _ = setup
    assert cli_main(translate(weights, folder, tmp_path / "out", f"--shard={text}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --shard {text}: ") and not (tmp_path / "out").exists()


def test_a_job_array_of_torchrun_jobs_nests_the_shards():
    assert resolve_shard(None, {}) == Shard()
    assert resolve_shard("1/3", {}) == Shard(1, 3, 0, "--shard 1/3")
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == \
        Shard(1, 2, 1, "torchrun rank 1")
    # Task 1 of 3, each running 2 ranks: 6 shards in all, this rank's is 1 * 2 + 1.
    assert resolve_shard("1/3", {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).index == 3
    assert resolve_shard("1/3", {"RANK": "0", "WORLD_SIZE": "1"}) == Shard(1, 3, 0, "--shard 1/3")
