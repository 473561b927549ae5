"""``gan-style bench`` (also ``make bench`` and ``python -m gan_style.bench``): how fast we train and translate.

Three sections, each printed as a table and written to one JSON file with the machine, the
versions and the settings (default ``bench_results/bench_<device>_<time>.json``):

- train: seconds per iteration and images/s after warm-up, peak memory, FLOPs per iteration
  (``torch.utils.flop_counter``), achieved TFLOP/s and the fraction of the device's peak. By
  default a *ladder*: the reference implementation's step (fp32, NCHW, eager, batch 1), then our
  step, then one change at a time (channels_last, bf16/fp16, torch.compile), then larger batches
  with the fastest settings. ``--grid`` measures every combination instead.
- data: the input pipeline alone (decode + albumentations, as in training), images/s for each
  number of DataLoader workers, and the decoders compared. Only when albumentations is
  importable: the training and translation sections use synthetic tensors and never import it.
- translate: ``gan_style.inference`` images/s at given sizes and precisions, and the time and
  peak memory of a large image translated in tiles and whole.

Presets: ``cpu`` (a small model at 64 px: a few minutes on a laptop) and ``gpu`` (the paper's
256 px model). Every preset value can be overridden by an option.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import __version__
from ..io.atomic import write_atomic
from ..config import Config, ConfigError, config_from_dict, load_config
from ..methods.cyclegan import STAT_NAMES, CycleGAN, set_requires_grad
from ..methods.losses import gan_loss

# Option defaults per preset. "auto" picks gpu when CUDA is available.
PRESETS = {
    "cpu": dict(
        size=64,
        ngf=32,
        ndf=32,
        n_blocks=9,
        precisions="bf16",
        channels_last="on",
        compile="off",
        batch_sizes="4",
        warmup=2,
        iters=3,
        repeats=3,
        translate_sizes="256,1024",
        tiled="1000x750",
        tile=256,
        workers="0,1,2",
        data_images=48,
    ),
    "gpu": dict(
        size=256,
        ngf=64,
        ndf=64,
        n_blocks=9,
        precisions="bf16,fp16",
        channels_last="on",
        compile="on",
        batch_sizes="4,8,16",
        warmup=5,
        iters=20,
        repeats=3,
        translate_sizes="256,1024",
        tiled="4000x3000",
        tile=1024,
        workers="0,2,4,8",
        data_images=200,
    ),
}

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets: (name part, bf16/fp16, tf32).
# fp32 runs use the TF32 figure: cuDNN convolutions use TF32 by default. First match wins.
GPU_PEAKS = (("H100 PCIe", 756.0, 378.0), ("H100", 989.4, 494.7), ("H200", 989.4, 494.7), ("A100", 312.0, 156.0))

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------- the reference's step (baseline)


class ReferenceStep:
    """One iteration exactly as the reference implementation computes it, on a ``CycleGAN``'s
    networks and pools: six separate generator passes, each discriminator's loss backpropagated
    separately, PyTorch's default Adam, fp32, no autocast. The baseline of the benchmark and
    the plain path that the tests compare our optimised ``CycleGAN.step`` against."""

    def __init__(self, model: CycleGAN) -> None:
        t = model.cfg.train
        self.model, self.t = model, t
        self.opt_G = torch.optim.Adam(
            [*model.G_A.parameters(), *model.G_B.parameters()], lr=t.lr, betas=(t.beta1, t.beta2)
        )
        self.opt_D = torch.optim.Adam(
            [*model.D_A.parameters(), *model.D_B.parameters()], lr=t.lr, betas=(t.beta1, t.beta2)
        )

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        m, t = self.model, self.t
        G_A, G_B, D_A, D_B = m.G_A, m.G_B, m.D_A, m.D_B
        real_A, real_B = real_A.to(m.device), real_B.to(m.device)
        set_requires_grad([D_A, D_B], False)
        self.opt_G.zero_grad()
        fake_B, fake_A = G_A(real_A), G_B(real_B)
        rec_A, rec_B = G_B(fake_B), G_A(fake_A)
        idt_w = t.lambda_identity
        loss_idt_A = (
            F.l1_loss(G_A(real_B), real_B) * t.lambda_B * idt_w if idt_w > 0 else torch.zeros((), device=m.device)
        )
        loss_idt_B = (
            F.l1_loss(G_B(real_A), real_A) * t.lambda_A * idt_w if idt_w > 0 else torch.zeros((), device=m.device)
        )
        loss_G_A = gan_loss(D_A(fake_B), True, t.gan_mode)
        loss_G_B = gan_loss(D_B(fake_A), True, t.gan_mode)
        loss_cycle_A = F.l1_loss(rec_A, real_A) * t.lambda_A
        loss_cycle_B = F.l1_loss(rec_B, real_B) * t.lambda_B
        (loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B).backward()
        self.opt_G.step()
        set_requires_grad([D_A, D_B], True)
        self.opt_D.zero_grad()
        pred_A_real, pred_A_fake = D_A(real_B), D_A(m.pool_A.query(fake_B.detach()))
        loss_D_A = 0.5 * (gan_loss(pred_A_real, True, t.gan_mode) + gan_loss(pred_A_fake, False, t.gan_mode))
        loss_D_A.backward()
        pred_B_real, pred_B_fake = D_B(real_A), D_B(m.pool_B.query(fake_A.detach()))
        loss_D_B = 0.5 * (gan_loss(pred_B_real, True, t.gan_mode) + gan_loss(pred_B_fake, False, t.gan_mode))
        loss_D_B.backward()
        self.opt_D.step()
        losses = (loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B, loss_D_A, loss_D_B)
        outputs = (pred_A_real, pred_A_fake, pred_B_real, pred_B_fake)
        return {"vector": torch.stack([x.detach() for x in losses] + [p.detach().mean() for p in outputs])}


assert len(STAT_NAMES) == 12  # ReferenceStep's vector follows CycleGAN.step's order


# ---------------------------------------------------------------- machine, timing, memory


def machine_info(device: torch.device) -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else platform.processor() or "unknown"
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "device": str(device),
        "platform": platform.platform(),
        "versions": {
            "gan_style": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        },
        "git_commit": _git_commit(),
    }
    for name in ("torchvision", "albumentations", "cv2"):
        with contextlib.suppress(ImportError):
            info["versions"][name] = __import__(name).__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count,
        }
    return info


def _git_commit() -> str | None:
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: writing 5 to clear_refs resets the process's peak resident size (VmHWM)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gb(device: torch.device) -> float | None:
    """CUDA: peak allocated by tensors. CPU: the process's peak resident size (includes Python, libraries)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    with contextlib.suppress(OSError, AttributeError):
        return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 2**20
    return None


def time_it(fn: Callable[[], object], device: torch.device, warmup: int, iters: int, repeats: int) -> dict:
    """Run ``fn`` ``warmup`` times, then ``repeats`` chunks of ``iters`` calls; the median chunk's time per call.

    One synchronisation per chunk (none inside), so the device queue stays full as in training.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warmup_s = time.perf_counter() - start
    chunks = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        sync(device)
        chunks.append((time.perf_counter() - start) / iters)
    return {"s_per_call": statistics.median(chunks), "s_min": min(chunks), "s_max": max(chunks), "warmup_s": warmup_s}


def compiled_graphs() -> int:
    """How many graphs torch.compile has compiled so far in this process (to spot recompiles)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def matmul_peak_tflops(device: torch.device, precision: str) -> float:
    """A measured ceiling: TFLOP/s of a large square matmul in this precision on this device."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    b = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    timing = time_it(lambda: a @ b, device, warmup=2, iters=10 if device.type == "cuda" else 3, repeats=3)
    return 2 * n**3 / timing["s_per_call"] / 1e12


def device_peak_tflops(
    device: torch.device, precision: str, override: float | None, measured: dict
) -> tuple[float, str]:
    """(peak TFLOP/s, where it comes from): --peak-tflops, the data sheet for known GPUs, else a measured matmul."""
    if override:
        return override, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for part, half, tf32 in GPU_PEAKS:
            if part in name:
                return (tf32 if precision == "fp32" else half), f"data sheet ({part}, dense)"
    if precision not in measured:
        measured[precision] = matmul_peak_tflops(device, precision)
    return measured[precision], "measured matmul"


# ---------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class TrainCase:
    name: str
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    batch: int = 1
    reference: bool = False  # the reference's step (ReferenceStep) instead of ours

    def settings(self) -> str:
        step = "reference step" if self.reference else "our step"
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{step}, {self.precision}, {layout}, {'compiled' if self.compile else 'eager'}, batch {self.batch}"


def case_config(base: Config, case: TrainCase) -> Config:
    tree = base.to_dict()
    tree["train"] |= {"batch_size": case.batch, "channels_last": case.channels_last, "compile": case.compile}
    return config_from_dict(tree, "bench")


_FLOPS: dict[tuple, int] = {}  # per-image counts: counting takes a second or two of Python dispatch


def count_flops(base: Config, batch: int, size: int) -> int:
    """FLOPs of one training iteration (convolutions and matmuls, forward and backward), counted by
    ``torch.utils.flop_counter`` on meta tensors: exact, no memory, no device. Convolution FLOPs
    are exactly proportional to the batch, so one image is counted and multiplied. Our step does
    the same convolutions as the reference's, so one count serves both."""
    key = (json.dumps(base.model.model_dump(), sort_keys=True), base.train.lambda_identity > 0, size)
    if key not in _FLOPS:
        _FLOPS[key] = _count_flops(base, 1, size)
    return batch * _FLOPS[key]


def _count_flops(base: Config, batch: int, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = CycleGAN(case_config(base, TrainCase("flops", batch=batch)), torch.device("meta"), "fp32")
    real = torch.empty(batch, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        ReferenceStep(model).step(real, real.clone())
    return counter.get_total_flops()


def generator_flops(base: Config, size: int) -> int:
    """FLOPs of one generator forward pass on one (3, size, size) image."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..nets import ResnetGenerator

    m = base.model
    net = ResnetGenerator(3, 3, m.ngf, m.n_blocks).to("meta")
    with FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops()


def bench_train_case(base: Config, case: TrainCase, device: torch.device, args, peaks: dict) -> dict:
    if case.compile:
        torch._dynamo.reset()  # each case compiles its own networks; old caches would count towards the limit
    model = CycleGAN(case_config(base, case), device, case.precision)
    stepper = ReferenceStep(model) if case.reference else model
    g = torch.Generator().manual_seed(0)
    real_A, real_B = (
        torch.rand(case.batch, 3, args.size, args.size, generator=g).mul(2).sub(1).to(device) for _ in "AB"
    )
    reset_peak_memory(device)
    graphs_before = compiled_graphs()
    start = time.perf_counter()
    stepper.step(real_A, real_B)  # first step: compilation, cuDNN autotuning, pools start filling
    sync(device)
    first_step_s = time.perf_counter() - start
    graphs_after_first = compiled_graphs()
    timing = time_it(lambda: stepper.step(real_A, real_B), device, args.warmup, args.iters, args.repeats)
    s_it = timing["s_per_call"]
    flops = count_flops(base, case.batch, args.size)
    peak, peak_source = device_peak_tflops(device, case.precision, args.peak_tflops, peaks)
    achieved = flops / s_it / 1e12
    return dataclasses.asdict(case) | {
        "settings": case.settings(),
        "size": args.size,
        "s_per_iter": s_it,
        "s_per_iter_min": timing["s_min"],
        "s_per_iter_max": timing["s_max"],
        "img_per_s": case.batch / s_it,
        "first_step_s": first_step_s,
        "peak_mem_gb": peak_memory_gb(device),
        "tflop_per_iter": flops / 1e12,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "peak_source": peak_source,
        "fraction_of_peak": achieved / peak,
        "graphs_compiled_first_step": graphs_after_first - graphs_before,
        "graphs_compiled_after_first_step": compiled_graphs() - graphs_after_first,  # must be 0: no recompiles
    }


def ladder_rungs(args) -> list[tuple[str, dict]]:
    """The changes the ladder tries, in order, each as (name, TrainCase fields it changes)."""
    rungs = []
    if True in args.channels_last:
        rungs.append(("+ channels_last", {"channels_last": True}))
    rungs += [(f"+ {p}", {"precision": p}) for p in args.precisions if p != "fp32"]
    if True in args.compile:
        rungs.append(("+ torch.compile", {"compile": True}))
    return rungs


def bench_train(base: Config, device: torch.device, args, rows: list[dict], report: Callable[[dict], None]) -> None:
    """Measure, appending a row to ``rows`` and calling ``report`` after each.

    Ladder (default): the reference's step, our step, then each change of ``ladder_rungs`` applied
    to the fastest settings so far (kept only if it is faster: channels_last, say, can lose on a
    CPU), then the larger batch sizes with the fastest settings. ``--grid``: every combination.
    """
    peaks: dict = {}

    def measure(case: TrainCase, built_on: dict | None) -> dict:
        row = _run_case(base, case, device, args, peaks)
        if built_on is not None:
            row["built_on"] = built_on["name"]
            if "img_per_s" in row and "img_per_s" in built_on:
                row["speedup_vs_built_on"] = row["img_per_s"] / built_on["img_per_s"]
        rows.append(row)
        report(row)
        return row

    if not args.no_reference:
        measure(TrainCase("reference", reference=True), None)
    if args.grid:
        for p in args.precisions:
            for cl in args.channels_last:
                for comp in args.compile:
                    for bs in [1] + args.batch_sizes:
                        name = f"{p} {'cl' if cl else 'nchw'} {'compiled' if comp else 'eager'} b{bs}"
                        measure(TrainCase(name, p, cl, comp, bs), None)
        return
    best = measure(TrainCase("our step"), rows[-1] if rows else None)
    for name, change in ladder_rungs(args):
        on = best
        case = dataclasses.replace(TrainCase(**{k: on[k] for k in _CASE_FIELDS}), name=name, **change)
        row = measure(case, on)
        if row.get("img_per_s", 0) > best.get("img_per_s", float("inf")):
            best = row
    for bs in args.batch_sizes:
        case = dataclasses.replace(TrainCase(**{k: best[k] for k in _CASE_FIELDS}), name=f"batch {bs}", batch=bs)
        measure(case, best)


_CASE_FIELDS = [f.name for f in dataclasses.fields(TrainCase)]


def _run_case(base: Config, case: TrainCase, device: torch.device, args, peaks: dict) -> dict:
    try:
        return bench_train_case(base, case, device, args, peaks)
    except Exception as e:  # noqa: BLE001 - e.g. out of memory at a large batch, or no compiler: record, go on
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return dataclasses.asdict(case) | {"settings": case.settings(), "error": _one_line(e)}


def bench_optimizer(base: Config, device: torch.device, args) -> list[dict]:
    """Adam's step alone on the four networks' parameters: the for-loop (PyTorch's default on the
    CPU, the reference's), foreach (ours on the CPU) and fused (ours on CUDA) implementations."""
    from ..nets import PatchDiscriminator, ResnetGenerator

    m = base.model
    nets = [
        ResnetGenerator(3, 3, m.ngf, m.n_blocks),
        ResnetGenerator(3, 3, m.ngf, m.n_blocks),
        PatchDiscriminator(3, m.ndf, m.n_layers_D),
        PatchDiscriminator(3, m.ndf, m.n_layers_D),
    ]
    params = [p for net in nets for p in net.to(device).parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    rows = []
    for kind, flags in (
        ("for-loop", dict(foreach=False)),
        ("foreach", dict(foreach=True)),
        ("fused", dict(fused=True)),
    ):
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **flags)
        try:
            timing = time_it(opt.step, device, warmup=2, iters=5, repeats=args.repeats)
        except RuntimeError as e:  # fused needs a recent PyTorch on the CPU
            rows.append({"adam": kind, "error": _one_line(e)})
            continue
        rows.append(
            {"adam": kind, "ms_per_step": timing["s_per_call"] * 1e3, "parameters": sum(p.numel() for p in params)}
        )
    return rows


# ---------------------------------------------------------------- profile


def profile_step(base: Config, case: TrainCase, device: torch.device, steps: int, top: int) -> dict:
    """Where the time of one iteration goes: torch.profiler's top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    model = CycleGAN(case_config(base, case), device, case.precision)
    stepper = ReferenceStep(model) if case.reference else model
    real = torch.rand(case.batch, 3, base.data.crop_size, base.data.crop_size, device=device) * 2 - 1
    for _ in range(2):
        stepper.step(real, real)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            stepper.step(real, real)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1
    ops = [
        {
            "op": e.key,
            "self_ms_per_iter": getattr(e, key) / 1e3 / steps,
            "share": getattr(e, key) / total,
            "calls_per_iter": e.count / steps,
        }
        for e in events[:top]
    ]
    return {"case": case.settings(), "steps": steps, "sorted_by": key, "ops": ops}


# ---------------------------------------------------------------- data pipeline


def bench_data(base: Config, args) -> dict:
    """Decode + augmentation throughput of the training pipeline, per DataLoader worker count."""
    try:
        from ..data.dataset import UnpairedDataset, UnpairedSampler, build_transform
    except ImportError as e:
        return {"skipped": f"the data pipeline needs albumentations ({e}); install gan_style's dependencies"}
    d = base.data
    with tempfile.TemporaryDirectory(prefix="gan_style_bench_") as tmp:
        root = Path(args.data_root) if args.data_root else _jpeg_toy_dataset(Path(tmp), args.data_images, d.load_size)
        transform = build_transform(d.preprocess, d.load_size, d.crop_size, d.flip)
        dataset = UnpairedDataset(root, transform, args.data_images)
        n = len(dataset)
        rows = []
        for workers in args.workers:
            sampler = UnpairedSampler(len(dataset.paths["A"]), len(dataset.paths["B"]), seed=0)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=1, sampler=sampler, num_workers=workers, prefetch_factor=4 if workers else None
            )
            start = time.perf_counter()
            it = iter(loader)
            next(it)  # worker start-up is paid once per run (persistent workers), not per epoch
            startup = time.perf_counter() - start
            # Items the workers prepared while starting come at once: time the steady rate after them.
            skip = min(workers * 4, max(0, n - 3))
            for _ in range(skip):
                next(it)
            start = time.perf_counter()
            count = sum(1 for _ in it)
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "workers": workers,
                    "pairs_per_s": count / elapsed,
                    "startup_s": startup,
                    "pairs_per_s_per_worker": count / elapsed / max(workers, 1),
                    "pairs_timed": count,
                }
            )
        decoders = _bench_decoders(dataset.paths["A"][:32])
    return {
        "root": str(args.data_root or f"generated: {n} JPEG pairs, {d.load_size} px"),
        "transform": f"{d.preprocess} {d.load_size}->{d.crop_size}, flip={d.flip}",
        "loader": rows,
        "decode_ms_per_image": decoders,
    }


def _jpeg_toy_dataset(root: Path, n: int, size: int) -> Path:
    """The toy dataset as JPEGs (the official datasets are JPEG), ``size`` px square."""
    from PIL import Image

    from ..data.toydata import make_toy_dataset

    make_toy_dataset(root, n_train=n, n_test=0, size=size)
    for png in root.glob("train*/*.png"):
        with Image.open(png) as img:
            img.convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    return root


def _bench_decoders(paths: list[Path]) -> dict:
    """Milliseconds per image to decode files to an RGB array with each available decoder."""
    import numpy as np

    from ..io.images import read_rgb

    decoders = {"PIL (read_rgb, used now)": lambda p: np.asarray(read_rgb(p))}
    with contextlib.suppress(ImportError):
        import cv2

        decoders["cv2.imread + BGR->RGB"] = lambda p: cv2.cvtColor(
            cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
        )
    with contextlib.suppress(ImportError):
        from torchvision.io import ImageReadMode, decode_image, read_file

        decoders["torchvision.io.decode_image"] = lambda p: decode_image(read_file(str(p)), mode=ImageReadMode.RGB)
    out = {}
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (measured all the same)
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, decode in decoders.items():
            for p in paths[:2]:
                decode(p)  # warm the page cache and the library
            start = time.perf_counter()
            for p in paths:
                decode(p)
            out[name] = (time.perf_counter() - start) / max(len(paths), 1) * 1e3
    return out


# ---------------------------------------------------------------- translation


def bench_translate(base: Config, device: torch.device, args) -> dict:
    """Translation as ``gan-style translate`` runs it (``gan_style.inference``: CPU image tensor in,
    CPU tensor out): images/s at each size and precision (batch 1, untiled), then a large image
    translated in tiles and whole, with the peak memory of each."""
    from ..inference.translate import Generator, translate_tensor
    from ..nets import ResnetGenerator, init_weights
    from ..inference.weights import GeneratorInfo

    m = base.model
    arch = dict(in_channels=3, out_channels=3, ngf=m.ngf, n_blocks=m.n_blocks)
    net = init_weights(ResnetGenerator(**arch)).eval().requires_grad_(False).to(device)
    if device.type == "cuda":  # as inference.load_generator does
        net.to(memory_format=torch.channels_last)
    gens = {
        p: Generator(net, GeneratorInfo(arch=arch, origin="random weights (bench)"), device, p) for p in args.precisions
    }
    rows = []
    for size in args.translate_sizes:
        x = torch.rand(1, 3, size, size) * 2 - 1
        for precision, gen in gens.items():
            reset_peak_memory(device)
            try:
                timing = time_it(
                    lambda: translate_tensor(gen, x, tile=0), device, 1, args.translate_iters, args.translate_repeats
                )
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory at 1024 px on a small GPU
                rows.append({"size": size, "precision": precision, "error": _one_line(e)})
                continue
            rows.append(
                {
                    "size": size,
                    "precision": precision,
                    "img_per_s": 1 / timing["s_per_call"],
                    "s_per_img": timing["s_per_call"],
                    "peak_mem_gb": peak_memory_gb(device),
                    "gflop_per_img": generator_flops(base, size) / 1e9,
                }
            )
    out = {"ngf": m.ngf, "n_blocks": m.n_blocks, "channels_last": device.type == "cuda", "rows": rows, "large": []}
    if args.tiled:
        largest = [r for r in rows if "img_per_s" in r and r["size"] == max(args.translate_sizes)]
        precision = max(largest, key=lambda r: r["img_per_s"])["precision"] if largest else "fp32"
        width, height = args.tiled
        image = torch.rand(1, 3, height, width) * 2 - 1
        for tile in (args.tile, 0):  # tiled, then whole (may not fit: that is the point of tiling)
            reset_peak_memory(device)
            row = {"width": width, "height": height, "precision": precision, "tile": tile}
            start = time.perf_counter()
            try:
                translate_tensor(gens[precision], image, tile=tile)
                row |= {"seconds": time.perf_counter() - start, "peak_mem_gb": peak_memory_gb(device)}
            except (RuntimeError, MemoryError) as e:
                row["error"] = _one_line(e)
            out["large"].append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------- table, CLI


def format_train(rows: list[dict]) -> str:
    head = (
        f"{'case':<16} {'settings':<56} {'s/iter':>8} {'img/s':>8} {'x ref':>6} {'x prev':>6} {'TFLOP/s':>8} "
        f"{'%peak':>6} {'mem GB':>7} {'recomp':>6}"
    )
    lines = [head, "-" * len(head)]
    ref = next((r["img_per_s"] for r in rows if r.get("reference") and "img_per_s" in r), None)
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:<16} {r['settings']:<56} error: {r['error']}")
            continue
        speedup = f"{r['img_per_s'] / ref:6.2f}" if ref else "     -"
        prev = f"{r['speedup_vs_built_on']:6.2f}" if "speedup_vs_built_on" in r else "     -"
        mem = f"{r['peak_mem_gb']:7.2f}" if r["peak_mem_gb"] is not None else "      -"
        lines.append(
            f"{r['name']:<16} {r['settings']:<56} {r['s_per_iter']:8.4f} {r['img_per_s']:8.2f} {speedup} {prev} "
            f"{r['achieved_tflops']:8.3f} {100 * r['fraction_of_peak']:5.1f}% {mem} "
            f"{r['graphs_compiled_after_first_step']:6d}"
        )
    return "\n".join(lines)


def format_results(results: dict) -> str:
    m = results["machine"]
    out = [
        f"gan_style bench on {m.get('gpu', {}).get('name') or m['cpu']} ({m['device']}), "
        f"torch {m['versions']['torch']}, torch threads {m['torch_threads']}, load {m['load_average_1_5_15']}",
        f"model: ngf {results['model']['ngf']}, ndf {results['model']['ndf']}, {results['model']['n_blocks']} blocks, "
        f"{results['size']} px; one iteration = "
        f"{results['flops']['tflop_per_iter_batch1']:.4g} TFLOP (batch 1)",
    ]
    if results.get("train"):
        out += [
            "",
            "training (synthetic inputs; img/s = image pairs per second; x prev = speed-up over the row it was built "
            "on; recomp = graphs compiled after step 1, must be 0)",
            format_train(results["train"]),
        ]
    if results.get("optimizer"):
        out += ["", "optimizer step alone (all four networks' parameters)"]
        out += [
            f"  Adam {r['adam']:<9} " + (f"error: {r['error']}" if "error" in r else f"{r['ms_per_step']:8.2f} ms/step")
            for r in results["optimizer"]
        ]
    if results.get("profile"):
        p = results["profile"]
        out += ["", f"profile of {p['case']} (top operators by self time, per iteration)"]
        out += [
            f"  {o['op'][:42]:<42} {o['self_ms_per_iter']:9.2f} ms {100 * o['share']:5.1f}% "
            f"{o['calls_per_iter']:6.0f} calls"
            for o in p["ops"]
        ]
    data = results.get("data")
    if data:
        out += ["", f"data pipeline ({data.get('root', '')}; {data.get('transform', '')})"]
        if "skipped" in data:
            out.append(f"  skipped: {data['skipped']}")
        for r in data.get("loader", []):
            out.append(
                f"  workers {r['workers']:>2}: {r['pairs_per_s']:8.1f} pairs/s "
                f"({r['pairs_per_s_per_worker']:.1f} per worker), start-up {r['startup_s']:.2f} s"
            )
        for name, ms in data.get("decode_ms_per_image", {}).items():
            out.append(f"  decode {name:<32} {ms:7.2f} ms/image")
    tr = results.get("translate")
    if tr:
        layout = "channels_last" if tr["channels_last"] else "NCHW"
        out += [
            "",
            f"translation (gan_style.inference; generator ngf {tr['ngf']}, {tr['n_blocks']} blocks, {layout}, "
            "batch 1, CPU tensors in and out)",
        ]
        for r in tr["rows"]:
            if "error" in r:
                out.append(f"  {r['size']:>5} px {r['precision']}: error: {r['error']}")
                continue
            mem = f", peak {r['peak_mem_gb']:.2f} GB" if r["peak_mem_gb"] is not None else ""
            out.append(
                f"  {r['size']:>5} px {r['precision']}: {r['img_per_s']:8.2f} img/s "
                f"({r['gflop_per_img']:.3g} GFLOP/img){mem}"
            )
        for r in tr["large"]:
            how = f"tiles of {r['tile']}" if r["tile"] else "whole"
            result = r.get("error") or f"{r['seconds']:.1f} s, peak {r['peak_mem_gb']:.2f} GB"
            out.append(f"  {r['width']}x{r['height']} {r['precision']} {how}: {result}")
    return "\n".join(out)


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected whole numbers separated by commas, e.g. 1,4,8") from None
    if any(v < 0 or (v == 0 and option != "--workers") for v in values):
        raise ValueError(f"{option} {text!r}: values must be positive")
    return values


def _onoff(text: str) -> list[bool]:
    values = {"off": False, "on": True}
    try:
        return [values[x.strip()] for x in text.split(",") if x.strip()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected on, off or on,off; got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style bench                          # preset for this machine: a few minutes on a CPU\n"
        "  gan-style bench --preset gpu --only train --batch-sizes 8,16\n"
        "  gan-style bench -c configs/monet.yaml --grid --precisions fp32,bf16 --compile off,on\n"
        "  gan-style bench --profile --only train   # where does the time go?\n"
        "Lists are comma-separated. Results: a table on stdout and a JSON file (see --out)."
    )
    add = parser.add_argument
    add(
        "--preset",
        choices=["auto", "cpu", "gpu"],
        default="auto",
        help="defaults for the options below (auto: gpu if CUDA is available)",
    )
    add(
        "-c",
        "--config",
        help="take the model (ngf, ndf, n_blocks, ...), losses and crop size from this training config",
    )
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    add("--size", type=int, help="training crop size in px (cpu preset 64, gpu 256; with -c: data.crop_size)")
    add("--ngf", type=int, help="generator width (cpu preset 32, gpu 64)")
    add("--ndf", type=int, help="discriminator width (cpu preset 32, gpu 64)")
    add("--n-blocks", type=int, help="generator residual blocks (9 for the paper's 256 px model)")
    add("--precisions", help="low precisions to try besides fp32, e.g. bf16,fp16 (fp16 needs CUDA)")
    add(
        "--channels-last",
        type=_onoff,
        help="on, off or off,on (the ladder tries it if 'on' is listed, the grid measures each)",
    )
    add(
        "--compile",
        type=_onoff,
        help="torch.compile: on, off or off,on, as --channels-last (on the CPU: minutes of C++ compilation)",
    )
    add("--batch-sizes", help="ladder: larger batches tried with the fastest settings; grid: added to batch 1")
    add("--grid", action="store_true", help="every combination of precision x channels_last x compile x batch (slow)")
    add("--no-reference", action="store_true", help="skip the reference implementation's step (the baseline)")
    add("--warmup", type=int, help="untimed iterations after the first (compilation) step")
    add("--iters", type=int, help="iterations per timed chunk")
    add("--repeats", type=int, help="timed chunks; the median is reported")
    add("--only", default="train,data,translate", help="sections to run: train, data, translate (comma-separated)")
    add("--profile", action="store_true", help="also profile one case with torch.profiler and print the top operators")
    add("--translate-sizes", help="square sizes for translation throughput, e.g. 256,1024")
    add("--translate-iters", type=int, default=1, help="images per timed chunk in translation")
    add("--translate-repeats", type=int, default=2, help="timed chunks in translation; the median is reported")
    add("--tiled", help="WIDTHxHEIGHT of the large image translated in tiles (peak memory), e.g. 4000x3000; 0 = skip")
    add("--tile", type=int, help="tile size for --tiled, px (multiple of 4)")
    add("--data-root", help="measure the data pipeline on this dataset (trainA/, trainB/) instead of generated JPEGs")
    add("--data-images", type=int, help="images per domain used for the data pipeline")
    add("--workers", help="DataLoader worker counts to measure, e.g. 0,2,4")
    add(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s for the %%peak column (default: data sheet or a measured matmul)",
    )
    add(
        "--out",
        default="bench_results",
        help="folder for the JSON file, or a path ending in .json (default: bench_results/)",
    )


def resolve_args(args: argparse.Namespace) -> tuple[argparse.Namespace, Config, torch.device]:
    """Fill unset options from the preset (and -c), parse lists, validate. Raises ValueError with one line."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
    preset = PRESETS[args.preset if args.preset != "auto" else ("gpu" if device.type == "cuda" else "cpu")]
    base = load_config(args.config) if args.config else None
    if base is not None:  # options win over the config's model and size, which win over the preset
        for key, value in (
            ("size", base.data.crop_size),
            ("ngf", base.model.ngf),
            ("ndf", base.model.ndf),
            ("n_blocks", base.model.n_blocks),
        ):
            if getattr(args, key) is None:
                setattr(args, key, value)
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.precisions = ["fp32"] + [p.strip() for p in args.precisions.split(",") if p.strip() and p.strip() != "fp32"]
    for p in args.precisions:
        if p not in DTYPES:
            raise ValueError(f"--precisions: unknown precision {p!r}; use fp32, bf16 or fp16")
        if p == "fp16" and device.type != "cuda":
            raise ValueError("--precisions fp16 needs a CUDA device: use bf16 on the CPU")
    for key in ("channels_last", "compile"):
        if isinstance(getattr(args, key), str):
            setattr(args, key, _onoff(getattr(args, key)))
    args.batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    args.translate_sizes = _ints(args.translate_sizes, "--translate-sizes")
    args.workers = _ints(args.workers, "--workers")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sorted(args.only - {"train", "data", "translate"})
    if unknown:
        raise ValueError(f"--only: unknown section(s) {unknown}; use train, data, translate")
    if isinstance(args.tiled, str):
        match = re.fullmatch(r"(\d+)x(\d+)", args.tiled.strip())
        if args.tiled.strip() != "0" and not match:
            raise ValueError(f"--tiled {args.tiled!r}: expected WIDTHxHEIGHT, e.g. 4000x3000, or 0 to skip")
        args.tiled = (int(match.group(1)), int(match.group(2))) if match else None
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    if args.size % 4 or args.size < 16:
        raise ValueError(f"--size {args.size}: must be a multiple of 4 and at least 16")
    if args.tile % 4 or args.tile < 32:
        raise ValueError(f"--tile {args.tile}: must be a multiple of 4 and at least 32")
    tree = base.to_dict() if base is not None else {}
    tree.setdefault("model", {}).update(ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks)
    tree.setdefault("data", {}).update(
        crop_size=args.size, load_size=max(args.size, round(args.size * 286 / 256 / 2) * 2), num_workers=0
    )
    tree.setdefault("train", {})["device"] = str(device)
    return args, config_from_dict(tree, "bench settings"), device


def output_path(out: str, device: torch.device) -> Path:
    if out.endswith(".json"):
        return Path(out)
    return Path(out) / f"bench_{device.type}_{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_json(results: dict, path: Path) -> None:
    """Atomic: a half-written file never replaces a good one (the file is rewritten after each case)."""
    write_atomic(path, lambda f: f.write(json.dumps(results, indent=1)))


def run(args: argparse.Namespace) -> int:
    try:
        args, base, device = resolve_args(args)
    except (ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if device.type == "cuda":  # as the training loop does
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    path = output_path(args.out, device)
    results = {
        "command": "gan-style bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(device),
        "model": {"ngf": args.ngf, "ndf": args.ndf, "n_blocks": args.n_blocks},
        "size": args.size,
        "settings": dict(vars(args)),
        "config": base.to_dict(),
        "flops": {
            "tflop_per_iter_batch1": count_flops(base, 1, args.size) / 1e12,
            "generator_gflop_per_img": generator_flops(base, args.size) / 1e9,
        },
    }
    results["settings"]["only"] = sorted(args.only)
    load, cores = results["machine"]["load_average_1_5_15"], os.cpu_count() or 1
    if load and load[0] > 0.75 * cores:  # other work shares the cores: say so rather than print wrong figures silently
        print(
            f"warning: the machine is busy (load {load[0]:.1f} on {cores} cores): timings will be noisy; PyTorch's "
            "threads wait for each other when cores are shared, so --threads 1 may be faster",
            file=sys.stderr,
        )
    print(
        f"benchmarking on {device} ({results['machine'].get('gpu', {}).get('name') or results['machine']['cpu']}); "
        f"results go to {path}",
        flush=True,
    )

    def report(row: dict) -> None:
        status = row.get("error") or f"{row['s_per_iter']:.4f} s/iter, {row['img_per_s']:.2f} img/s"
        print(f"  train {row['name']:<16} {row['settings']}: {status}", flush=True)
        write_json(results, path)

    if "train" in args.only:
        results["optimizer"] = bench_optimizer(base, device, args)
        results["train"] = []
        bench_train(base, device, args, results["train"], report)
    if args.profile and "train" in args.only:
        best = max(
            (r for r in results["train"] if "img_per_s" in r and r["batch"] == 1 and not r["reference"]),
            key=lambda r: r["img_per_s"],
            default=None,
        )
        case = TrainCase("profile", best["precision"], best["channels_last"], False) if best else TrainCase("profile")
        results["profile"] = profile_step(base, case, device, steps=max(2, args.iters), top=15)
        write_json(results, path)
    if "data" in args.only:
        print("  data pipeline ...", flush=True)
        results["data"] = bench_data(base, args)
        write_json(results, path)
    if "translate" in args.only:
        print("  translation ...", flush=True)
        results["translate"] = bench_translate(base, device, args)
        write_json(results, path)
    print()
    print(format_results(results))
    print(f"\nwritten: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan_style.bench", description="benchmark training and translation speed"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
