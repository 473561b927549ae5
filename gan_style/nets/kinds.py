"""The registry of generator kinds (nets/kind.py): one line per kind.

Checkpoints record each generator's kind by name; files that do not (v0.1 and format-2
checkpoints, the reference's and CUT's .pth files) are recognised from their tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .anchored import AnchoredKind
from .film import FiLMKind
from .generator import ResnetKind
from .kind import GeneratorKind
from .unsb import UNSBKind

# Recognised from the last, the most specific: a FiLM generator has a ResNet's keys too, and a
# strength-conditioned UNSB generator a FiLM generator's.
KINDS: dict[str, GeneratorKind] = {"resnet": ResnetKind(), "film": FiLMKind(), "unsb": UNSBKind(),
                                   "anchored": AnchoredKind()}


def kind_named(name: str | None) -> GeneratorKind:
    """The kind recorded as ``name`` (None: a file written before kinds were recorded, a ResNet)."""
    if name is None:
        return KINDS["resnet"]
    if name not in KINDS:
        raise ValueError(f"generator kind {name!r} is unknown to this version (it knows {', '.join(KINDS)})")
    return KINDS[name]


def kind_of(net: nn.Module) -> GeneratorKind:
    """The kind of a built network (unwrapped: no DDP or compile wrapper)."""
    for kind in KINDS.values():
        if type(net) is kind.module:
            return kind
    raise TypeError(f"{type(net).__name__} is not a registered generator kind ({', '.join(KINDS)})")


def recognise(state: Mapping[str, torch.Tensor]) -> GeneratorKind:
    """The kind of a bare state_dict, from its keys; ValueError naming what was expected."""
    for kind in reversed(KINDS.values()):  # later kinds are more specific (see KINDS)
        if kind.recognises(state):
            return kind
    first = ", ".join(list(state)[:3]) or "none"
    raise ValueError(f"its keys match no generator kind ({', '.join(KINDS)}); first keys: {first}")


def describe(net: nn.Module) -> tuple[str, dict]:
    """(kind name, architecture) of a built network: what checkpoints record."""
    kind = kind_of(net)
    return kind.name, kind.arch(net.state_dict()) | {k: getattr(net, k) for k in kind.defaults()}


def translate_with(net: nn.Module, x: torch.Tensor, steps: int | None = None, seed: int = 0) -> torch.Tensor:
    """Translate x (N, C_in, H, W) in [-1, 1] with a built generator of any kind, untiled, in the
    caller's precision context: one pass for one-pass kinds, the kind's steps for multi-step ones
    (``steps`` None: its default). For training-time evaluation and panels; inference has its own
    ``Generator`` (inference/translate.py) with tiling and precision paths."""
    kind = kind_of(net)
    arch = describe(net)[1]
    return kind.translate(lambda xi, cond: net(xi, **cond), x, arch, steps or kind.steps(arch)[0], seed)
