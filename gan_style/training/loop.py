"""The one training loop, for every method. Reads top to bottom: setup, data, model, resume, loop, save.

Run with ``gan-style train`` (or ``python -m gan_style train``), one process per GPU under
torchrun for DDP. See README.md for the config keys.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..io.checkpoint import FORMAT_VERSION, CheckpointError, load_safe, save_atomic
from ..config import Config, config_from_dict, save_config
from ..methods import METHODS
from ..data.dataset import UnpairedDataset, UnpairedSampler, build_transform, ignore_stop_signals, load_fixed_images
from .distributed import DistEnv, any_rank, cleanup, from_main, init_distributed, is_peer_failure, mean_over_ranks
from .distributed import peer_failure_message
from ..data.fetch import fetch_cyclegan_dataset
from .best import BestTracker
from .ema import GeneratorEMA
from .finetune import load_finetune_weights
from .monitor import Monitor, NullMonitor


class TrainingStopped(RuntimeError):
    """Training ended early on purpose (signal) or by a detected failure (non-finite loss)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "fp16" and device.type == "cpu":
        raise ValueError("train.precision=fp16 needs a CUDA device: use bf16 or fp32 on the CPU")
    return name


def resolve_resume(cfg: Config, run_dir: Path) -> Path | None:
    last = run_dir / "last.pt"
    if cfg.resume == "auto":
        return last if last.is_file() else None
    if cfg.resume:
        return Path(cfg.resume)
    if last.is_file():
        raise ValueError(
            f"{run_dir} already holds a run (last.pt): pass resume=auto to continue it, "
            "or name=<another name> to start a new one"
        )
    return None


def rng_state() -> dict:
    # Plain tensors and lists only, so the checkpoint loads with weights_only=True.
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])  # saved on a bigger machine
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))


class StopFlag:
    """SIGINT / SIGTERM ask the loop to finish the current step, save and exit. A second
    Ctrl-C stops at once (the last saved checkpoint is left as it was)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step, then saving last.pt "
              "(press Ctrl-C again to stop without saving)", file=sys.stderr, flush=True)


def train(cfg: Config) -> Path:
    """Train; return the path of the final checkpoint. Raises TrainingStopped on signal/NaN."""
    # ---- setup: processes, device, precision, seeds ----
    env: DistEnv = init_distributed(cfg.train.device)
    try:
        return _train(cfg, env)
    except RuntimeError as e:
        if env.enabled and is_peer_failure(e):  # another rank died or hung: one line, not a traceback
            raise TrainingStopped(peer_failure_message(e, env), 4) from None
        raise
    finally:
        cleanup(env)


def _train(cfg: Config, env: DistEnv) -> Path:
    t = cfg.train
    precision = resolve_precision(t.precision, env.device)
    run_dir = Path(cfg.out_dir) / cfg.name
    # Rank 0 decides (other nodes may not see run_dir) and tells the others, as a string.
    resume = from_main(env, lambda: str(resolve_resume(cfg, run_dir) or ""))
    resume_path = Path(resume) if resume else None
    random.seed(t.seed + env.rank)
    np.random.seed(t.seed + env.rank)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # ---- data: fetched by rank 0 if missing, then a sampler that shards A over ranks ----
    root = Path(cfg.data.root)
    if cfg.data.dataset:  # rank 0 fetches (maybe for minutes); a failure there stops every rank
        from_main(env, lambda: fetch_cyclegan_dataset(cfg.data.dataset, root, cfg.data.url) and None, long=True)
    transform = build_transform(cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size, cfg.data.flip)
    dataset = UnpairedDataset(root, transform, cfg.data.max_dataset_size)
    sampler = UnpairedSampler(len(dataset.paths["A"]), len(dataset.paths["B"]), t.seed, env.rank, env.world_size)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=env.device.type == "cuda",
        drop_last=True,
        persistent_workers=cfg.data.num_workers > 0,  # the sampler runs in this process: workers can persist
        prefetch_factor=4 if cfg.data.num_workers > 0 else None,
        worker_init_fn=ignore_stop_signals,  # Ctrl-C / SIGTERM to the process group: the main process saves first
    )
    steps_per_epoch = len(sampler.shard) // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"train.batch_size={t.batch_size} x {env.world_size} process(es) is larger than the dataset "
            f"({len(dataset)} images per epoch): lower train.batch_size"
        )
    split = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
    fixed = {d: load_fixed_images(root / f"{split}{d}", cfg.logging.n_samples, cfg.data.crop_size) for d in "AB"}

    # ---- the method's training state: networks, optimizers, schedulers, scaler, pools / random streams ----
    model = METHODS[cfg.method](cfg, env.device, precision, env.world_size, env.rank)
    total_epochs = t.n_epochs + t.n_epochs_decay
    epoch, epoch_step, step = 0, 0, 0
    monitor_state: dict = {}
    # ---- fine-tuning (a fresh run's generators from given weights), EMA, best.pt ----
    finetuned: dict[str, str] = {}
    if resume_path is None and any(cfg.finetune.model_dump().values()):
        from_main(env, lambda: prefetch_weights(cfg), long=True)  # rank 0 downloads official:NAME once
        finetuned = load_finetune_weights(cfg, model.nets, getattr(model, "direction", None))  # CUT: its one way
    ema = GeneratorEMA({n: model.nets[n] for n in model.generator_names}, t.ema) if t.ema else None
    best = BestTracker(cfg.eval.best) if cfg.eval.best else None

    # ---- resume: rank 0 reads the file and sends it to every rank; exact continuation ----
    if resume_path is not None:
        ckpt = from_main(env, lambda: load_safe(resume_path, map_location="cpu"))  # read by rank 0, sent to all
        if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{resume_path}: not a gan_style training checkpoint (format {FORMAT_VERSION})")
        trained = ckpt.get("config", {}).get("method", "cyclegan")
        if trained != cfg.method:
            raise CheckpointError(f"{resume_path}: a {trained} checkpoint, but this config trains method={cfg.method}: "
                                  f"resume it with method={trained}, or start a new run (name=...)")
        try:
            model.load_state_dict(ckpt)
        except (RuntimeError, KeyError, ValueError) as e:
            saved = config_from_dict(ckpt["config"]).model
            raise CheckpointError(
                f"{resume_path}: does not match this config's model ({cfg.model.model_dump()}) "
                f"but was trained with {saved.model_dump()}: set the same model.* keys ({str(e).splitlines()[0]})"
            ) from None
        epoch, epoch_step, step = ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]
        # The position in the epoch, in samples, carries over to another number of processes or batch size.
        saved_batch = ckpt["config"]["train"]["batch_size"] * ckpt.get("world_size", 1)
        epoch_step = epoch_step * saved_batch // (t.batch_size * env.world_size)
        set_rng_state(ckpt["rng"])
        monitor_state = ckpt.get("monitor", {})
        finetuned = ckpt.get("finetune", {})
        if ema is not None and "ema" in ckpt:  # else (EMA switched on later) it starts from the current weights
            ema.load_state_dict(ckpt["ema"])
        if best is not None and "best" in ckpt:
            best.load_state_dict(ckpt["best"])
        if epoch_step >= steps_per_epoch:  # saved at the very end of an epoch on another world size
            epoch, epoch_step = epoch + 1, 0

    # ---- run directory, monitoring (rank 0 only) ----
    monitor = NullMonitor()
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        monitor = Monitor(run_dir, cfg.logging, name=cfg.name, state=monitor_state, step=step)  # same W&B run on resume
        monitor.start(run_info(cfg, model, dataset, env, precision, steps_per_epoch) | {"finetune": finetuned})
    # ---- per-epoch evaluation (eval.every): rank 0, on a fixed subset, see metrics/training.py ----
    evaluator = None
    if env.is_main and cfg.eval.every:
        from .evaluation import EpochEvaluator

        evaluator = EpochEvaluator(root, cfg.eval.n_images, cfg.data.crop_size, env.device, cfg.eval.fid)

    def save(path: Path) -> None:
        if not env.is_main:
            return
        state = model.state_dict() | {
            "format_version": FORMAT_VERSION,
            "gan_style_version": __version__,
            "epoch": epoch,
            "epoch_step": epoch_step,
            "step": step,
            "rng": rng_state(),
            "config": cfg.to_dict(),
            "world_size": env.world_size,
            "monitor": monitor_state | monitor.state(),
            "finetune": finetuned,
        }
        if ema is not None:
            state["ema"] = ema.state_dict()
        if best is not None:
            state["best"] = best.state_dict()
        save_atomic(state, path)

    def averaged() -> contextlib.AbstractContextManager:
        """Samples and evaluation use the EMA weights when train.ema is on."""
        return ema.applied() if ema is not None else contextlib.nullcontext()

    def log_samples(tag: str) -> None:
        if not env.is_main or fixed["A"].numel() == 0 or fixed["B"].numel() == 0:
            return
        with averaged():
            panels = model.sample_panels(fixed["A"], fixed["B"])
        monitor.log_panels(step, tag, panels, model.panel_columns)

    def evaluate() -> None:
        with averaged():
            metrics = evaluator.log(model.generators(), model.autocast, monitor, step)
        if best is not None:
            if best.improved(metrics):
                save(run_dir / "best.pt")
            monitor.log(step, {f"eval/best_{best.metric}": best.best})

    # ---- the loop ----
    stop = StopFlag()
    stop.install()
    window: list[torch.Tensor] = []  # per-step stat vectors since the last log, kept on the device
    start_time, start_step = time.perf_counter(), step
    img_per_step = t.batch_size * env.world_size
    saved_step = -1
    try:
        while epoch < total_epochs:
            sampler.set_epoch(epoch, start=epoch_step * t.batch_size)
            bar = tqdm(total=steps_per_epoch * img_per_step, initial=epoch_step * img_per_step, unit="img",
                       desc=f"epoch {epoch + 1}/{total_epochs}", disable=not env.is_main, leave=False, dynamic_ncols=True)
            tick, data_wait, step_time = time.perf_counter(), 0.0, 0.0
            for batch in loader:
                data_wait += time.perf_counter() - tick
                report_skipped(batch["skipped"], monitor_state)
                log_now = (step + 1) % cfg.logging.log_every == 0
                stats = model.step(batch["A"], batch["B"], measure_grads=log_now)
                if ema is not None:
                    ema.update()
                window.append(stats["vector"])
                step, epoch_step = step + 1, epoch_step + 1
                bar.update(img_per_step)
                step_time += time.perf_counter() - tick
                tick = time.perf_counter()
                if log_now:
                    scalars = check_and_average(window, step, model.stat_names, env)  # the one host sync per log
                    scalars |= {k: float(v) for k, v in stats.items() if k != "vector"}
                    scalars |= model.learning_rates()
                    scalars |= {"epoch": epoch + epoch_step / steps_per_epoch,
                                "time/img_per_s": bar.format_dict["rate"] or 0.0,
                                "time/data_wait_frac": data_wait / max(step_time, 1e-9)}
                    if env.device.type == "cuda":
                        scalars["mem/peak_gb"] = torch.cuda.max_memory_allocated(env.device) / 2**30
                    if model.scaler.is_enabled():
                        scalars["amp/grad_scale"] = model.scaler.get_scale()
                    monitor.log(step, scalars)
                    bar.set_postfix({k.split("/")[1]: f"{scalars[k]:.3f}" for k in model.progress_keys})
                    window = []
                if cfg.logging.image_every and step % cfg.logging.image_every == 0:
                    log_samples(f"step_{step:07d}")
                if t.max_steps and step >= t.max_steps:
                    break
                # Under DDP all ranks must agree to stop at the same step: ask them at log steps only.
                if (log_now or not env.enabled) and any_rank(stop.signum is not None, env):
                    break
            bar.close()
            # The steps since the last log (an epoch, or a run, shorter than log_every) are logged too,
            # at the step they end; and checked: never save non-finite weights.
            partial = check_and_average(window, step, model.stat_names, env)
            if partial:
                monitor.log(step, partial | model.learning_rates() | {"epoch": epoch + epoch_step / steps_per_epoch})
            window = []
            if epoch_step >= steps_per_epoch:  # ---- end of epoch: decay LR, evaluate (best.pt), save, samples ----
                epoch, epoch_step = epoch + 1, 0
                model.end_epoch()
                if evaluator is not None and epoch % cfg.eval.every == 0:
                    evaluate()  # before last.pt, so that last.pt holds the best value it may have set
                save(run_dir / "last.pt")
                saved_step = step
                if cfg.checkpoint.save_every and epoch % cfg.checkpoint.save_every == 0:
                    save(run_dir / f"epoch_{epoch:04d}.pt")
                log_samples(f"epoch_{epoch:04d}")
            if any_rank(stop.signum is not None, env):
                if saved_step != step:
                    save(run_dir / "last.pt")
                name = signal.Signals(stop.signum).name if stop.signum else "stop"
                raise TrainingStopped(
                    f"{name}: saved {run_dir / 'last.pt'} at epoch {epoch + 1}, step {step}; "
                    f"continue with resume={run_dir / 'last.pt'} (or resume=auto)", 128 + (stop.signum or 15))
            if t.max_steps and step >= t.max_steps:
                if saved_step != step:
                    save(run_dir / "last.pt")
                break
        monitor.log_artifacts({"checkpoint": run_dir / "last.pt"})  # only if logging.log_artifacts
    finally:
        stop.restore()
        monitor.finish()  # marks the W&B run failed when an exception is on its way out
    elapsed = time.perf_counter() - start_time
    n_img = (step - start_step) * img_per_step
    if env.is_main:
        skipped = len(monitor_state.get("skipped", ()))
        print(f"done: {cfg.name}: epoch {epoch}/{total_epochs}, {step} steps, {n_img} images in {elapsed:.0f} s "
              f"({n_img / max(elapsed, 1e-9):.1f} img/s); {skipped} unreadable file(s) skipped; "
              f"checkpoint {run_dir / 'last.pt'}", flush=True)
    return run_dir / "last.pt"


def check_and_average(window: list[torch.Tensor], step: int, names: tuple[str, ...],
                      env: DistEnv = DistEnv()) -> dict[str, float]:
    """Mean of each statistic over the window (and the ranks); stop with a message naming the
    loss and step at the first non-finite value (before anything is saved), on every rank."""
    if not window:
        return {}
    values = torch.stack(window).cpu()  # (steps, len(names))
    bad = ~torch.isfinite(values)
    # Under DDP one all-reduce gives the mean over ranks and whether any rank saw a non-finite value.
    summary = mean_over_ranks(torch.cat([values.mean(0), bad.any().float().view(1)]), env)
    if summary[-1] > 0 and not bad.any():
        raise TrainingStopped(f"a loss became non-finite on another rank by step {step}: training stopped and the "
                              "last good checkpoint was left intact; try train.precision=fp32 or a lower train.lr", 3)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        bad_step = step - len(window) + row + 1
        raise TrainingStopped(
            f"{names[col]} became {values[row, col].item()} at step {bad_step}: training stopped and the last "
            "good checkpoint was left intact; try train.precision=fp32 or a lower train.lr", 3)
    return dict(zip(names, summary[:-1].tolist()))


def prefetch_weights(cfg: Config) -> None:
    """Download the official:NAME weights of ``finetune.*`` into the cache (rank 0, before the others read)."""
    from ..inference.weights import resolve_path

    for spec in cfg.finetune.model_dump().values():
        if spec is not None:
            resolve_path(spec)


def report_skipped(skipped: list[str], monitor_state: dict) -> None:
    seen = monitor_state.setdefault("skipped", [])
    for message in filter(None, "\n".join(skipped).split("\n")):
        if message not in seen:
            seen.append(message)
            tqdm.write(f"warning: skipped unreadable image: {message}", file=sys.stderr)


def run_info(cfg: Config, model, dataset: UnpairedDataset, env: DistEnv, precision: str, steps: int) -> dict:
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    return {
        "config": cfg.to_dict(),
        "parameters": {name: count(net) for name, net in model.nets.items()},
        "dataset": {"A": len(dataset.paths["A"]), "B": len(dataset.paths["B"]), "steps_per_epoch": steps},
        "versions": {"gan_style": __version__, "torch": torch.__version__, "cuda": torch.version.cuda,
                     "python": sys.version.split()[0], "git_commit": git_commit()},
        "device": str(env.device) + (f" ({torch.cuda.get_device_name(env.device)})" if env.device.type == "cuda" else ""),
        "precision": precision,
        "world_size": env.world_size,
        "global_batch": cfg.train.batch_size * env.world_size,
    }


def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(__file__))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
