"""``--backend auto``: measure the CPU backends with the generator's own weights, keep the fastest
within its tolerance, and remember the choice.

Candidates (``candidates``): PyTorch at the generator's precision and in fp32, ONNX Runtime fp32,
OpenVINO f32 and, on CPUs with bf16 units, OpenVINO bf16; runtimes that are not installed are left
out. One ONNX export serves the ONNX Runtime and OpenVINO candidates. Each runs twice on one smooth
256 x 256 image (``calibration_input``): the first call's output gives its error against fp32
PyTorch (whose own first output is the reference), the second its time. The fastest within 2/255
(3/255 for bf16 paths) wins.

The choice is remembered in ``$GAN_STYLE_CACHE/backends.json`` (default ~/.cache/gan_style), keyed
by a hash of the weights, the generator's precision, ``--compile``, the CPU, the thread count and
the runtimes' versions: a later start with the same model on the same machine builds only the
chosen engine. Delete the file to measure again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..devices import native_bf16_cpu
from ..io.atomic import write_atomic
from .backends import BackendError, BackendGenerator, Engine, make_engine, require, torch_engine, wrap
from .export import write_onnx
from .translate import Generator
from .zoo import cache_dir

logger = logging.getLogger(__name__)

TOLERANCE_255 = {"fp32": 2.0, "bf16": 3.0}  # the bound on the error from fp32 PyTorch, in 8-bit steps
CALIBRATION_SIZE = 256  # each candidate runs on one image of this size
RUNTIMES = ("onnxruntime", "openvino")


@dataclass
class Trial:
    name: str
    seconds: float
    error_255: float  # largest difference from fp32 PyTorch, in 8-bit steps
    tolerance_255: float
    engine: Engine | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error_255 <= self.tolerance_255


def candidates(gen: Generator, onnx: Path) -> list[tuple[str, Callable[[], Engine]]]:
    """(name, build) for each candidate, fp32 PyTorch first (its output is the reference); the
    ONNX-based ones build from the graph at ``onnx``, written when the first of them is built."""
    found = [("torch fp32", lambda: torch_engine(gen, "fp32"))]
    if gen.precision != "fp32":
        found.append((f"torch {gen.precision}", lambda: torch_engine(gen, gen.precision)))

    def build(backend: str, precision: str) -> Callable[[], Engine]:
        def engine() -> Engine:
            if not onnx.exists():
                write_onnx(gen.net, gen.info, onnx)
            return make_engine(gen, backend, precision, onnx)
        return engine

    for backend in RUNTIMES:
        try:
            require(backend)
        except BackendError as e:
            logger.info("%s; auto chooses without it", e)
            continue
        found.append((f"{backend} fp32", build(backend, "fp32")))
    if any(name == "openvino fp32" for name, _ in found) and native_bf16_cpu():
        found.append(("openvino bf16", build("openvino", "bf16")))
    return found


def calibration_input(gen: Generator, size: int = CALIBRATION_SIZE) -> tuple[torch.Tensor, dict]:
    """A smooth random image (not noise: the error of bf16 paths depends on the image's structure)
    and the kind's example conditioning inputs, with the user's (a strength) over them."""
    g = torch.Generator().manual_seed(0)
    channels = gen.kind.channels(gen.info.arch)[0]
    small = torch.rand(1, channels, size // 16, size // 16, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
    return x, gen.kind.example_conditions(gen.info.arch, 1) | gen.conditions(1, torch.device("cpu"))


@torch.inference_mode()
def measure(engine: Engine, x: torch.Tensor, cond: dict, reference: torch.Tensor | None) -> tuple[Trial, torch.Tensor]:
    """The engine's first output (its error; None: it is the reference) and its second call's time."""
    y = engine.run(x, cond).float()
    start = time.perf_counter()
    engine.run(x, cond)
    seconds = time.perf_counter() - start
    error = 0.0 if reference is None else (y - reference).abs().max().item() * 127.5
    return Trial(engine.name, seconds, error, TOLERANCE_255[engine.precision], engine), y


def choose(gen: Generator, compile: bool = False, remember: bool = True) -> BackendGenerator:
    """The remembered choice for this model and machine, else every candidate measured (and, with
    ``remember``, the choice kept for the next start; the bench measures afresh)."""
    key = choice_key(gen, compile)
    remembered = _load_choices().get(key) if remember else None
    if remembered is not None:
        try:
            return _build(gen, remembered["name"], compile, f"{remembered['choice']} [remembered]")
        except Exception as e:  # noqa: BLE001 - a runtime gone or failing since: measure again
            logger.info("remembered backend %s cannot run (%s); measuring again", remembered["name"], e)
    with tempfile.TemporaryDirectory(prefix="gan_style_auto_") as tmp:
        trials = _trials(gen, Path(tmp) / "g.onnx")
    within = [t for t in trials if t.ok]
    if not within:  # nothing ran (torch fp32 failing too): PyTorch in fp32
        return wrap(replace(gen, precision="fp32", compiled=None), None, "torch fp32 (auto: no candidate ran)")
    best = min(within, key=lambda t: t.seconds)
    choice = describe(best, trials)
    if remember:
        _save_choice(key, {"name": best.name, "choice": choice})
    if best.name.startswith("torch"):
        return _build(gen, best.name, compile, choice)
    return wrap(gen, best.engine, choice)


def _trials(gen: Generator, onnx: Path) -> list[Trial]:
    x, cond = calibration_input(gen)
    trials, reference = [], None
    for name, build in candidates(gen, onnx):
        try:
            trial, y = measure(build(), x, cond, reference)
        except Exception as e:  # noqa: BLE001 - a runtime refusing this network: auto goes on without it
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
            logger.warning("backend %s cannot run %s (%s: %s); auto leaves it out", name, gen.info.origin,
                           e.__class__.__name__, first)
            continue
        reference = y if reference is None else reference
        trials.append(trial)
    return trials


def _build(gen: Generator, name: str, compile: bool, choice: str) -> BackendGenerator:
    """The generator running on the candidate called ``name`` ("torch bf16-blocks", "openvino bf16"...)."""
    runtime, precision = name.split()
    if runtime == "torch":
        chosen = gen if precision == gen.precision else replace(gen, precision=precision, compiled=None)
        return wrap(chosen.compile() if compile and chosen.compiled is None else chosen, None, choice)
    return wrap(gen, make_engine(gen, runtime, precision), choice)


def describe(best: Trial, trials: list[Trial]) -> str:
    """One line: the choice, then every candidate's time and error at the calibration size."""
    rows = ", ".join(f"{t.name} {t.seconds:.3g} s {t.error_255:.2f}/255{'' if t.ok else ' (over)'}" for t in trials)
    return f"{best.name} (auto, at {CALIBRATION_SIZE} px: {rows})"


# ---------------------------------------------------------------- the remembered choices


def choice_key(gen: Generator, compile: bool) -> str:
    """What the choice depends on: the weights, the precision, compiling, the CPU, threads, versions."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(gen.net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    machine = [_cpu_name(), torch.backends.cpu.get_cpu_capability(), str(torch.get_num_threads()),
               torch.__version__, *(_version(r) for r in RUNTIMES)]
    h.update(json.dumps([gen.info.kind, gen.precision, compile, machine]).encode())
    return h.hexdigest()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(backend: str) -> str:
    try:
        return f"{backend} {require(backend).__version__}"
    except BackendError:
        return f"{backend} -"


def _choices_file() -> Path:
    return cache_dir() / "backends.json"


def _load_choices() -> dict:
    try:
        return json.loads(_choices_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_choice(key: str, value: dict) -> None:
    choices = _load_choices() | {key: value}
    try:
        _choices_file().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_choices_file(), lambda f: f.write(json.dumps(choices, indent=1)))
    except OSError as e:  # a read-only home: measure again next time
        logger.info("cannot remember the backend choice in %s (%s)", _choices_file(), e)
