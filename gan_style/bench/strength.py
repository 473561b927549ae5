"""The strength section: what loss-conditional training costs (docs/strength.md). For every method
that can train on a strength range (``strength_key``), one training step with and without one, at
the methods section's settings; and translation with a strength-conditioned generator against the
plain one of the same widths, at each translation size."""

from __future__ import annotations

import torch

from ..config import Config
from ..methods import METHODS
from .common import one_line, time_it, time_pair
from .methods import method_step

SPAN = [0.0, 1.0]


def bench_strength(base: Config, device: torch.device, args) -> list[dict]:
    rows = []
    for method, cls in METHODS.items():
        if cls.strength_key is None:
            continue
        try:
            rows.append(train_row(base, method, cls.strength_key, device, args))
        except Exception as e:  # noqa: BLE001 - record and go on, as the methods section does
            rows.append({"what": f"train {method}", "error": one_line(e)})
    return rows + [translate_row(base, device, size) for size in args.translate_sizes]


def train_row(base: Config, method: str, key: str, device: torch.device, args) -> dict:
    """Seconds per training step without and with a strength range, timed in alternating chunks
    (``time_pair``: the ratio is the median of the pairs', robust to a shared machine's slow spells)."""
    plain, plain_batch = method_step(base, method, device, args)
    ranged, ranged_batch = method_step(base, method, device, args, {key: SPAN})
    timing = time_pair(lambda: plain.step(plain_batch), lambda: ranged.step(ranged_batch), device,
                       args.warmup, args.iters, args.repeats)
    return {"what": f"train {method}", "plain_s": timing["a_s"], "conditioned_s": timing["b_s"],
            "ratio": timing["ratio"], "pair_ratios": [round(r, 3) for r in timing["ratios"]]}


def translate_row(base: Config, device: torch.device, size: int) -> dict:
    """Seconds per image (fp32, untiled) of the plain and the strength-conditioned ResNet generator."""
    from ..inference.translate import Generator, translate_tensor
    from ..inference.weights import GeneratorInfo
    from ..nets import KINDS, init_weights

    m, x, seconds = base.model, torch.rand(1, 3, size, size) * 2 - 1, {}
    arch = {"in_channels": 3, "out_channels": 3, "ngf": m.ngf, "n_blocks": m.n_blocks}
    for name, kind_arch in (("resnet", arch), ("film", arch | {"strength_range": SPAN})):
        net = init_weights(KINDS[name].build(kind_arch)).eval().requires_grad_(False).to(device)
        gen = Generator(net, GeneratorInfo(arch=kind_arch, origin="bench", kind=name), device, "fp32",
                        strength=0.5 if name == "film" else None)
        seconds[name] = time_it(lambda: translate_tensor(gen, x, tile=0), device, 1, 1, 2)["s_per_call"]  # noqa: B023
    return {"what": f"translate {size} px", "plain_s": seconds["resnet"], "conditioned_s": seconds["film"],
            "ratio": seconds["film"] / seconds["resnet"]}
