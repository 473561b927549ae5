"""The steps section: multi-step generators (a kind whose translation takes several network
evaluations, e.g. UNSB's) timed at each number of steps (NFE) and image size, untiled, with random
weights of the config's ngf and blocks: seconds per image, and per evaluation."""

from __future__ import annotations

import torch

from ..config import Config
from ..nets import KINDS
from .common import one_line, time_it


def bench_steps(base: Config, device: torch.device, args) -> list[dict]:
    """One row per (kind, size, steps) for every registered multi-step kind."""
    from ..inference.translate import Generator, translate_tensor
    from ..inference.weights import GeneratorInfo

    m, rows = base.model, []
    for name, kind in KINDS.items():
        arch = kind.defaults() | {"in_channels": 3, "out_channels": 3, "ngf": m.ngf, "n_blocks": m.n_blocks}
        _, most = kind.steps(arch)
        if most == 1:
            continue
        torch.manual_seed(0)
        net = kind.build(arch).eval().requires_grad_(False).to(device)
        info = GeneratorInfo(arch=arch, origin=f"random {name} weights (bench)", kind=name)
        for size in args.translate_sizes:
            x = torch.rand(1, 3, size, size) * 2 - 1
            for steps in range(1, most + 1):
                gen = Generator(net, info, device, "fp32", steps)
                row = {"kind": name, "size": size, "steps": steps}
                try:
                    timing = time_it(lambda: translate_tensor(gen, x, tile=0), device, 0, 1, 1)  # noqa: B023
                    row |= {"s_per_img": timing["s_per_call"], "s_per_step": timing["s_per_call"] / steps}
                except (RuntimeError, MemoryError) as e:
                    row["error"] = one_line(e)
                rows.append(row)
    return rows
