"""Share the files of one ``gan-style translate`` among processes: torchrun's ranks or a job array's tasks.

    torchrun --standalone --nproc_per_node=4 -m gan_style translate -w W -i photos/ -o out/   # 4 GPUs, one each
    gan-style translate -w W -i photos/ -o out/ --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT

Every process finds the same inputs in the same order (``io/files.find_files`` sorts them) and
plans every output; outputs that would collide are judged on that whole list. Then process K of N
keeps the jobs at positions K, K + N, K + 2N ...: the shards are disjoint and cover every file
once, and they do not depend on which outputs exist yet (a process that starts late sees files the
others have written: sharding after skipping would move jobs between shards). Each process then
skips its own outputs that exist (unless ``--overwrite``), so a killed job run again does only the
rest, and every output is written atomically, so a killed one leaves no partial file. The
processes never talk to each other (no process group): one failing leaves the others going.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .batch import Job, select_jobs


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` (0-based); ``local_rank``: its GPU on this machine under torchrun."""

    index: int = 0
    count: int = 1
    local_rank: int = 0
    source: str = ""  # how it was set: "--shard K/N", "torchrun", both, or "" (one process)

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count} ({self.source})" if self.count > 1 else ""


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 0 <= K < N; ValueError naming the option otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text}: use K/N, e.g. 0/4 (this process's index from 0, and the number of "
                         "processes)") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text}: K must be 0 to {n - 1} for N={n} (a job array's index from 0: "
                         "$SLURM_ARRAY_TASK_ID with --array=0-{N-1}, $JOB_COMPLETION_INDEX)")
    return k, n


def resolve_shard(option: str | None, environ: Mapping[str, str] = os.environ) -> Shard:
    """This process's shard: ``--shard K/N`` and/or torchrun's RANK / WORLD_SIZE (both: task K of a job
    array running W ranks takes shard K * W + RANK of N * W)."""
    k, n = parse_shard(option) if option else (0, 1)
    world = int(environ.get("WORLD_SIZE", "1"))
    if "RANK" not in environ or world <= 1:
        return Shard(k, n, 0, f"--shard {option}" if option else "")
    rank, local = int(environ["RANK"]), int(environ.get("LOCAL_RANK", "0"))
    source = f"--shard {option}, torchrun rank {rank}" if option else f"torchrun rank {rank}"
    return Shard(k * world + rank, n * world, local, source)


def shard_device(device: str, shard: Shard) -> str:
    """One device per process: ``auto`` and ``cuda`` mean cuda:LOCAL_RANK under torchrun (when CUDA is
    there); an explicit device (cpu, cuda:N) is kept."""
    if device in ("auto", "cuda") and shard.count > 1 and torch.cuda.is_available():
        return f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return device


def shard_jobs(jobs: list[Job], shard: Shard, overwrite: bool) -> tuple[list[Job], int, list[str]]:
    """This shard's jobs to run, how many of its outputs exist already (skipped unless ``overwrite``),
    and the messages about jobs no process can run (reported by shard 0 alone)."""
    runnable, _, failures = select_jobs(jobs, overwrite=True)  # collisions: on the whole list, alike everywhere
    mine, skipped, _ = select_jobs(runnable[shard.index :: shard.count], overwrite)
    return mine, skipped, failures if shard.index == 0 else []
