"""The methods section: one training step of each method (``--methods``, default all of ``METHODS``)
side by side, at the same size, precision and batch, on the same synthetic inputs; s/iter, img/s,
peak memory (CUDA) and each method's speed-up over the first one listed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..config import Config, config_keys, flatten, set_dotted
from ..methods import METHODS, config_from_dict
from .common import one_line, peak_memory_gb, reset_peak_memory, sync, synthetic_pair, time_it


def method_config(base: Config, method: str, batch: int, folder: Path | None = None,
                  extra: dict[str, object] | None = None) -> Config:
    """``base`` (model, data, training settings) for ``method``. The keys ``base``'s own method
    filled in (init, antialiasing...) are cleared so that ``method`` fills in its own, and the keys
    ``method`` does not have (``base``'s method's own) are left out. With ``folder``, the method's
    ``synthetic_overrides`` (files it needs, e.g. a painting, written there) are added."""
    target = {key for key, _, _ in config_keys(METHODS[method].config_type)}
    values = {key: value for key, value in flatten(base.to_dict()) if key in target}
    values |= dict.fromkeys([*type(base).method_defaults, "model.antialias_up"])
    values |= METHODS[method].synthetic_overrides(folder) if folder is not None else {}
    values |= {"method": method, "train.batch_size": batch, "train.compile": False}  # eager: compiling would dominate
    values |= extra or {}
    tree: dict = {}
    for key, value in values.items():
        set_dotted(tree, key.split("."), value)
    return config_from_dict(tree, f"bench {method}")


def method_step(base: Config, method: str, device: torch.device, args,
                extra: dict[str, object] | None = None) -> tuple[object, dict]:
    """The method's training state at the bench's settings and the batch it steps on: (model, batch).
    ``extra``: dotted config keys set for it."""
    batch, precision = args.methods_batch, args.methods_precision
    with tempfile.TemporaryDirectory(prefix="gan_style_bench_") as folder:
        model = METHODS[method](method_config(base, method, batch, Path(folder), extra), device, precision)
    keys = METHODS[method].batch_keys
    images = dict(zip(keys, synthetic_pair(batch, args.size, device) * len(keys)))  # the same synthetic images
    images["seed"] = torch.arange(batch)  # each sample's own randomness (strengths, noise), as the dataset gives
    return model, images


def bench_method(base: Config, method: str, device: torch.device, args, extra: dict[str, object] | None = None) -> dict:
    """One method's step: the first (untimed) step, ``args.warmup`` more, then the median of
    ``args.repeats`` chunks of ``args.iters`` steps. ``extra``: dotted config keys set for it."""
    batch, precision = args.methods_batch, args.methods_precision
    model, images = method_step(base, method, device, args, extra)
    reset_peak_memory(device)
    start = time.perf_counter()
    model.step(images)
    sync(device)
    first_step_s = time.perf_counter() - start
    timing = time_it(lambda: model.step(images), device, args.warmup, args.iters, args.repeats)
    s_it = timing["s_per_call"]
    return {
        "method": method,
        "precision": precision,
        "batch": batch,
        "size": args.size,
        "parameters": sum(p.numel() for net in model.nets.values() for p in net.parameters()),
        "s_per_iter": s_it,
        "s_per_iter_min": timing["s_min"],
        "s_per_iter_max": timing["s_max"],
        "it_per_s": 1 / s_it,
        "img_per_s": batch / s_it,
        "first_step_s": first_step_s,
        # CUDA only: on a CPU the resident size keeps the earlier methods' freed memory (measured:
        # its growth read ~0 for CUT after CycleGAN), so no per-method figure would be honest.
        "peak_mem_gb": peak_memory_gb(device) if device.type == "cuda" else None,
    }


def bench_methods(base: Config, device: torch.device, args) -> dict:
    """Each of ``args.methods`` in turn; a method that fails (out of memory, say) is recorded, not fatal."""
    rows = []
    for method in args.methods:
        print(f"    {method} ...", flush=True)
        try:
            rows.append(bench_method(base, method, device, args))
        except Exception as e:  # noqa: BLE001 - record and go on, as the training section does
            rows.append({"method": method, "error": one_line(e)})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    first = next((r for r in rows if "it_per_s" in r), None)  # the baseline: the first method listed
    for row in rows:
        if first and "it_per_s" in row:
            row["speedup_vs_first"] = row["it_per_s"] / first["it_per_s"]
    return {"size": args.size, "precision": args.methods_precision, "batch": args.methods_batch, "rows": rows}
