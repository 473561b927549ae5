"""What every training method shares, and the interface the one training loop calls.

A method is a training state: its networks, optimizers, LR schedulers, GradScaler and any
random streams of its own, plus one ``step``. The loop (training/loop.py) only uses:

    stat_names                    names of the entries of step()["vector"] (loss/..., D/...)
    progress_keys                 the few stat names shown on the progress bar
    nets                          name -> nn.Module, the plain modules a checkpoint stores
    generator_names               the keys of ``nets`` that are generators (EMA, fine-tuning)
    step(real_A, real_B, measure_grads) -> {"vector": (len(stat_names),) tensor, "grad_norm/...": ...}
    end_epoch()                   one step of every LR scheduler
    learning_rates()              {"lr/G": ..., "lr/D": ...} for the logs
    generators()                  direction ("AtoB"/"BtoA") -> generator, for evaluation and samples
    sample_panels(fixed_A, fixed_B) -> {panel name: (n, k, 3, H, W)}, with panel_columns captions
    autocast(), scaler            the one precision path
    state_dict() / load_state_dict(state)

``step`` never syncs with the host: statistics stay on the device until the loop logs them.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..config import Config

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The reference's linear rule: 1 for the first ``n_epochs`` epochs, then linearly to
    1/(n_epochs_decay+1) at the last epoch (epoch is 0-based)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def scaled_lr(cfg: Config, world_size: int) -> float:
    t = cfg.train
    batch = t.batch_size * world_size
    return t.lr * {"none": 1.0, "linear": batch, "sqrt": batch**0.5}[t.lr_scaling]


def adam(params: Iterable[nn.Parameter], cfg: Config, lr: float, device: torch.device) -> torch.optim.Adam:
    # Fused Adam: one pass over each tensor. On the CPU it is also 3-5x faster than foreach and the
    # for-loop (docs/benchmarks.md). Other devices (meta, for FLOP counting) take PyTorch's default.
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=lr, betas=(cfg.train.beta1, cfg.train.beta2), fused=fused or None)


def linear_decay(opt: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LambdaLR:
    t = cfg.train
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(epoch, t.n_epochs, t.n_epochs_decay))


def wrap(net: nn.Module, world_size: int, device: torch.device, compile: bool) -> nn.Module:
    """The module a step calls: DDP-wrapped (gradients averaged over ranks) and/or compiled."""
    if world_size > 1:
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    # Static shapes: each network sees at most two input shapes (N and 2N images): one
    # specialised graph for each rather than one with a symbolic batch size.
    return torch.compile(net, dynamic=False) if compile else net


def grad_norm(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> torch.Tensor:
    """Norm of the true (unscaled) gradients; for fp16 the scaler's factor is divided out."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    return norm / scaler.get_scale() if scaler.is_enabled() else norm


class Precision:
    """One autocast context and one GradScaler, active only for fp16: never two code paths."""

    def __init__(self, device: torch.device, precision: str) -> None:
        dtype = DTYPES[precision]
        self.autocast: Callable = lambda: torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def parameters(*nets: nn.Module) -> Iterable[nn.Parameter]:
    return itertools.chain(*(net.parameters() for net in nets))


def training_state(nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   schedulers: dict[str, object], scaler: torch.amp.GradScaler) -> dict:
    """The part of a checkpoint every method has: plain tensors and numbers (weights_only loads it)."""
    return {
        "models": {name: net.state_dict() for name, net in nets.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in schedulers.items()},
        "scaler": scaler.state_dict(),
    }


def load_training_state(state: dict, nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                        schedulers: dict[str, object], scaler: torch.amp.GradScaler) -> None:
    for name, net in nets.items():
        net.load_state_dict(state["models"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])


class TwoOptimizers:
    """What CycleGAN and CUT share: a generator-side Adam ``opt_G`` and a discriminator-side ``opt_D``,
    each with its linear-decay scheduler, and one GradScaler; how they are stepped, logged and saved."""

    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: torch.optim.lr_scheduler.LambdaLR
    sched_D: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    nets: dict[str, nn.Module]

    def end_epoch(self) -> None:
        self.sched_G.step()
        self.sched_D.step()

    def learning_rates(self) -> dict[str, float]:
        return {"lr/G": self.opt_G.param_groups[0]["lr"], "lr/D": self.opt_D.param_groups[0]["lr"]}

    def _parts(self) -> tuple:
        return (self.nets, {"G": self.opt_G, "D": self.opt_D}, {"G": self.sched_G, "D": self.sched_D}, self.scaler)
