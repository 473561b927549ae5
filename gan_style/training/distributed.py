"""Process-group setup for torchrun: the same code runs as 1 process or as N.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (or with WORLD_SIZE=1) this is a
single process, nothing is initialised and no collective is ever called. NCCL on CUDA, gloo on
the CPU. The process group has a timeout (``GAN_STYLE_DIST_TIMEOUT_S``, default 600 s): when a
rank dies or hangs, the others stop with an error within that time instead of waiting forever.
See docs/distributed.md.
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..devices import resolve_device

TIMEOUT_ENV = "GAN_STYLE_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0
# Waits that are long by nature (rank 0 downloading a dataset) go through a gloo group with this timeout.
LONG_WAIT_S = 6 * 3600.0


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - a device is immutable
    backend: str = "none"
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


class RankFailure(ValueError):
    """Another rank failed (rank 0 reported an error, or a peer died or hung): one-line message."""


def timeout_from_env() -> float:
    """Seconds a collective may wait for the other ranks (``GAN_STYLE_DIST_TIMEOUT_S``)."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds: e.g. {TIMEOUT_ENV}=900")
    return value


def init_distributed(device_name: str = "auto", timeout_s: float | None = None) -> DistEnv:
    """Initialise from torchrun's environment if present; return this process's rank and device."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistEnv(device=resolve_device(device_name, option="train.device="))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    timeout_s = timeout_from_env() if timeout_s is None else timeout_s
    if device_name.startswith("cuda:"):
        raise ValueError(
            f"train.device={device_name} cannot be used with {world_size} processes: each process uses "
            "cuda:<LOCAL_RANK>; use train.device=cuda (or auto) and CUDA_VISIBLE_DEVICES to pick the GPUs"
        )
    device = resolve_device(device_name, local_rank, option="train.device=")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but this machine shows {torch.cuda.device_count()} GPU(s): "
                "start at most that many processes per node (torchrun --nproc_per_node, make GPUS=)"
            )
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, store=_attempt_store(rank, world_size, timeout), rank=rank, world_size=world_size,
            timeout=timeout, device_id=device if device.type == "cuda" else None,
        )
    return DistEnv(rank, local_rank, world_size, device, backend, timeout_s)


def _attempt_store(rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """The rendezvous store of torchrun (or of rank 0), with keys namespaced by the restart count.

    After an elastic restart (``torchrun --max-restarts``) the agent's store still holds the keys
    of the previous attempt, so a new process group may read a dead process's address and fail
    to connect ("Gloo connectFullMesh failed ... Connection refused"); a prefix per attempt avoids it.
    """
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise ValueError(
            f"RANK={rank} and WORLD_SIZE={world_size} are set but MASTER_ADDR or MASTER_PORT is not: "
            "start with torchrun"
        )
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_hosts_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent serves the store
    store = dist.TCPStore(host, port, world_size, is_master=rank == 0 and not agent_hosts_it, timeout=timeout,
                          multi_tenant=True)
    return dist.PrefixStore(f"gan_style/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def _long_wait_group() -> Any:
    # Made by all ranks at the same point (its creation already waits up to LONG_WAIT_S for rank 0).
    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=LONG_WAIT_S))


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True if ``flag`` is true on any rank (e.g. a stop signal seen by one process)."""
    if not env.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The element-wise mean of ``values`` over all ranks (returned on the input's device)."""
    if not env.enabled:
        return values
    t = values.detach().to(env.device, torch.float32).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / env.world_size).to(values.device)


def from_main(env: DistEnv, fn: Callable[[], Any], long: bool = False) -> Any:
    """Run ``fn`` on rank 0 only and return its result on every rank.

    The result must be plain data and tensors (what ``torch.load(weights_only=True)`` accepts):
    it is sent as bytes, so only rank 0 needs to see the file a checkpoint is read from.
    An exception on rank 0 is re-raised there and becomes a ``RankFailure`` on the other ranks,
    so no rank waits for a message that never comes. ``long``: ``fn`` may take longer than the
    process group's timeout (a download); the result then travels through a gloo group.
    """
    if not env.enabled:
        return fn()
    group = _long_wait_group() if long else None
    device = torch.device("cpu") if long else env.device
    header = torch.zeros(2, dtype=torch.int64, device=device)  # (failed, number of bytes)
    result = error = None
    if env.is_main:
        try:
            result = fn()
            buffer = io.BytesIO()
            torch.save(result, buffer)
            payload = buffer.getvalue()
        except Exception as e:  # noqa: BLE001 - re-raised below, after telling the others
            error = e
            payload = (str(e).strip().splitlines() or [type(e).__name__])[0].encode()
        header[0], header[1] = int(error is not None), len(payload)
    dist.broadcast(header, src=0, group=group)
    failed, size = (int(x) for x in header.tolist())
    data = torch.empty(size, dtype=torch.uint8, device=device)  # (size,) the serialized result
    if env.is_main:
        data.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(data, src=0, group=group)
    if group is not None:
        dist.destroy_process_group(group)
    if env.is_main:
        if error is not None:
            raise error
        return result
    raw = data.cpu().numpy().tobytes()
    if failed:
        raise RankFailure(f"rank 0 stopped: {raw.decode(errors='replace')}")
    return torch.load(io.BytesIO(raw), weights_only=True)


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from a collective that lost a peer (timeout, closed connection)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    markers = ("gloo", "Gloo", "NCCL", "Connection reset by peer", "Connection closed by peer")
    return isinstance(error, RuntimeError) and any(m in text for m in markers)


def peer_failure_message(error: BaseException, env: DistEnv) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (
        f"rank {env.rank}: lost contact with the other processes (one died, hung or was killed; "
        f"{TIMEOUT_ENV}={env.timeout_s:g}); see the first failing rank's log; "
        f"continue from the last checkpoint with resume=auto ({first[:200]})"
    )


def cleanup(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()
