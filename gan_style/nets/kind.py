"""The interface of a generator kind: what inference needs to know of a family of generator networks.

A kind is one class in the file of its network (``ResnetKind`` in generator.py, ``UNSBKind`` in
unsb.py) plus its line in ``KINDS`` (kinds.py). Checkpoints record, for each generator, its kind's
``name`` and its ``arch`` (the constructor's arguments); everything that builds a generator
(translate, tiling, export, the app, video, slides, fine-tuning, the bench) goes through the kind.

How an image is translated belongs to the kind: ``translate`` calls ``run(x, cond)`` (one network
evaluation with conditioning inputs ``cond``, e.g. a time step and a noise vector) as many times
as it needs. The default is one pass with no conditioning. Exact tiling is a capability: a kind
that can write its network, at fixed conditioning, as a chain of plain layers (``layers``) is
tiled exactly (inference/tiling.py); one that cannot (``layers`` returns None) is tiled with
overlapping, blended tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

# One network evaluation: (N, C_in, H, W) and its conditioning inputs -> (N, C_out, H, W).
Run = Callable[[torch.Tensor, dict], torch.Tensor]


class GeneratorKind:
    """A family of generator networks: how to build, recognise, run and export one."""

    name: str = ""  # recorded in checkpoints and exports: "resnet", "unsb"
    module: type[nn.Module] = nn.Module

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Whether a bare state_dict (no record of its kind: a reference .pth) is of this kind."""
        raise NotImplementedError

    def arch(self, state: Mapping[str, torch.Tensor]) -> dict:
        """The constructor arguments that can be read from the tensors; ValueError if they cannot."""
        raise NotImplementedError

    def defaults(self) -> dict:
        """Constructor arguments that the tensors cannot tell (a schedule...), for files that do
        not record them: the official defaults."""
        return {}

    def build(self, arch: Mapping) -> nn.Module:
        return self.module(**arch)

    def channels(self, arch: Mapping) -> tuple[int, int]:
        return int(arch.get("in_channels", 3)), int(arch.get("out_channels", 3))

    # ---- translation

    def steps(self, arch: Mapping) -> tuple[int, int]:
        """(default, most) network evaluations per image; (1, 1) for one-pass generators."""
        return 1, 1

    def translate(self, run: Run, x: torch.Tensor, arch: Mapping, steps: int, seed: int) -> torch.Tensor:
        """Translate x (N, C_in, H, W) in [-1, 1] with ``steps`` evaluations of ``run``; noise,
        if any, drawn per image from ``seed`` (so one input and one seed give one output,
        whatever the batch). Default: one pass with no conditioning."""
        return run(x, {})

    def strength_range(self, arch: Mapping) -> tuple[float, float] | None:
        """The strengths a strength-conditioned kind was trained on (its ``strength`` input, in [0, 1]:
        docs/strength.md), or None for kinds trained at a fixed loss weight."""
        return None

    bound_forward = False  # translation runs ``layers`` (cheaper at fixed conditioning), not the module's forward

    def layers(self, net: nn.Module, cond: Mapping[str, torch.Tensor]) -> list[nn.Module] | None:
        """The network at fixed conditioning (one image) as a chain of plain layers for exact
        tiling, or None: then large images are tiled with overlapping, blended tiles."""
        return None

    # ---- export

    def example_conditions(self, arch: Mapping, n: int) -> dict[str, torch.Tensor]:
        """Example values of the conditioning inputs for a batch of n (exports take them as
        inputs after the image, in this order); {} for unconditioned generators."""
        return {}


def image_noise(seed: int, n: int) -> list[torch.Generator]:
    """One CPU random stream per image of a batch, each seeded with ``seed``: an image's noise
    does not depend on the other images of its batch, nor on the device."""
    return [torch.Generator().manual_seed(seed) for _ in range(n)]


def draw(streams: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Standard normal noise (len(streams), *shape), image i from stream i, on ``device``."""
    return torch.stack([torch.randn(shape, generator=g) for g in streams]).to(device)


def one_pass_conditions(kind: GeneratorKind, arch: Mapping, seed: int) -> dict[str, torch.Tensor]:
    """The conditioning inputs of a one-evaluation translation (steps=1) with ``seed``, for one image:
    what streamed pipelines (slides) bind the network to. {} for unconditioned kinds."""
    seen: list[dict] = []

    def record(x: torch.Tensor, cond: dict) -> torch.Tensor:
        seen.append(cond)
        return x

    channels = kind.channels(arch)[0]
    kind.translate(record, torch.zeros(1, channels, 8, 8), arch, 1, seed)
    return seen[0]
