"""The training section: the reference's step and ours, one change at a time (the ladder) or every
combination (the grid), Adam's step alone, FLOP counting and torch.profiler's top operators."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import Config
from ..methods import config_from_dict
from ..methods.cyclegan import STAT_NAMES, CycleGAN, set_requires_grad
from ..methods.losses import gan_loss
from .common import (
    compiled_graphs,
    device_peak_tflops,
    one_line,
    peak_memory_gb,
    reset_peak_memory,
    sync,
    synthetic_pair,
    time_it,
)


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

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m, t = self.model, self.t
        G_A, G_B, D_A, D_B = m.G_A, m.G_B, m.D_A, m.D_B
        real_A, real_B = batch["A"].to(m.device), batch["B"].to(m.device)
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
        no_anchor = torch.zeros((), device=m.device)  # the reference has no histogram anchor (train.lambda_histogram)
        losses = (loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B, no_anchor, no_anchor,
                  loss_D_A, loss_D_B)
        outputs = (pred_A_real, pred_A_fake, pred_B_real, pred_B_fake)
        return {"vector": torch.stack([x.detach() for x in losses] + [p.detach().mean() for p in outputs])}


assert len(STAT_NAMES) == 14  # ReferenceStep's vector follows CycleGAN.step's order


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
        ReferenceStep(model).step({"A": real, "B": real.clone()})
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
    real_A, real_B = synthetic_pair(case.batch, args.size, device)
    reset_peak_memory(device)
    graphs_before = compiled_graphs()
    start = time.perf_counter()
    batch = {"A": real_A, "B": real_B}
    stepper.step(batch)  # first step: compilation, cuDNN autotuning, pools start filling
    sync(device)
    first_step_s = time.perf_counter() - start
    graphs_after_first = compiled_graphs()
    timing = time_it(lambda: stepper.step(batch), device, args.warmup, args.iters, args.repeats)
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
        return dataclasses.asdict(case) | {"settings": case.settings(), "error": one_line(e)}


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
            rows.append({"adam": kind, "error": one_line(e)})
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
        stepper.step({"A": real, "B": real})
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            stepper.step({"A": real, "B": real})
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

