"""Process-group setup for torchrun: the same code runs as 1 process or as N.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process and
nothing is initialised. NCCL on CUDA, gloo on CPU. A timeout on the process group makes the
survivors exit with an error when a rank dies, instead of hanging forever.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> if CUDA is available, else cpu. 'cuda' -> cuda:<local_rank>."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device={name} but CUDA is not available here: use train.device=cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    return torch.device(name)


def init_distributed(device_name: str = "auto", timeout_s: float = 600.0) -> DistEnv:
    """Initialise from torchrun's environment if present; return this process's rank and device."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistEnv(device=resolve_device(device_name))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=device if device.type == "cuda" else None,
        )
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True if ``flag`` is true on any rank (e.g. a stop signal seen by one process)."""
    if not env.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()
