"""Monitoring: metrics.jsonl and samples/ always; W&B offline runs that hold the same scalars and
the panels, continue on resume, and never stop training when W&B is missing or failing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_overrides
from gan_style.io.checkpoint import load_safe
from gan_style.methods import load_config
from gan_style.training.monitor import Monitor, has_wandb_credentials, resolve_wandb_mode
from gan_style.training.loop import TrainingStopped, train

pytestmark = pytest.mark.timeout(180)

SCALARS = [f"loss/{n}" for n in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "hist_A", "hist_B", "D_A", "D_B")] + [
    "D/A_real", "D/A_fake", "D/B_real", "D/B_fake", "lr/G", "lr/D", "grad_norm/G", "grad_norm/D",
    "time/img_per_s", "time/data_wait_frac", "epoch"]


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """W&B offline, with every folder it writes inside tmp_path and no developer login used."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_NAME", "WANDB_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))


@pytest.fixture(scope="module", autouse=True)
def stop_wandb_service():
    """wandb starts a service process on first use: stop it when these tests are done. One torch
    thread: tiny models gain nothing from more, and spinning threads crawl on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    wandb = sys.modules.get("wandb")
    if isinstance(wandb, types.ModuleType) and hasattr(wandb, "teardown"):
        wandb.teardown()


def run(root: Path, out: Path, **extra) -> Path:
    extra = {"logging__wandb": "offline", "logging__image_every": 4} | extra
    train(load_config(None, tiny_overrides(root, out, **extra)))
    return out / "t"


def jsonl(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def sync_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def records(sync_dir: Path) -> list[dict]:
    """The records of an offline run's .wandb file, read by wandb's own reader."""
    (log,) = sync_dir.glob("run-*.wandb")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def history(recs: list[dict]) -> list[dict]:
    return [r["history"]["item"] for r in recs if r["type"] == "history"]


def test_offline_run_holds_the_scalars_and_panels(toy_root, tmp_path, offline, capsys):
    run_dir = run(toy_root, tmp_path)
    err = capsys.readouterr().err
    (sync_dir,) = sync_dirs(run_dir)
    run_id = load_safe(run_dir / "last.pt")["monitor"]["run_id"]
    assert sync_dir.name.endswith(f"-{run_id}")
    recs = records(sync_dir)
    rows = history(recs)

    # Every scalar row of metrics.jsonl is a W&B history row with the same values at the same step.
    local = jsonl(run_dir)
    assert [r["step"] for r in local] == list(range(2, 17, 2))
    scalar_rows = {r["step"]: r for r in rows if "loss/G_A" in r}
    assert sorted(scalar_rows) == [r["step"] for r in local]
    for row in local:
        assert set(SCALARS) <= set(row)
        assert {k: scalar_rows[row["step"]][k] for k in row} == pytest.approx(row)

    # Panels: at steps 4, 8, 12, 16 and both epoch ends, as W&B images whose files exist, and as PNGs.
    panel_rows = [r for r in rows if "samples/A.path" in r]
    assert [r["step"] for r in panel_rows] == [4, 8, 8, 12, 16, 16]
    assert all(-1 <= r["panels/A_correlation"] <= 1 and "panels/B_correlation" in r for r in panel_rows)
    for r in panel_rows:
        for d in "AB":
            assert r[f"samples/{d}._type"] == "image-file"
            assert (sync_dir / "files" / r[f"samples/{d}.path"]).is_file()
    assert "reconstructed A" in panel_rows[0]["samples/A.caption"]
    png = run_dir / "samples" / "epoch_0002_A.png"
    image = np.asarray(Image.open(png))
    assert image.shape == (2 * 34 + 2, 3 * 34 + 2, 3) and image.std() > 10  # 2 rows x 3 columns of 32 px + padding
    umask = os.umask(0o22)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask  # written atomically, yet readable like any file
    assert sorted(p.name for p in (run_dir / "samples").glob("step_*_B.png")) == [
        f"step_{s:07d}_B.png" for s in (4, 8, 12, 16)]

    # The start-up facts are the W&B config; the run finished cleanly; nothing was uploaded as artifact.
    (run_rec,) = [r["run"] for r in recs if r["type"] == "run"]
    config = run_rec["config"]["update"]
    assert config["model"]["ngf"] == 8 and config["parameters"]["G_A"] > 0 and config["dataset"]["A"] == 8
    assert "torch" in config["versions"] and config["device"] == "cpu"
    assert run_rec["run_id"] == run_id and run_rec["display_name"] == "t" and run_rec["project"] == "gan_style"
    assert [r["exit"].get("exit_code", 0) for r in recs if r["type"] == "exit"] == [0]
    assert not [r for r in recs if r["type"] == "artifact"]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["monitor"] == {"run_id": run_id, "wandb": "offline", "wandb_dir": str(sync_dir)}

    # One line says how to upload it, and `wandb sync` accepts the folder.
    sync_lines = [line for line in err.splitlines() if "wandb sync" in line and line.startswith("W&B")]
    assert sync_lines == [f"W&B: offline run saved; upload it with: wandb sync {sync_dir}"]
    dry = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run", str(sync_dir)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert dry.returncode == 0 and "Would sync 1 run" in dry.stdout + dry.stderr


def test_resume_continues_the_same_wandb_run(toy_root, tmp_path, offline, capsys):
    run_dir = run(toy_root, tmp_path, train__max_steps=6)
    first_id = load_safe(run_dir / "last.pt")["monitor"]["run_id"]
    # A row logged after the last checkpoint (a crash at step 8) is redone by the resumed run.
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 8, "loss/G_A": 123.0}) + "\n")
    capsys.readouterr()
    run(toy_root, tmp_path, resume="auto", logging__log_artifacts="true")
    err = capsys.readouterr().err

    assert load_safe(run_dir / "last.pt")["monitor"]["run_id"] == first_id
    first, second = sync_dirs(run_dir)
    # Folder names end with the run id (W&B adds -1 if both parts started in the same second).
    assert all(re.search(rf"-{first_id}(-\d+)?$", d.name) for d in (first, second))
    second_recs = records(second)
    (run_rec,) = [r["run"] for r in second_recs if r["type"] == "run"]
    assert run_rec["run_id"] == first_id and run_rec["resume"] is True
    steps_before = [r["step"] for r in history(records(first))]
    steps_after = [r["step"] for r in history(second_recs)]
    assert max(steps_before) == 6 and min(steps_after) == 8
    assert steps_after == sorted(steps_after) and steps_after[-1] == 16
    # metrics.jsonl reads as one history, the stale row gone.
    assert [r["step"] for r in jsonl(run_dir)] == list(range(2, 17, 2))
    assert all(r["loss/G_A"] != 123.0 for r in jsonl(run_dir))
    # The final checkpoint and the exported generators went up as model artifacts (log_artifacts=true).
    artifacts = {r["artifact"]["name"]: r["artifact"] for r in second_recs if r["type"] == "artifact"}
    assert sorted(artifacts) == ["t-checkpoint", "t-generator"]
    assert all(a["type"] == "model" for a in artifacts.values())
    assert "last.pt" in json.dumps(artifacts["t-checkpoint"]["manifest"])
    manifest = json.dumps(artifacts["t-generator"]["manifest"])
    assert "t_AtoB.safetensors" in manifest and "t_BtoA.safetensors" in manifest
    assert (run_dir / "export" / "t_BtoA.safetensors").is_file()
    # Both parts upload together, in order.
    assert f"wandb sync {second.parent}/offline-run-*-{first_id}*" in err


def test_a_new_run_name_gets_a_new_run_id(tmp_path):
    state = {"run_id": "abcd1234", "run_name": "monet"}
    assert Monitor(tmp_path / "monet", state=state).run_id == "abcd1234"
    other = Monitor(tmp_path / "monet_finetune", state=state).run_id
    assert other != "abcd1234" and len(other) == 8 and other.isalnum()


def test_metrics_jsonl_keeps_rows_up_to_the_start_step(tmp_path):
    rows = "".join(json.dumps({"step": s, "loss/G_A": 1.0}) + "\n" for s in (2, 4, 6)) + '{"step": 8, "los'
    (tmp_path / "metrics.jsonl").write_text(rows)  # the last line torn by a crash
    Monitor(tmp_path, step=4).finish()
    assert [r["step"] for r in jsonl(tmp_path)] == [2, 4]
    Monitor(tmp_path, step=0).finish()  # a fresh run in this folder
    assert (tmp_path / "metrics.jsonl").read_text() == ""


@pytest.mark.parametrize("setting", ["disabled", "offline"])
def test_training_completes_without_wandb(toy_root, tmp_path, offline, monkeypatch, capsys, setting):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    run_dir = run(toy_root, tmp_path, logging__wandb=setting, train__n_epochs_decay=0)  # one epoch: 8 steps
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "W&B" in line]
    if setting == "disabled":  # never imported, nothing said
        assert warnings == []
    else:
        assert len(warnings) == 1 and "pip install wandb" in warnings[0]
        assert "W&B import failed (ModuleNotFoundError" in warnings[0]
    assert not (run_dir / "wandb").exists()
    assert [r["step"] for r in jsonl(run_dir)] == list(range(2, 9, 2))
    assert len(list((run_dir / "samples").glob("*.png"))) == 6  # steps 4 and 8, end of epoch 1
    assert json.loads((run_dir / "run_info.json").read_text())["monitor"]["wandb"] == "disabled"


class FakeRun:
    """A W&B run whose ``fail`` method raises (like a network or quota error would)."""

    def __init__(self, fail: str) -> None:
        self.fail, self.calls, self.exit_code, self.artifacts = fail, [], None, []
        self.id, self.url, self.settings = "fake0001", "https://wandb.invalid/run", None

    def define_metric(self, *args, **kwargs) -> None:
        self._call("define_metric")

    def log(self, row: dict) -> None:
        self._call("log")

    def finish(self, exit_code: int | None = None) -> None:
        self.exit_code = exit_code
        self._call("finish")

    def log_artifact(self, artifact: FakeArtifact, aliases: list[str]) -> None:
        self.artifacts.append(artifact)
        self._call("log_artifact")

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise ConnectionError(f"{name}: network is unreachable\nsecond line of the error")


def fake_wandb(fail: str) -> types.ModuleType:
    module = types.ModuleType("wandb")
    module.runs = []

    def init(**kwargs):
        if fail == "init":
            raise ConnectionError("init timed out after 90 s")
        module.runs.append(FakeRun(fail))
        return module.runs[-1]

    module.init = init
    module.Image = lambda array, caption=None: array
    module.Artifact = FakeArtifact
    return module


class FakeArtifact:
    def __init__(self, name: str, type: str, metadata: dict) -> None:
        self.name, self.type, self.files = name, type, []

    def add_file(self, path: str) -> None:
        self.files.append(Path(path).name)


@pytest.mark.parametrize("fail", ["init", "log", "finish"])
def test_wandb_errors_never_stop_training(toy_root, tmp_path, monkeypatch, capsys, fail):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setitem(sys.modules, "wandb", fake := fake_wandb(fail))
    run_dir = run(toy_root, tmp_path, train__n_epochs_decay=0)  # one epoch: 8 steps
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: W&B")]
    assert len(warnings) == 1 and f"W&B {fail} failed (ConnectionError: " in warnings[0]
    assert "second line" not in warnings[0]
    assert [r["step"] for r in jsonl(run_dir)] == list(range(2, 9, 2))
    assert len(list((run_dir / "samples").glob("*.png"))) == 6
    if fail == "log":  # after the first failure W&B is left alone, but the run is still closed
        assert fake.runs[0].calls.count("log") == 1 and fake.runs[0].calls[-1] == "finish"
    if fail == "finish":  # everything was logged: 4 scalar rows and 3 panel rows
        assert fake.runs[0].calls.count("log") == 7 and fake.runs[0].exit_code == 0


def test_real_wandb_log_error_is_survived(toy_root, tmp_path, offline, monkeypatch, capsys):
    import wandb.sdk.wandb_run

    def broken_log(self, *args, **kwargs):
        raise RuntimeError("quota exceeded")

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", broken_log)
    run_dir = run(toy_root, tmp_path, train__n_epochs_decay=0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: W&B")]
    assert len(warnings) == 1 and "RuntimeError: quota exceeded" in warnings[0]
    assert [r["step"] for r in jsonl(run_dir)] == list(range(2, 9, 2))
    (sync_dir,) = sync_dirs(run_dir)
    assert [r["type"] for r in records(sync_dir) if r["type"] == "exit"] == ["exit"]  # closed properly


def test_finish_marks_a_stopped_run_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setitem(sys.modules, "wandb", fake := fake_wandb(fail="none"))
    monitor = Monitor(tmp_path / "r", load_config(None, ["logging.wandb=online"]).logging)
    monitor.start({"config": {}})
    with pytest.raises(TrainingStopped):
        try:
            raise TrainingStopped("SIGTERM: saved", 143)
        finally:
            monitor.finish()
    assert fake.runs[0].exit_code == 143


def test_artifacts_fall_back_to_the_checkpoint_when_export_fails(tmp_path, monkeypatch, capsys):
    import gan_style.inference.export
    import gan_style.inference.weights

    def broken_export(*args, **kwargs):
        raise RuntimeError("no exporter")

    monkeypatch.setattr(gan_style.inference.export, "export_generator", broken_export)
    monkeypatch.setattr(gan_style.inference.weights, "generator_directions", lambda path: ["AtoB", "BtoA"])
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setitem(sys.modules, "wandb", fake := fake_wandb(fail="none"))
    cfg = load_config(None, ["logging.wandb=online", "logging.log_artifacts=true"]).logging
    monitor = Monitor(tmp_path / "r", cfg)
    monitor.start({"config": {}})
    (tmp_path / "r" / "last.pt").write_bytes(b"weights")
    monitor.log_artifacts({"checkpoint": tmp_path / "r" / "last.pt", "best": tmp_path / "r" / "best.pt"})
    monitor.finish()
    assert [(a.name, a.type, a.files) for a in fake.runs[0].artifacts] == [("r-checkpoint", "model", ["last.pt"])]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "RuntimeError: no exporter" in warnings[0] and "checkpoint only" in warnings[0]


def test_resolve_wandb_mode(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert resolve_wandb_mode("disabled", {"WANDB_MODE": "online", "WANDB_API_KEY": "k"})[0] == "disabled"
    assert resolve_wandb_mode("online", {"WANDB_MODE": "offline"})[0] == "offline"
    assert resolve_wandb_mode("offline", {"WANDB_MODE": "disabled"})[0] == "disabled"
    assert resolve_wandb_mode("auto", {"WANDB_MODE": "dryrun"})[0] == "offline"
    assert resolve_wandb_mode("online", {"WANDB_DISABLED": "true"})[0] == "disabled"
    assert resolve_wandb_mode("online", home)[0] == "online"
    assert resolve_wandb_mode("auto", home)[0] == "offline"
    assert resolve_wandb_mode("auto", home | {"WANDB_API_KEY": "k" * 40})[0] == "online"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert has_wandb_credentials(home) and resolve_wandb_mode("auto", home)[0] == "online"
    assert not has_wandb_credentials(home | {"WANDB_BASE_URL": "https://wandb.example.com"})
    assert not has_wandb_credentials({"HOME": str(tmp_path / "nowhere")})


def test_a_run_shorter_than_log_every_logs_its_losses(toy_root, tmp_path, offline):
    """8 steps an epoch, log_every 100: each epoch's partial window is logged at its last step."""
    run_dir = run(toy_root, tmp_path, logging__log_every=100, logging__image_every=0)
    local = jsonl(run_dir)
    assert [r["step"] for r in local] == [8, 16] and all("loss/G_A" in r and "lr/G" in r for r in local)
    assert [r["epoch"] for r in local] == [1.0, 2.0]
    (sync_dir,) = sync_dirs(run_dir)
    rows = {r["step"]: r for r in history(records(sync_dir)) if "loss/G_A" in r}
    assert sorted(rows) == [8, 16] and rows[16]["loss/D_B"] == pytest.approx(local[1]["loss/D_B"])
