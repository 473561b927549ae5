"""Which generators the app offers, how they are labelled, and a bounded cache of loaded ones.

The server builds the list of choices once, at start-up, from files it finds or is given; the page
only ever sends back one of these labels. A label that is not in the list is refused: nothing a
browser sends is ever used as a path.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..devices import resolve_device, resolve_inference_precision
from ..inference.translate import Generator, load_generator
from ..domains import DIRECTIONS
from ..inference.weights import official_domains, read_generator
from ..inference.zoo import OFFICIAL_MODELS
from ..io.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

# The published model zoos: (prefix of the weights spec, model names). The CUT zoo joins here.
ZOOS: tuple[tuple[str, tuple[str, ...]], ...] = (("official", OFFICIAL_MODELS),)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")  # what read_generator reads (not .onnx/.torchscript)


@dataclass(frozen=True)
class ModelChoice:
    """One generator the server offers: its label in the page and, server-side only, its weights."""

    label: str
    weights: str  # a path or official:NAME, given to load_generator
    direction: str | None  # passed to load_generator: picks G_A / G_B of a training checkpoint
    kind: str  # run, export, official or weights (given with --weights)
    steps: int = 1  # the most network evaluations it takes (multi-step generators: the app's Steps slider)
    strength_range: tuple[float, float] | None = None  # strength-conditioned generators: the Strength slider's range


class UnknownModel(ValueError):
    """A model label the server did not offer."""


def arrow(source: str, target: str) -> str:
    return f"{source} → {target}"


def file_choices(path: Path, kind: str, name: str) -> list[ModelChoice]:
    """A choice for each direction ``read_generator`` accepts in ``path``; none if it reads none.

    Training checkpoints give two (G_A and G_B), files of one generator one. An error for one
    direction (a file holding only the other, a damaged file) just drops that direction.
    """
    found: dict[tuple[str, str | None], ModelChoice] = {}
    for direction in DIRECTIONS:
        try:
            _, info = read_generator(path, direction)
        except (CheckpointError, OSError, ValueError, RuntimeError):
            continue
        if info.exact:  # scientific data: the app shows photos (gan-style translate reads such files)
            continue
        # A file that records no direction accepts both: (origin, None) offers it once.
        way = f" ({info.direction})" if info.direction else ""
        label = f"{name}: {arrow(info.source, info.target)}{way}"
        steps, span = info.generator_kind.steps(info.arch)[1], info.generator_kind.strength_range(info.arch)
        found.setdefault((info.origin, info.direction), ModelChoice(label, str(path), direction, kind, steps, span))
    return list(found.values())


def zoo_choices(zoos: Iterable[tuple[str, tuple[str, ...]]] = ZOOS) -> list[ModelChoice]:
    """The published models, labelled without downloading them (they download on first use)."""
    return [
        ModelChoice(f"{prefix} {name}: {arrow(*official_domains(name))}", f"{prefix}:{name}", None, "official")
        for prefix, names in zoos
        for name in names
    ]


def given_choices(specs: Iterable[str]) -> list[ModelChoice]:
    """Choices for ``--weights``: an unreadable file is an error here (the user asked for it)."""
    out: list[ModelChoice] = []
    for spec in specs:
        prefix, _, name = spec.partition(":")
        if any(prefix == p and name in names for p, names in ZOOS):
            out += zoo_choices([(prefix, (name,))])
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            path = path / "last.pt"
        label = path.parent.name if path.name == "last.pt" else path.name.split(".")[0]
        found = file_choices(path, "weights", label)
        if not found:
            read_generator(path)[1].check_rgb()  # raises the one-line reason
        out += found
    return out


def discover(
    runs: Path | None = Path("runs"), exports: Path | None = Path("exports"), official: bool = True
) -> list[ModelChoice]:
    """Every generator under ``runs`` (*/last.pt) and ``exports``, then the official zoo."""
    out: list[ModelChoice] = []
    if runs is not None and runs.is_dir():
        for ckpt in sorted(runs.glob("*/last.pt")):
            out += _report_empty(ckpt, file_choices(ckpt, "run", ckpt.parent.name))
    if exports is not None and exports.is_dir():
        for f in sorted(p for p in exports.iterdir() if p.name.endswith(WEIGHT_SUFFIXES) and p.is_file()):
            out += _report_empty(f, file_choices(f, "export", f.name.split(".")[0]))
    if official:
        out += zoo_choices()
    return out


def _report_empty(path: Path, found: list[ModelChoice]) -> list[ModelChoice]:
    if not found:
        logger.warning("serve: skipping %s: not a generator gan_style can read", path)
    return found


def unique_labels(choices: list[ModelChoice]) -> list[ModelChoice]:
    """Drop repeated (weights, direction) pairs; number labels that still collide."""
    seen: set[tuple[str, str | None]] = set()
    counts: dict[str, int] = {}
    out = []
    for c in choices:
        where = c.weights if c.kind == "official" else str(Path(c.weights).resolve())
        if (where, c.direction) in seen:
            continue
        seen.add((where, c.direction))
        counts[c.label] = counts.get(c.label, 0) + 1
        label = c.label if counts[c.label] == 1 else f"{c.label} ({counts[c.label]})"
        out.append(ModelChoice(label, c.weights, c.direction, c.kind, c.steps, c.strength_range))
    return out


def load_compiled(weights: str, direction: str | None, device, precision: str) -> Generator:
    """``load_generator``, then torch.compile it and compile now, on a small image, so that the
    wait (20-50 s on a 2-core CPU) is part of loading the model, not of a translation."""
    gen = load_generator(weights, direction, device, precision).compile()
    gen(torch.zeros(1, 3, 192, 256))
    return gen


class Catalog:
    """The offered choices by label, and the loaded generators (at most ``max_loaded``, LRU)."""

    def __init__(self, choices: list[ModelChoice], max_loaded: int = 2, loader: Callable = load_generator,
                 max_memory: int | None = None) -> None:
        self.choices = {c.label: c for c in unique_labels(choices)}
        self.max_memory = max_memory  # bytes one image's translation may take (inference/memory.py); None: no budget
        self.max_loaded = max(1, max_loaded)
        self._loader = loader
        self._loaded: OrderedDict[tuple[str, str, str], Generator] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def choice(self, label: str) -> ModelChoice:
        try:
            return self.choices[label]
        except (KeyError, TypeError):
            raise UnknownModel(f"{label!r} is not one of the models this server offers") from None

    def get(self, label: str, device: str = "auto", precision: str = "auto", steps: int | None = None,
            strength: float | None = None) -> Generator:
        """The loaded generator for ``label`` (loading, or downloading, it on first use); ``steps``:
        its network evaluations per image (multi-step generators; None: all); ``strength``: how
        strongly to translate (strength-conditioned generators; None: the middle of their range)."""
        gen = self._loaded_generator(label, device, precision)
        gen = gen if self.max_memory is None else gen.within(self.max_memory)
        gen = gen if steps is None else gen.with_steps(steps)
        return gen if strength is None else gen.with_strength(strength)

    def _loaded_generator(self, label: str, device: str, precision: str) -> Generator:
        choice = self.choice(label)
        dev = resolve_device(device)
        key = (label, str(dev), resolve_inference_precision(precision, dev))
        with self._lock:  # one load at a time: two users never download the same file twice
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            gen = self._loader(choice.weights, choice.direction, dev, key[2])
            self._loaded[key] = gen
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return gen

    def loaded(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._loaded)
