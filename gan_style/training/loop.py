"""The one training loop, for every method. ``_train`` reads top to bottom: set up, restore, loop
(step, log, samples), end of epoch (LR, evaluate, save), stop. The run's state is one ``TrainState``;
the parts (build, restore, save, log, evaluate) are plain functions that take it explicitly.

Run with ``gan-style train`` (or ``python -m gan_style train``), one process per GPU under
torchrun for DDP. See README.md for the config keys.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..devices import resolve_precision
from ..config import Config, save_config
from ..data.dataset import ignore_stop_signals
from ..data.fetch import fetch_cyclegan_dataset
from ..io.intensity import Intensity
from ..io.checkpoint import FORMAT_VERSION, CheckpointError, describe_generators, load_safe, save_atomic
from ..io.checkpoint import upgrade_checkpoint
from ..methods import METHODS, Method, TrainingData, config_from_dict, generators
from ..nets import describe
from .best import BestTracker
from .distributed import DistEnv, any_rank, cleanup, from_main, init_distributed, is_peer_failure, mean_over_ranks
from .distributed import peer_failure_message
from .ema import GeneratorEMA
from .evaluation import EpochEvaluator
from .finetune import load_finetune_weights
from .inversion import inverted, panel_correlations
from .monitor import Monitor, NullMonitor

logger = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """Training ended early on purpose (signal) or by a detected failure (non-finite loss)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_resume(cfg: Config, run_dir: Path) -> Path | None:
    """The checkpoint to continue: resume=auto finds run_dir/last.pt; a new run never overwrites one."""
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
        logger.warning("%s received: finishing this step, then saving last.pt (press Ctrl-C again to stop "
                       "without saving)", signal.Signals(signum).name)


@dataclass
class Position:
    """Where training stands: what a checkpoint restores, and the step of the last save."""

    epoch: int = 0  # epochs completed
    epoch_step: int = 0  # steps done in the current epoch
    step: int = 0  # steps done in all
    saved_step: int = -1  # the step last.pt holds


@dataclass
class TrainState:
    """One run: the config, the processes, the method (networks, optimizers...), its data, the
    position, and the optional parts (EMA, best.pt, monitor, evaluation). Built by ``build``."""

    cfg: Config
    env: DistEnv
    precision: str
    run_dir: Path
    model: Method
    data: TrainingData
    steps_per_epoch: int
    pos: Position = field(default_factory=Position)
    ema: GeneratorEMA | None = None
    best: BestTracker | None = None
    monitor: Monitor | NullMonitor = field(default_factory=NullMonitor)
    monitor_state: dict = field(default_factory=dict)
    finetuned: dict[str, str] = field(default_factory=dict)
    evaluator: EpochEvaluator | None = None

    @property
    def total_epochs(self) -> int:
        return self.cfg.train.n_epochs + self.cfg.train.n_epochs_decay

    @property
    def img_per_step(self) -> int:
        return self.cfg.train.batch_size * self.env.world_size


@dataclass
class EpochClock:
    """Time spent waiting for data and in whole steps since the last log point (for time/*)."""

    data_wait: float = 0.0
    step_time: float = 0.0
    images: int = 0


def train(cfg: Config) -> Path:
    """Train; return the path of the final checkpoint. Raises TrainingStopped on signal/NaN."""
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
    # ---- setup: data, the method, fine-tuning, EMA; resume; run directory and monitoring ----
    state = build(cfg, env)
    resume = from_main(env, lambda: str(resolve_resume(cfg, state.run_dir) or ""))  # rank 0 decides
    if resume:
        restore(state, Path(resume))
    start_monitoring(state)
    loader = make_loader(state)
    pos, model = state.pos, state.model

    # ---- the loop ----
    stop = StopFlag()
    stop.install()
    window: list[torch.Tensor] = []  # per-step stat vectors since the last log point, kept on the device
    start_time, start_step = time.perf_counter(), pos.step
    try:
        while pos.epoch < state.total_epochs:
            state.data.sampler.set_epoch(pos.epoch, start=pos.epoch_step * cfg.train.batch_size)
            bar = progress_bar(state)
            clock, tick = EpochClock(), time.perf_counter()
            for batch in loader:
                clock.data_wait += time.perf_counter() - tick
                report_skipped(batch.pop("skipped"), state.monitor_state)
                log_now = is_log_point(state)
                stats = model.step(batch, measure_grads=log_now)
                if state.ema is not None:
                    state.ema.update()
                window.append(stats["vector"])
                pos.step, pos.epoch_step = pos.step + 1, pos.epoch_step + 1
                bar.update(state.img_per_step)
                clock.step_time, clock.images = clock.step_time + time.perf_counter() - tick, clock.images + state.img_per_step
                tick = time.perf_counter()
                if log_now:
                    log_point(state, window, stats, clock, bar)
                    window, clock = [], EpochClock()
                if cfg.logging.image_every and pos.step % cfg.logging.image_every == 0:
                    log_samples(state, f"step_{pos.step:07d}")
                if finished(state):
                    break
                # Under DDP all ranks must agree to stop at the same step: ask them at log steps only.
                if (log_now or not env.enabled) and any_rank(stop.signum is not None, env):
                    break
            bar.close()
            if window:  # stopped between log points: log (and check) what the window holds
                log_point(state, window, {}, clock, bar)
                window = []
            if pos.epoch_step >= state.steps_per_epoch:
                end_epoch(state)
            if any_rank(stop.signum is not None, env):
                raise stopped(state, stop.signum)
            if finished(state):
                if pos.saved_step != pos.step:
                    save(state, state.run_dir / "last.pt")
                break
        state.monitor.log_artifacts({"checkpoint": state.run_dir / "last.pt"})  # only if logging.log_artifacts
    finally:
        stop.restore()
        state.monitor.finish()  # marks the W&B run failed when an exception is on its way out
    report_done(state, time.perf_counter() - start_time, (pos.step - start_step) * state.img_per_step)
    return state.run_dir / "last.pt"


# ---------------------------------------------------------------- the parts, in the order they run


def build(cfg: Config, env: DistEnv) -> TrainState:
    """Device settings and seeds, the data (fetched by rank 0 if missing), the method, fine-tuning
    (a fresh run's generators from given weights), EMA and best.pt tracking."""
    t = cfg.train
    precision = resolve_precision(t.precision, env.device)
    random.seed(t.seed + env.rank)
    np.random.seed(t.seed + env.rank)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if cfg.data.dataset:  # rank 0 fetches (maybe for minutes); a failure there stops every rank
        from_main(env, lambda: fetch_cyclegan_dataset(cfg.data.dataset, Path(cfg.data.root), cfg.data.url) and None,
                  long=True)
    method = METHODS[cfg.method]
    data = method.make_data(cfg, env.rank, env.world_size)
    for domain, intensity in data.intensity.items():  # scientific data: say how its units are read
        if intensity is not None and env.is_main:
            logger.info("intensity %s: %s", domain, intensity.describe())
    steps_per_epoch = len(data.sampler.shard) // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"train.batch_size={t.batch_size} x {env.world_size} process(es) is larger than the dataset "
            f"({len(data.dataset)} images per epoch): lower train.batch_size"
        )
    model = method(cfg, env.device, precision, env.world_size, env.rank)
    model.fit_data(data)  # (a resumed run's checkpoint restores what it read)
    state = TrainState(cfg, env, precision, Path(cfg.out_dir) / cfg.name, model, data, steps_per_epoch)
    if any(cfg.finetune.model_dump().values()):  # (a resumed run overwrites these weights)
        from_main(env, lambda: prefetch_weights(cfg), long=True)  # rank 0 downloads official:NAME once
        state.finetuned = load_finetune_weights(cfg, model.nets, model.generator_map)
    if t.ema:
        state.ema = GeneratorEMA({name: model.nets[name] for name in model.generator_map.values()}, t.ema)
    if cfg.eval.best:
        state.best = BestTracker(cfg.eval.best)
    return state


def make_loader(state: TrainState) -> torch.utils.data.DataLoader:
    workers = state.cfg.data.num_workers
    return torch.utils.data.DataLoader(
        state.data.dataset,
        batch_size=state.cfg.train.batch_size,
        sampler=state.data.sampler,
        num_workers=workers,
        pin_memory=state.env.device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,  # the sampler runs in this process: workers can persist
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=ignore_stop_signals,  # Ctrl-C / SIGTERM to the process group: the main process saves first
    )


def restore(state: TrainState, path: Path) -> None:
    """Continue exactly from ``path``: rank 0 reads the file and sends it to every rank."""
    cfg, env = state.cfg, state.env
    ckpt = from_main(env, lambda: load_safe(path, map_location="cpu"))
    try:
        ckpt = upgrade_checkpoint(ckpt if isinstance(ckpt, dict) else {})
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    trained = ckpt.get("method") or ckpt.get("config", {}).get("method")
    if trained != cfg.method:
        raise CheckpointError(f"{path}: a {trained} checkpoint, but this config trains method={cfg.method}: "
                              f"resume it with method={trained}, or start a new run (name=...)")
    try:
        state.model.load_state_dict(ckpt)
    except (RuntimeError, KeyError, ValueError) as e:
        saved = config_from_dict(ckpt["config"], str(path)).model
        raise CheckpointError(
            f"{path}: does not match this config's model ({cfg.model.model_dump()}) "
            f"but was trained with {saved.model_dump()}: set the same model.* keys ({str(e).splitlines()[0]})"
        ) from None
    pos = state.pos
    pos.epoch, pos.epoch_step, pos.step = ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]
    pos.saved_step = pos.step
    # The position in the epoch, in samples, carries over to another number of processes or batch size.
    saved_batch = ckpt["config"]["train"]["batch_size"] * ckpt.get("world_size", 1)
    pos.epoch_step = pos.epoch_step * saved_batch // state.img_per_step
    if pos.epoch_step >= state.steps_per_epoch:  # saved at the very end of an epoch on another world size
        pos.epoch, pos.epoch_step = pos.epoch + 1, 0
    set_rng_state(ckpt["rng"])
    state.monitor_state = ckpt.get("monitor", {})
    state.finetuned = ckpt.get("finetune", {})
    if state.ema is not None and "ema" in ckpt:  # else (EMA switched on later) it starts from the current weights
        state.ema.load_state_dict(ckpt["ema"])
    if state.best is not None and "best" in ckpt:
        state.best.load_state_dict(ckpt["best"])
    keep_recorded_intensity(state, ckpt.get("intensity") or {})


def intensity_record(state: TrainState) -> dict[str, dict | None]:
    """Domain -> its resolved intensity (scientific data), or {} for 8-bit RGB runs."""
    return {d: i.to_dict() if i is not None else None for d, i in state.data.intensity.items()}


def keep_recorded_intensity(state: TrainState, recorded: dict[str, dict | None]) -> None:
    """A resumed run goes on with the windows it started with (per-dataset percentiles are computed once)."""
    for domain, saved in recorded.items():
        now = state.data.intensity.get(domain)
        if saved is not None and now is not None and Intensity.from_dict(saved) != now:
            logger.warning("intensity %s: the data now gives %s; the run keeps its recorded %s", domain,
                           now.describe(), Intensity.from_dict(saved).describe())
            state.data.intensity[domain] = Intensity.from_dict(saved)
            state.data.dataset.intensities[domain] = state.data.intensity[domain]


def start_monitoring(state: TrainState) -> None:
    """Rank 0: the run directory, its config.yaml, the monitor (the same W&B run on resume) and
    the per-epoch evaluator (eval.every, on a fixed subset)."""
    cfg, env = state.cfg, state.env
    if not env.is_main:
        return
    state.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, state.run_dir / "config.yaml")
    state.monitor = Monitor(state.run_dir, cfg.logging, name=cfg.name, state=state.monitor_state, step=state.pos.step)
    state.monitor.start(run_info(state) | {"finetune": state.finetuned})
    if cfg.eval.every and state.model.domain_evaluation:
        state.evaluator = EpochEvaluator(cfg.data.root, cfg.eval.n_images, cfg.data.crop_size, env.device,
                                         cfg.eval.fid)


def progress_bar(state: TrainState) -> tqdm:
    pos = state.pos
    return tqdm(total=state.steps_per_epoch * state.img_per_step, initial=pos.epoch_step * state.img_per_step,
                unit="img", desc=f"epoch {pos.epoch + 1}/{state.total_epochs}", disable=not state.env.is_main,
                leave=False, dynamic_ncols=True)


def is_log_point(state: TrainState) -> bool:
    """Log (and measure gradient norms) every ``logging.log_every`` steps, at the last step of an
    epoch and at the last step of the run: every log point logs the same keys."""
    pos, max_steps = state.pos, state.cfg.train.max_steps
    return ((pos.step + 1) % state.cfg.logging.log_every == 0 or pos.epoch_step + 1 == state.steps_per_epoch
            or (max_steps is not None and pos.step + 1 >= max_steps))


def finished(state: TrainState) -> bool:
    return state.cfg.train.max_steps is not None and state.pos.step >= state.cfg.train.max_steps


def log_point(state: TrainState, window: list[torch.Tensor], stats: dict[str, torch.Tensor], clock: EpochClock,
              bar: tqdm) -> None:
    """Average the window's statistics over steps and ranks (the one host sync; stops on a
    non-finite loss), add gradient norms (when measured), learning rates, timing and memory."""
    pos, model = state.pos, state.model
    scalars = check_and_average(window, pos.step, model.stat_names, state.env)
    scalars |= {k: float(v) for k, v in stats.items() if k != "vector"}
    scalars |= model.learning_rates()
    scalars |= {"epoch": pos.epoch + pos.epoch_step / state.steps_per_epoch,
                "time/img_per_s": clock.images / max(clock.step_time, 1e-9),
                "time/data_wait_frac": clock.data_wait / max(clock.step_time, 1e-9)}
    if state.env.device.type == "cuda":
        scalars["mem/peak_gb"] = torch.cuda.max_memory_allocated(state.env.device) / 2**30
    if model.scaler.is_enabled():
        scalars["amp/grad_scale"] = model.scaler.get_scale()
    state.monitor.log(pos.step, scalars)
    bar.set_postfix({k.split("/")[1]: f"{scalars[k]:.3f}" for k in model.progress_keys if k in scalars})


def averaged(state: TrainState) -> contextlib.AbstractContextManager:
    """Samples and evaluation use the EMA weights when train.ema is on."""
    return state.ema.applied() if state.ema is not None else contextlib.nullcontext()


def log_samples(state: TrainState, tag: str) -> None:
    fixed = state.data.fixed
    if not state.env.is_main or any(x.numel() == 0 for x in fixed.values()):
        return
    with averaged(state):
        panels = state.model.sample_panels(fixed)
    correlations = panel_correlations(panels)  # logged with the panels on W&B
    state.monitor.log_panels(state.pos.step, tag, panels, state.model.panel_columns, correlations)
    check_inversion(state, correlations)


def check_inversion(state: TrainState, correlations: dict[str, float]) -> None:
    """Warn (log and W&B alert) when a panel's translations anti-correlate with their inputs."""
    names = inverted(correlations)
    # Scientific data only (photos' colours may swap early in a run), and not untrained networks.
    if names and state.pos.step > 0 and any(i is not None for i in state.data.intensity.values()):
        values = ", ".join(f"{name} {correlations['panels/' + name + '_correlation']:+.2f}" for name in names)
        text = (f"step {state.pos.step}: translated panels anti-correlate with their inputs ({values}): the "
                "generator may have learned an inverted map; see docs/science.md, 'Learning that holds'")
        logger.warning(text)
        state.monitor.alert("inverted translation", text)


def evaluate(state: TrainState) -> None:
    """eval.every: the metrics of the generators (EMA weights if on); best.pt when eval.best improves."""
    with averaged(state):
        metrics = state.model.evaluate(state.data.fixed)  # the method's own metrics (most have none)
        if metrics:
            state.monitor.log(state.pos.step, metrics)
            tqdm.write("eval: " + " ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in metrics.items()))
        if state.evaluator is not None:  # translate each direction's source images, compare with the target's
            metrics |= state.evaluator.log(generators(state.model), state.model.autocast, state.monitor, state.pos.step)
    if state.best is not None:
        if state.best.improved(metrics):
            save(state, state.run_dir / "best.pt")
        state.monitor.log(state.pos.step, {f"eval/best_{state.best.metric}": state.best.best})


def end_epoch(state: TrainState) -> None:
    """Decay the learning rates, evaluate (best.pt), save last.pt (and epoch_NNNN.pt), log samples."""
    pos, cfg = state.pos, state.cfg
    pos.epoch, pos.epoch_step = pos.epoch + 1, 0
    state.model.end_epoch()
    if cfg.eval.every and state.env.is_main and pos.epoch % cfg.eval.every == 0:
        evaluate(state)  # before last.pt, so that last.pt holds the best value it may have set
    save(state, state.run_dir / "last.pt")
    if cfg.checkpoint.save_every and pos.epoch % cfg.checkpoint.save_every == 0:
        save(state, state.run_dir / f"epoch_{pos.epoch:04d}.pt")
    log_samples(state, f"epoch_{pos.epoch:04d}")


def save(state: TrainState, path: Path) -> None:
    """Rank 0 writes the whole training state, atomically; the checkpoint describes its generators."""
    if not state.env.is_main:
        return
    cfg, pos, model = state.cfg, state.pos, state.model
    kinds = {name: describe(model.nets[name]) for name in model.generator_map.values()}
    intensity = intensity_record(state)
    ckpt = model.state_dict() | {
        "format_version": FORMAT_VERSION,
        "gan_style_version": __version__,
        "method": cfg.method,
        "generators": describe_generators(model.generator_map, model.domains, kinds, intensity, model.trained_at),
        "intensity": intensity,
        "epoch": pos.epoch,
        "epoch_step": pos.epoch_step,
        "step": pos.step,
        "rng": rng_state(),
        "config": cfg.to_dict(),
        "world_size": state.env.world_size,
        "monitor": state.monitor_state | state.monitor.state(),
        "finetune": state.finetuned,
    }
    if state.ema is not None:
        ckpt["ema"] = state.ema.state_dict()
    if state.best is not None:
        ckpt["best"] = state.best.state_dict()
    save_atomic(ckpt, path)
    if path.name == "last.pt":
        pos.saved_step = pos.step


def stopped(state: TrainState, signum: int | None) -> TrainingStopped:
    """A signal (or a peer's): save last.pt unless it holds this step, and say how to continue."""
    last = state.run_dir / "last.pt"
    if state.pos.saved_step != state.pos.step:
        save(state, last)
    name = signal.Signals(signum).name if signum else "stop"
    return TrainingStopped(f"{name}: saved {last} at epoch {state.pos.epoch + 1}, step {state.pos.step}; "
                           f"continue with resume={last} (or resume=auto)", 128 + (signum or 15))


def report_done(state: TrainState, elapsed: float, n_img: int) -> None:
    if state.env.is_main:
        skipped = len(state.monitor_state.get("skipped", ()))
        print(f"done: {state.cfg.name}: epoch {state.pos.epoch}/{state.total_epochs}, {state.pos.step} steps, "
              f"{n_img} images in {elapsed:.0f} s ({n_img / max(elapsed, 1e-9):.1f} img/s); {skipped} unreadable "
              f"file(s) skipped; checkpoint {state.run_dir / 'last.pt'}", flush=True)


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
            logger.warning("skipped unreadable image: %s", message)


def run_info(state: TrainState) -> dict:
    cfg, env, model = state.cfg, state.env, state.model
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    return {
        "config": cfg.to_dict(),
        "parameters": {name: count(net) for name, net in model.nets.items()},
        "generators": dict(model.generator_map),
        "dataset": {"size": len(state.data.dataset), "steps_per_epoch": state.steps_per_epoch}
        | {f"{name}": len(paths) for name, paths in getattr(state.data.dataset, "paths", {}).items()},
        "versions": {"gan_style": __version__, "torch": torch.__version__, "cuda": torch.version.cuda,
                     "python": sys.version.split()[0], "git_commit": git_commit()},
        "device": str(env.device) + (f" ({torch.cuda.get_device_name(env.device)})" if env.device.type == "cuda" else ""),
        "precision": state.precision,
        "world_size": env.world_size,
        "global_batch": state.img_per_step,
    } | ({"intensity": intensity_record(state)} if state.data.intensity else {})


def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(__file__))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
