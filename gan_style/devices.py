"""Which device and which precision to run on: one rule for training, inference and the benchmark.

The bottom layer: imports only torch. ``auto`` means CUDA when it is available, else the CPU; a
precision of ``auto`` means bf16 on CUDA devices that support it, else fp32 (inference also picks
bf16-blocks on CPUs with native bf16, see ``resolve_inference_precision``).
"""

from __future__ import annotations

import torch

# bf16-blocks (inference only): the convolutions of the residual blocks in bf16, every other layer,
# the norms and the residual sums in fp32 (see gan_style/inference/translate.py).
BLOCKS = "bf16-blocks"
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16", BLOCKS, "fp16")


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0, option: str = "--device ") -> torch.device:
    """'auto' -> cuda:<local_rank> if CUDA is available, else cpu; 'cuda' -> cuda:<local_rank>.

    ``option`` is how the user sets the device (``--device `` or ``train.device=``), for the error
    raised when a CUDA device is asked for on a machine without one.
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{option}{name}: CUDA is not available here: use {option}cpu (or auto)")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    return torch.device(name)


def fp16_needs_cuda(option: str, cpu_choices: str = "bf16 or fp32") -> ValueError:
    """The error for fp16 asked on a device without CUDA; ``option`` as the user wrote it (``--precision fp16``)."""
    return ValueError(f"{option} needs a CUDA device: use {cpu_choices} on the CPU")


def auto_precision(device: torch.device) -> str:
    """bf16 on CUDA devices that support it, else fp32 (training's rule, and inference's on CUDA)."""
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def resolve_precision(name: str, device: torch.device) -> str:
    """Training: ``auto`` -> ``auto_precision``; fp16 needs a CUDA device."""
    if name == "auto":
        return auto_precision(device)
    if name == "fp16" and device.type == "cpu":
        raise fp16_needs_cuda("train.precision=fp16")
    return name


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16), where bf16 is fast."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_inference_precision(name: str, device: torch.device) -> str:
    """Inference: auto = bf16 on CUDA devices that support it (the same rule as training),
    bf16-blocks on CPUs with native bf16 (AMX, AVX512-BF16), else fp32."""
    if name not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision {name!r}: use one of {', '.join(INFERENCE_PRECISIONS)}")
    if name == "auto":
        return BLOCKS if device.type == "cpu" and native_bf16_cpu() else auto_precision(device)
    if name == "fp16" and device.type != "cuda":
        raise fp16_needs_cuda("precision fp16", "bf16-blocks, bf16 or fp32")
    return name
