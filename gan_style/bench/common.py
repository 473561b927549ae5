"""What every section of the benchmark shares: timing, synchronisation, peak memory, the machine's
description, the device's peak TFLOP/s and the JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from .. import __version__
from ..io.atomic import write_atomic
from ..methods.base import DTYPES


# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets: (name part, bf16/fp16, tf32).
# fp32 runs use the TF32 figure: cuDNN convolutions use TF32 by default. First match wins.
GPU_PEAKS = (("H100 PCIe", 756.0, 378.0), ("H100", 989.4, 494.7), ("H200", 989.4, 494.7), ("A100", 312.0, 156.0))


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


def synthetic_pair(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed pair of image batches in [-1, 1]: every case and method sees the same inputs."""
    g = torch.Generator().manual_seed(0)
    real_A, real_B = (torch.rand(batch, 3, size, size, generator=g).mul(2).sub(1).to(device) for _ in "AB")
    return real_A, real_B


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


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], device: torch.device, warmup: int, iters: int,
              repeats: int) -> dict:
    """Two functions timed in alternating chunks (a, b, a, b ...), so that a slow spell of a shared
    machine falls on both: each one's median chunk time per call, and ``ratio``, the median of the
    chunk pairs' b / a (what an overhead is measured by)."""
    for fn in (fn_a, fn_b):  # the first calls (allocations, caches), untimed
        for _ in range(max(warmup, 1)):
            fn()
    sync(device)
    a, b = [], []
    for _ in range(repeats):
        a.append(time_it(fn_a, device, 0, iters, 1)["s_per_call"])
        b.append(time_it(fn_b, device, 0, iters, 1)["s_per_call"])
    return {"a_s": statistics.median(a), "b_s": statistics.median(b),
            "ratio": statistics.median(y / x for x, y in zip(a, b)), "ratios": [y / x for x, y in zip(a, b)]}


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


def output_path(out: str, device: torch.device) -> Path:
    if out.endswith(".json"):
        return Path(out)
    return Path(out) / f"bench_{device.type}_{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_json(results: dict, path: Path) -> None:
    """Atomic: a half-written file never replaces a good one (the file is rewritten after each case)."""
    write_atomic(path, lambda f: f.write(json.dumps(results, indent=1)))



def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"

