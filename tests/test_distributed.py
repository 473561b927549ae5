"""DDP on the CPU (gloo, 2 processes): same weights on all ranks, gradients averaged like one big
batch, checkpoints that move between 1 and 2 processes, rank 0 alone writes, a hung rank stops
the others within the process-group timeout, and torchrun's restart after a crash resumes.

This file is also the worker script: ``python tests/test_distributed.py DUMP_DIR KEY=VALUE...``
(run by torchrun, or by hand with RANK/WORLD_SIZE set) trains through ``gan-style train`` and then
dumps, per rank, the final weights, the state after its first step, the gradients each step's
optimizers got (after DDP's all-reduce) and the files it wrote.
"""

from __future__ import annotations

import copy
import faulthandler
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
TORCHRUN = Path(sys.executable).parent / "torchrun"
FAULT_ENV = "GAN_STYLE_TEST_FAULT"  # "<hang|exit>:<step>": what rank 1 does at that step
SGD_ENV = "GAN_STYLE_TEST_SGD_D"  # "1": the discriminators learn by SGD (recording's sgd_D)


# --------------------------------------------------------------------------- worker side


def _record_writes(root: str, writes: list[str]) -> None:
    """Audit hook: every file created, opened for writing, renamed or removed under ``root``."""
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags)
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink"):
            path, writing = args[0], True
        else:
            return
        if writing and isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(root):
            writes.append(f"{event} {os.fspath(path)}")

    sys.addaudithook(hook)


def param_names(model) -> dict[torch.nn.Parameter, str]:
    """A method's parameters -> "<net>.<name>", the keys of the flattened state dicts."""
    return {p: f"{net}.{k}" for net, module in model.nets.items() for k, p in module.named_parameters()}


def recording(method_class, models: list, grads: dict, sgd_D: bool = False):
    """``method_class`` that appends itself to ``models`` and, at each of its steps, records in
    ``grads[step]`` (1 = this process's first step) the gradient of every parameter at the moment
    its optimizer steps: under DDP, after the all-reduce. Used by the workers and in-process runs.
    ``sgd_D``: the discriminator side (every optimizer but G's) learns by SGD (same LR) instead of Adam
    (see test_cut_...)."""

    class Recorded(method_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            models.append(self)
            self.steps = 0
            if sgd_D:  # every optimizer but G's (UNSB's energy net E too)
                for opt_name, opt in list(self.optimizers.items()):
                    if opt_name != "G":
                        params = [p for group in opt.param_groups for p in group["params"]]
                        sgd = torch.optim.SGD(params, lr=opt.param_groups[0]["lr"])
                        self.optimizers[opt_name] = sgd
                        setattr(self, f"opt_{opt_name}", sgd)
            names = param_names(self)

            def capture(opt, args, kwargs):
                params = (p for group in opt.param_groups for p in group["params"] if p.grad is not None)
                grads.setdefault(self.steps, {}).update({names[p]: p.grad.detach().clone() for p in params})

            for opt in self.optimizers.values():
                opt.register_step_pre_hook(capture)

        def step(self, *args, **kwargs):
            self.steps += 1
            return super().step(*args, **kwargs)

    return Recorded


def worker(dump_dir: Path, overrides: list[str]) -> int:
    import gan_style.training.loop
    from gan_style.io.checkpoint import save_atomic
    from gan_style.cli import main

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid> prints where a stuck worker is
    rank = int(os.environ.get("RANK", "0"))
    models, first, grads = [], {}, {}
    fault = os.environ.get(FAULT_ENV)

    def faulty(method_class):
        class Faulty(recording(method_class, models, grads, sgd_D=os.environ.get(SGD_ENV) == "1")):
            def step(self, *args, **kwargs):
                first_try = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"  # torchrun counts restarts
                if fault and rank == 1 and self.steps + 1 == int(fault.split(":")[1]) and first_try:
                    if fault.startswith("hang"):  # a frozen process: no error, no exit, no more messages
                        os.kill(os.getpid(), signal.SIGSTOP)
                    os._exit(17)  # a crash: the process vanishes
                out = super().step(*args, **kwargs)
                if self.steps == 1:  # the state after one step, Adam's moments included
                    optimizers = {name: opt.state_dict() for name, opt in self.optimizers.items()}
                    first.update(copy.deepcopy({"models": self.state_dict()["models"], "optimizers": optimizers}))
                    first["grads"] = grads[1]
                    if fault and rank == 0 and first_try:
                        # Written now: torchrun may kill this rank (after the fault) before its final dump.
                        # Rank 1 cannot reach its faulty step before rank 0 is past the epoch-end collectives.
                        save_atomic(first, dump_dir / f"first_rank{rank}.pt")
                return out

        return Faulty

    for name, cls in list(gan_style.training.loop.METHODS.items()):  # every method records
        gan_style.training.loop.METHODS[name] = faulty(cls)
    writes: list[str] = []
    _record_writes(str(dump_dir.parent), writes)
    try:
        code = main(["train", *overrides])
    finally:
        recorded = list(writes)  # freeze: the dump below is the test's own write
        state = {name: net.state_dict() for name, net in models[0].nets.items()} if models else {}
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        name = f"rank{rank}.pt" if restart == 0 else f"rank{rank}_restart{restart}.pt"
        dump = {"models": state, "writes": recorded, "first": first, "grads": grads}
        save_atomic(dump, dump_dir / name)  # never half-written
    return code


if __name__ == "__main__":
    sys.exit(worker(Path(sys.argv[1]), sys.argv[2:]))


# --------------------------------------------------------------------------- test side

from gan_style.io.checkpoint import load_safe  # noqa: E402
from gan_style.methods import load_config  # noqa: E402
from gan_style.training.distributed import (  # noqa: E402
    TIMEOUT_ENV,
    DistEnv,
    RankFailure,
    init_distributed,
    is_peer_failure,
    timeout_from_env,
)
from gan_style.data.toydata import make_toy_dataset  # noqa: E402
from gan_style.training.loop import train  # noqa: E402
from gan_style.methods import METHODS  # noqa: E402
from conftest import synthetic_extra  # noqa: E402


def overrides(root: Path, out: Path, name: str, **extra) -> list[str]:
    """A tiny deterministic run: no random crop, no flip, no pool, a log (and stop check) every step;
    3 steps an epoch at a global batch of 2; lr high enough that each step moves the weights."""
    values = {
        "name": name, "out_dir": out, "data.root": root, "data.dataset": "null", "data.load_size": 32,
        "data.crop_size": 32, "data.flip": "false", "data.num_workers": 0, "model.ngf": 8, "model.ndf": 8,
        "model.n_blocks": 2, "train.n_epochs": 1, "train.n_epochs_decay": 2, "train.precision": "fp32",
        "train.device": "cpu", "train.pool_size": 0, "train.batch_size": 1, "train.lr": 0.001,
        "checkpoint.save_every": 0,
        "logging.log_every": 1, "logging.image_every": 0, "logging.n_samples": 1, "logging.wandb": "disabled",
    }  # fmt: skip
    values.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in values.items()]


def single(root: Path, out: Path, name: str, **extra) -> Path:
    """One process, in this interpreter: the plain path, no torchrun, no process group."""
    path = train(load_config(None, overrides(root, out, name, **extra)))
    assert not torch.distributed.is_initialized()
    return path


def torchrun(dump: Path, args: list[str], launch: tuple[str, ...] = (), env: dict | None = None,
             timeout: float = 240) -> subprocess.CompletedProcess:
    dump.mkdir(parents=True, exist_ok=True)
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *launch, str(HERE), str(dump), *args]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)} | (env or {})
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_safe(path)
    return {f"{net}.{k}": v for net, sd in ckpt["models"].items() for k, v in sd.items()}


def dumped(dump: Path, rank: int, restart: int = 0) -> dict:
    name = f"rank{rank}.pt" if restart == 0 else f"rank{rank}_restart{restart}.pt"
    return torch.load(dump / name, weights_only=True)


def flat(models: dict) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net, sd in models.items() for k, v in sd.items()}


# The equivalence tests compare gradients, not weights: a first Adam step is about lr * sign(g), so
# a weight whose gradient is near 0 moves by +lr or -lr depending on float rounding, which differs
# between CPUs (oneDNN picks other kernels on Intel AMX and AMD AVX-512). Gradients are
# well-conditioned: batch 2 in one process and 2 x batch 1 averaged by DDP differ by summation
# order only. Per tensor, in relative norm, measured (fp32, AMD Zen 4): at most 3e-5 (the first
# convolution of G, where the sum over pixels cancels most), 1e-6 or less for most tensors.
# 1e-3 leaves a 30x margin for other kernels and still fails if one rank's share is off by 0.2%:
# summed instead of averaged is off by 1, one rank's own gradient by ~0.5.
GRAD_RTOL = 1e-3
NOISE = 1e-4  # the noise biases' gradient norm against their network's: measured at most 1.3e-6


def method_extra(method: str, folder: Path) -> dict:
    """Overrides of the tiny run for ``method`` (pool_size is CycleGAN's alone: its default elsewhere),
    with the files the method needs on synthetic data (the style method's painting) in ``folder``."""
    if method == "cyclegan":
        return {}
    extra = {"method": method, "train__pool_size": 50} | ({f"{'unsb' if method == 'unsb' else 'cut'}__num_patches": 16}
                                                           if method != "style" else {})
    return extra | synthetic_extra(method, folder)


def fresh_method(root: Path, method: str, **extra):
    """The method's training state as the tiny run builds it (its networks' layout, its optimizers' order)."""
    cfg = load_config(None, overrides(root, root.parent / "unused", "x", **method_extra(method, root.parent), **extra))
    return METHODS[method](cfg, torch.device("cpu"), "fp32")


def noise_biases(model) -> set[str]:
    """Biases of convolutions followed by InstanceNorm (with only blur layers between: they keep a
    constant a constant), unless CUT taps the convolution's output for PatchNCE. The norm subtracts
    them again: their exact gradient is 0 and what they get is rounding noise, with no relative
    error to compare; they change no output."""
    tapped = {f"G.model.{i}" for i in getattr(model, "nce_layers", ())}
    names = set()
    for net_name, net in model.nets.items():
        for seq_name, seq in net.named_modules():
            if isinstance(seq, torch.nn.Sequential):
                kids = list(seq.named_children())
                for i, (name, conv) in enumerate(kids):
                    path = f"{net_name}.{seq_name}.{name}"
                    after = next((m for _, m in kids[i + 1 :] if not type(m).__name__.startswith("Blur")), None)
                    biased_conv = isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and conv.bias is not None
                    if biased_conv and isinstance(after, nn.InstanceNorm2d) and path not in tapped:
                        names.add(f"{path}.bias")
    return names


def assert_same_gradients(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], noise: set[str]) -> None:
    """Every parameter's gradient within GRAD_RTOL in relative norm; the noise biases' are noise
    (tiny against their network's gradient) on both sides."""
    assert a.keys() == b.keys() and noise and noise < a.keys()
    for net in {k.split(".")[0] for k in b}:
        keys = [k for k in b if k.split(".")[0] == net]
        total = torch.cat([b[k].flatten() for k in keys]).norm()
        assert total > 0, net
        for k in keys:
            if k in noise:
                assert max(a[k].norm(), b[k].norm()) <= NOISE * total, k
            else:
                assert (a[k] - b[k]).norm() <= GRAD_RTOL * b[k].norm(), k


def assert_same_optimizer_state(a: dict, b: dict, model, noise: set[str], lr: bool = True) -> None:
    """The same Adam state after a step ({"G": state_dict, "D": ...}): hyperparameters, the LR (the
    scheduler's; unless ``lr`` is False: ``b`` was saved after an epoch-end decay) and step counts
    exactly; the moments, linear in g and g^2, like the gradients."""
    names = param_names(model)
    for opt_name, opt in (("G", model.opt_G), ("D", model.opt_D)):
        order = [names[p] for group in opt.param_groups for p in group["params"]]
        x, y = a[opt_name], b[opt_name]
        skip = set() if lr else {"lr"}
        groups = [[{k: v for k, v in g.items() if k not in skip} for g in opt["param_groups"]] for opt in (x, y)]
        assert groups[0] == groups[1] and x["state"].keys() == y["state"].keys()
        for i, state in y["state"].items():
            assert torch.equal(x["state"][i]["step"], state["step"]), order[i]
            for moment in () if order[i] in noise else ("exp_avg", "exp_avg_sq"):
                assert (x["state"][i][moment] - state[moment]).norm() <= 2 * GRAD_RTOL * state[moment].norm(), order[i]


def single_recorded(monkeypatch, root: Path, out: Path, name: str, sgd_D: bool = False, **extra) -> tuple[Path, dict]:
    """``single`` with every method recording: (checkpoint, {step: {parameter: gradient}})."""
    import gan_style.training.loop

    grads: dict = {}
    for method, cls in list(gan_style.training.loop.METHODS.items()):
        monkeypatch.setitem(gan_style.training.loop.METHODS, method, recording(cls, [], grads, sgd_D))
    return single(root, out, name, **extra), grads


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process runs use one thread, like each torchrun worker: 2 spinning threads per process
    on a busy 2-core machine are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """6 A images; B: 6 copies of one image, so B's per-rank random choice does not matter."""
    root = make_toy_dataset(tmp_path_factory.mktemp("ddp") / "data", n_train=6, n_test=1, size=32)
    for path in sorted((root / "trainB").iterdir())[1:]:
        shutil.copyfile(root / "trainB" / "0000.png", path)
    return root


@pytest.fixture(scope="module")
def ddp_run(data) -> tuple[Path, Path]:
    """2 ranks x batch 1 under torchrun, 4 steps: epoch_0001.pt after step 3, last.pt after step 4
    (mid-epoch). Returns (run dir, dump dir)."""
    out = data.parent / "runs"
    proc = torchrun(data.parent / "dump_ddp", overrides(data, out, "ddp", train__max_steps=4, checkpoint__save_every=1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "ddp", data.parent / "dump_ddp"


def moved(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - v).abs().max().item() for k, v in b.items())


def test_ranks_hold_identical_weights(ddp_run):
    run_dir, dump = ddp_run
    w0, w1 = flat(dumped(dump, 0)["models"]), flat(dumped(dump, 1)["models"])
    assert w0.keys() == w1.keys() and len(w0) > 0
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # The checkpoint holds the same weights, saved from the plain modules (no DDP "module." prefix).
    saved = weights(run_dir / "last.pt")
    assert saved.keys() == w0.keys() and all(torch.equal(saved[k], w0[k]) for k in w0)


def test_two_ranks_batch_1_equal_one_process_batch_2(ddp_run, data, monkeypatch):
    """The first step from the same initial weights: every rank steps with the same gradients, equal
    to one process's on the batch of both ranks' images, so DDP averages them over the ranks as over
    a batch (not summed, not left per rank). Only step 1: steps 2-4 start from weights that a first
Adam step set, which rounding may differ in (see GRAD_RTOL)."""
    run_dir, dump = ddp_run
    ranks = [dumped(dump, rank)["grads"] for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() == {1, 2, 3, 4}
    assert all(torch.equal(v, ranks[1][step][k]) for step, g in ranks[0].items() for k, v in g.items())
    _, solo = single_recorded(monkeypatch, data, data.parent / "runs", "solo1", train__batch_size=2, train__max_steps=1)
    model = fresh_method(data, "cyclegan")
    assert ranks[0][1].keys() == set(param_names(model).values())
    assert_same_gradients(ranks[0][1], solo[1], noise_biases(model))
    info = json.loads((run_dir / "run_info.json").read_text())
    assert (info["world_size"], info["global_batch"], info["config"]["train"]["batch_size"]) == (2, 2, 1)


def test_only_rank_0_writes_files(ddp_run):
    run_dir, dump = ddp_run
    rank0, rank1 = dumped(dump, 0)["writes"], dumped(dump, 1)["writes"]
    assert rank1 == []
    assert any("last.pt" in w for w in rank0) and any("metrics.jsonl" in w for w in rank0)  # the hook sees writes
    names = ["config.yaml", "epoch_0001.pt", "last.pt", "metrics.jsonl", "run_info.json", "samples"]
    assert sorted(p.name for p in run_dir.iterdir()) == names


def test_ddp_checkpoint_resumes_in_one_process(ddp_run, data, monkeypatch):
    """From the DDP state after step 3, one more step in one process = the DDP run's step 4: the same
    gradients (weights loaded), then the same Adam state and LR (moments and schedulers loaded)."""
    run_dir, dump = ddp_run
    resumed, grads = single_recorded(monkeypatch, data, data.parent / "runs", "ddp_then_solo",
                                     resume=run_dir / "epoch_0001.pt", train__batch_size=2, train__max_steps=4)
    model = fresh_method(data, "cyclegan")
    noise = noise_biases(model)
    assert_same_gradients(grads[1], dumped(dump, 0)["grads"][4], noise)
    optimizers = [load_safe(path)["optimizers"] for path in (resumed, run_dir / "last.pt")]
    assert_same_optimizer_state(*optimizers, model, noise)
    assert moved(weights(resumed), weights(run_dir / "epoch_0001.pt")) > 5e-4  # not vacuous


def test_ddp_checkpoint_resumes_mid_epoch_on_the_right_images(ddp_run, data, monkeypatch):
    """last.pt was saved after 1 of the 3 steps of epoch 2 (2 of its 6 images used). One process
    with batch 1 (a global batch of 1, not 2) goes on with the images that ranks 0 and 1 would
    have taken next, in the order of the shuffled epoch."""
    import gan_style.training.loop
    from gan_style.data.dataset import UnpairedDataset, UnpairedSampler, build_transform

    run_dir, _ = ddp_run
    batches = []

    class Recorder(gan_style.training.loop.METHODS["cyclegan"]):
        def step(self, batch, **kwargs):
            batches.append(batch["A"].clone())
            return super().step(batch, **kwargs)

    monkeypatch.setitem(gan_style.training.loop.METHODS, "cyclegan", Recorder)
    resumed = single(data, data.parent / "runs", "ddp_mid", resume=run_dir / "last.pt",
                     train__batch_size=1, train__max_steps=6)
    ckpt = load_safe(resumed)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt["world_size"]) == (1, 4, 6, 1)
    dataset = UnpairedDataset(data, build_transform("resize_and_crop", 32, 32, flip=False))
    per_rank = []
    for rank in (0, 1):
        sampler = UnpairedSampler(6, 6, seed=0, rank=rank, world_size=2)
        sampler.set_epoch(1)
        per_rank.append([dataset[key]["A"] for key in sampler])  # this rank's 3 images of epoch 2
    assert len(batches) == 2
    assert torch.equal(batches[0][0], per_rank[0][1]) and torch.equal(batches[1][0], per_rank[1][1])  # 2nd step
    assert not torch.equal(per_rank[0][1], per_rank[1][0])  # not vacuous: rank 1's 1st image differs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hung_rank_stops_the_others_within_the_timeout(data):
    """Rank 1 freezes (no exit, no error: as a stuck GPU or file system would). Without a torchrun
    agent to kill the survivors (as on another node), rank 0 must exit by itself with a one-line
    error once the process-group timeout (4 s here) has passed."""
    out, dump = data.parent / "runs_hang", data.parent / "dump_hang"
    dump.mkdir()
    env = os.environ | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
                        "OMP_NUM_THREADS": "1", TIMEOUT_ENV: "4", FAULT_ENV: "hang:2"}
    cmd = [sys.executable, str(HERE), str(dump), *overrides(data, out, "f", train__max_steps=50)]
    procs = [subprocess.Popen(cmd, env=env | {"RANK": str(r), "LOCAL_RANK": str(r)}, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        _, err = procs[0].communicate(timeout=180)  # mostly start-up time; without the timeout: forever
        assert procs[0].returncode == 4, err[-3000:]
        assert f"rank 0: lost contact with the other processes (one died, hung or was killed; {TIMEOUT_ENV}=4)" in err
        assert "Traceback" not in err
        assert procs[1].poll() is None  # the hung one is still there
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


def test_one_process_checkpoint_resumes_under_ddp_and_torchrun_restarts_after_a_crash(data, monkeypatch):
    """A one-process run stopped after step 2 (mid-epoch) is continued by 2 ranks under
    ``torchrun --max-restarts=1`` with resume=auto: their step 3 must equal one more one-process
    step. Rank 1 then dies at its 2nd step (step 4), after last.pt was saved at the end of epoch 1:
    torchrun stops rank 0, starts both again, and resume=auto goes on from step 3 to the end."""
    out = data.parent / "runs"
    start = single(data, out, "elastic", train__batch_size=2, train__max_steps=2)
    before = weights(start)
    expected, grads = single_recorded(monkeypatch, data, out, "solo3", train__batch_size=2, train__max_steps=3)
    dump = data.parent / "dump_elastic"
    proc = torchrun(dump, overrides(data, out, "elastic", resume="auto", train__max_steps=5),
                    launch=("--max-restarts=1",), env={FAULT_ENV: "exit:2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exitcode: 17" in proc.stderr  # the crash did happen
    # First attempt: every rank loaded the one-process checkpoint (or rank 0's step would differ):
    # step 3's gradients, then Adam's state, as in one process.
    first = torch.load(dump / "first_rank0.pt", weights_only=True)
    model = fresh_method(data, "cyclegan")
    noise = noise_biases(model)
    assert_same_gradients(first["grads"], grads[3], noise)
    # (expected was saved after step 3 had ended epoch 1 and decayed the LR: not the state right after the step)
    assert_same_optimizer_state(first["optimizers"], load_safe(expected)["optimizers"], model, noise, lr=False)
    assert moved(flat(first["models"]), before) > 5e-4  # not vacuous
    # Second attempt: from last.pt of step 3, so each step was trained (and logged) once.
    steps = [json.loads(line)["step"] for line in (out / "elastic" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    ckpt = load_safe(start)  # same path: last.pt was overwritten by the DDP runs
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt["world_size"]) == (1, 2, 5, 2)
    w0, w1 = flat(dumped(dump, 0, restart=1)["models"]), flat(dumped(dump, 1, restart=1)["models"])
    assert all(torch.equal(v, w1[k]) for k, v in w0.items())


def test_single_process_needs_no_process_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed("cpu") == DistEnv()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1: still no process group
    assert init_distributed("cpu") == DistEnv() and not torch.distributed.is_initialized()


def test_bad_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{TIMEOUT_ENV}='soon' is not a positive number"):
        timeout_from_env()
    monkeypatch.setenv(TIMEOUT_ENV, "90")
    assert timeout_from_env() == 90.0
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="train.device=cuda:1 cannot be used with 2 processes"):
        init_distributed("cuda:1")


def test_peer_failures_are_recognised():
    assert is_peer_failure(RuntimeError("[gloo/transport/tcp/pair.cc:545] Read error: Connection reset by peer"))
    assert is_peer_failure(torch.distributed.DistBackendError("NCCL watchdog timeout"))
    assert not is_peer_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert issubclass(RankFailure, ValueError)  # printed by the CLI as a one-line error


@pytest.mark.parametrize("method,more", [("cut", {}), ("fastcut", {}), ("cut", {"train__strength_range": "[0.1,0.9]"}),
                                         ("cut", {"train__auto_weights": "true"})],
                         ids=["cut", "fastcut", "cut-strengths", "cut-auto-weights"])
def test_cut_two_ranks_batch_1_equal_one_process_batch_2(data, monkeypatch, method, more, request):
    """CUT and FastCUT (flips, no identity NCE) under DDP: G, D and the patch sampler F get gradients
    averaged like one batch of 2 (the patch locations and flips come from streams that are identical
    on every rank). In a step D learns first, and G's gradient comes through the updated D: a first
    Adam step of D would move its near-0-gradient weights by +-lr on rounding, and 5 such weights
    change G's gradient by up to 5e-3 (measured). So here D learns by SGD, smooth in its gradient.
    With a strength range (loss-conditional training) each sample's strength comes from the sample:
    the strength-conditioned G and its per-sample NCE weights average like one batch too. With
    train.auto_weights the GAN weight comes from gradients averaged over the ranks: that of the batch."""
    extra = method_extra(method, data.parent) | {"train__max_steps": 1} | more
    name = request.node.callspec.id.replace("-", "_")
    dump = data.parent / f"dump_{name}"
    proc = torchrun(dump, overrides(data, data.parent / "runs", f"{name}_ddp", **extra), env={SGD_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [dumped(dump, rank)["grads"][1] for rank in (0, 1)]
    assert all(torch.equal(v, ranks[1][k]) for k, v in ranks[0].items())
    _, solo = single_recorded(monkeypatch, data, data.parent / "runs", f"{name}_solo", sgd_D=True,
                              train__batch_size=2, **extra)
    model = fresh_method(data, method, **more)
    assert model.nets.keys() == {"G", "D", "F"}
    assert any(".film." in k for k in ranks[0]) == ("train__strength_range" in more)
    assert ranks[0].keys() == set(param_names(model).values())
    assert_same_gradients(ranks[0], solo[1], noise_biases(model))


def test_style_two_ranks_batch_1_equal_one_process_batch_2(data, monkeypatch):
    """The style method (one generator, a frozen feature network, no discriminator) under DDP:
    G's gradient averaged over 2 ranks x 1 photo equals one process's on 2 photos."""
    extra = method_extra("style", data.parent) | {"train__max_steps": 1}
    dump = data.parent / "dump_style"
    proc = torchrun(dump, overrides(data, data.parent / "runs", "style_ddp", **extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [dumped(dump, rank)["grads"][1] for rank in (0, 1)]
    assert all(torch.equal(v, ranks[1][k]) for k, v in ranks[0].items())
    _, solo = single_recorded(monkeypatch, data, data.parent / "runs", "style_solo", train__batch_size=2, **extra)
    model = fresh_method(data, "style")
    assert model.nets.keys() == {"G"} and ranks[0].keys() == set(param_names(model).values())
    assert_same_gradients(ranks[0], solo[1], noise_biases(model))


@pytest.mark.parametrize("span", [None, "[0.1,0.9]"], ids=["unsb", "unsb-strengths"])
def test_unsb_two_ranks_batch_1_equal_one_process_batch_2(data, monkeypatch, span):
    """UNSB under DDP: G (its trainable parameters), D, E and F get gradients averaged like one batch
    of 2. Each sample's noise (the bridge's, z, the second source image) comes from the sample, the
    step index and patch locations from streams identical on every rank, and the energy's
    log-sum-exp is per image. D and E learn by SGD, as CUT's D does here: G's gradient comes
    through both after their update. (This test found PyTorch's wrong InstanceNorm gradient for one
    image with a channels_last incoming gradient: nets/layers.InstanceNorm2d.) With a strength range,
    each sample's strength (G's input, its NCE weight) comes from the sample too."""
    strengths = {"train__strength_range": span} if span else {}
    extra = method_extra("unsb", data.parent) | {"train__max_steps": 1} | strengths
    name = f"unsb{'_strength' if span else ''}"
    dump = data.parent / f"dump_{name}"
    proc = torchrun(dump, overrides(data, data.parent / "runs", f"{name}_ddp", **extra), env={SGD_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [dumped(dump, rank)["grads"][1] for rank in (0, 1)]
    assert all(torch.equal(v, ranks[1][k]) for k, v in ranks[0].items())
    _, solo = single_recorded(monkeypatch, data, data.parent / "runs", f"{name}_solo", sgd_D=True,
                              train__batch_size=2, **extra)
    model = fresh_method(data, "unsb", **strengths)
    assert model.nets.keys() == {"G", "D", "E", "F"} and any(".film." in k for k in ranks[0]) == bool(span)
    trained = {name for p, name in param_names(model).items() if p.requires_grad}
    assert ranks[0].keys() == trained and len(trained) < len(param_names(model))  # the official blocks' unused part
    # Biases before an InstanceNorm, also inside UNSB's blocks and time-conditioned D/E blocks, which
    # noise_biases (nn.Sequential only) does not see: their exact gradient is 0, what they get is
    # rounding noise; and the time projections of D/E blocks before a norm (cancelled the same way).
    cancelled = {k for k in trained if k.split(".")[0] in ("D", "E") and (".dense." in k or ".conv1.bias" in k)
                 and not k.split(".")[2] == "0"}
    cancelled |= {k for k in trained if k.startswith("G.model_res.") and ".conv_fin." in k and k.endswith(".bias")}
    assert_same_gradients(ranks[0], solo[1], noise_biases(model) | cancelled)
