"""Training on a CUDA device: every method, in bf16 and in fp16 (with its GradScaler), eager.

These need a GPU and are skipped only when CUDA is unavailable (CI has none); they ran on an
NVIDIA H200 (docs/benchmarks.md, "GPU"). The compiled and channels_last variants, and a resume
on the GPU, are checked by scripts/gpu_checks.py, which runs them in parallel processes.
"""

import pytest
import torch

from conftest import synthetic_extra, tiny_overrides
from gan_style.methods import load_config
from gan_style.io.checkpoint import load_safe
from gan_style.methods import METHODS
from gan_style.training.loop import train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_each_method_trains_on_cuda(toy_root, tmp_path, method, precision):
    def overrides(steps: int, **extra) -> list[str]:
        return tiny_overrides(toy_root, tmp_path, method=method, train__precision=precision, train__device="cuda",
                              train__max_steps=steps, logging__log_every=3, **synthetic_extra(method, tmp_path), **extra)

    last = train(load_config(None, overrides(6)))
    ckpt = load_safe(last)
    assert ckpt["step"] == 6
    weights = [v for sd in ckpt["models"].values() for v in sd.values() if v.is_floating_point()]
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in weights)  # master weights stay fp32
    assert all(torch.isfinite(v).all() for v in weights)
    scale = ckpt["scaler"].get("scale") if ckpt["scaler"] else None
    assert (scale is not None) == (precision == "fp16")  # the GradScaler is on for fp16 only
    # The run resumes on the same device: two more steps continue from step 6.
    again = train(load_config(None, overrides(8, resume="auto")))
    assert load_safe(again)["step"] == 8
