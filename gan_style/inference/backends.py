"""Run a generator's network on a CPU runtime: PyTorch, ONNX Runtime or OpenVINO, chosen by measurement.

    gen = with_backend(load_generator("runs/monet/last.pt", device="cpu"), "auto")
    print(gen.choice)            # which runtime, and the timings and errors it was chosen by

- ``torch``: the generator as loaded (its ``--precision``: bf16-blocks on CPUs with native bf16);
- ``onnxruntime``: the fp32 ONNX graph (``export.write_onnx``) on ONNX Runtime's CPU provider;
- ``openvino``: the same graph on OpenVINO's CPU plugin, compiled for each input shape (a few kept),
  with the f32 precision hint; ``bf16`` (the plugin's default where the CPU has bf16 units) with
  ``--precision bf16``;
- ``auto``: the fastest of these whose output stays within 2/255 of fp32 PyTorch (3/255 for bf16
  paths), measured with the generator's own weights (``backend_auto.py``); ``choice`` says which.

What a backend runs: one network evaluation (``Generator.evaluate``), so multi-step kinds keep their
steps in Python (``kind.translate(run, ...)``) and call the backend at each, with their
conditioning inputs fed by name. Images that are tiled (``--tile``, or over 4 megapixels with
``auto``) are translated by PyTorch's exact tiling, with the whole-image statistics computed as
before: an ONNX graph normalises whatever it is given by its own statistics, so it runs whole
images only. The CPU backends need ``gan_style[cpu]`` (OpenVINO) or ``gan_style[export]`` (ONNX
Runtime); one that is not installed is one line (``BackendError``).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..devices import BLOCKS
from .export import write_onnx
from .signal_stack import kept_signal_stack
from .translate import Generator, load_generator

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
SHAPES_KEPT = 4  # OpenVINO: compiled models kept, one per input shape (video frames, batches)
INSTALL = {"onnxruntime": "pip install 'gan_style[export]'", "openvino": "pip install 'gan_style[cpu]'"}


class BackendError(ValueError):
    """A backend that cannot run here (not installed, not on this device); the message is one line."""


@dataclass
class Engine:
    """One network evaluation on a runtime: ``run(x, cond)`` with x (N, C, H, W) fp32 on the CPU."""

    name: str  # "onnxruntime fp32", "openvino fp32" (the f32 hint), "torch bf16-blocks" ...
    precision: str  # fp32 or bf16: which tolerance auto applies
    run: Callable[[torch.Tensor, dict], torch.Tensor]
    conditions: tuple[str, ...] = ()  # the conditioning inputs it takes (by name)


@dataclass
class BackendGenerator(Generator):
    """A ``Generator`` whose untiled network evaluations go to ``engine`` (None: PyTorch)."""

    engine: Engine | None = field(default=None, repr=False)
    choice: str = ""  # what runs the network, and why (auto's measurements)

    def evaluate(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        if self.engine is None or set(cond) - set(self.engine.conditions):
            return super().evaluate(x, cond)  # a conditioning input the graph was not exported with: PyTorch
        return self.engine.run(x, cond)


def with_backend(gen: Generator, backend: str = "auto", compile: bool = False) -> BackendGenerator:
    """``gen`` running on ``backend`` (one of BACKENDS). ``compile``: torch.compile the PyTorch
    path first (auto then times the compiled network). BackendError when it cannot run here."""
    if backend not in BACKENDS:
        raise BackendError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    if compile:
        gen = replace(gen).compile()
    if backend == "torch" or (backend == "auto" and (gen.device.type != "cpu" or gen.info.exact)):
        why = "" if backend == "torch" else " (auto: PyTorch on " + \
            ("scientific data, exactly)" if gen.info.exact else f"{gen.device.type})")
        return wrap(gen, None, f"torch {gen.precision}{' compiled' if compile else ''}{why}")
    if gen.device.type != "cpu":
        raise BackendError(f"--backend {backend} runs on the CPU: use --device cpu (or --backend torch)")
    if backend == "auto":
        from .backend_auto import choose  # auto measures the engines defined here

        return choose(gen, compile)
    try:
        engine = make_engine(gen, backend, "bf16" if gen.precision == "bf16" else "fp32")
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - the network does not export or compile: one line, not a trace
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise BackendError(f"--backend {backend}: cannot run {gen.info.origin} ({e.__class__.__name__}: {first}); "
                           "use --backend torch") from None
    return wrap(gen, engine, engine.name)


def backend_loader(backend: str, compile: bool = False) -> Callable[..., BackendGenerator]:
    """``load_generator(weights, direction, device, precision)`` putting each model on ``backend``: the
    app's model catalog loads with it (``gan-style serve --backend``), and logs each choice."""

    def load(weights, direction, device="auto", precision="auto") -> BackendGenerator:
        gen = with_backend(load_generator(weights, direction, device, precision), backend, compile)
        logger.info("%s: backend %s", gen.info.origin, gen.choice)
        return gen

    return load


def wrap(gen: Generator, engine: Engine | None, choice: str) -> BackendGenerator:
    fields = {f: getattr(gen, f) for f in Generator.__dataclass_fields__}
    return BackendGenerator(**fields, engine=engine, choice=choice)


# ---------------------------------------------------------------- engines


def make_engine(gen: Generator, backend: str, precision: str = "fp32", onnx: Path | None = None) -> Engine:
    """An ONNX Runtime or OpenVINO engine for ``gen``'s network; ``onnx``: its graph already written by
    ``write_onnx`` (auto shares one), else it is exported to a temporary folder."""
    runtime = require(backend)
    if onnx is None:
        with tempfile.TemporaryDirectory(prefix="gan_style_backend_") as tmp:
            write_onnx(gen.net, gen.info, Path(tmp) / "g.onnx")
            return make_engine(gen, backend, precision, Path(tmp) / "g.onnx")
    names = tuple(gen.kind.example_conditions(gen.info.arch, 1))
    if backend == "onnxruntime":
        return _onnxruntime(runtime, onnx, names)
    return _openvino(runtime, onnx, names, precision)


def require(backend: str):
    """The runtime module of ``backend`` (onnxruntime or openvino); BackendError when it is not installed."""
    try:
        if backend == "onnxruntime":
            import onnxruntime

            return onnxruntime
        import openvino

        return openvino
    except ImportError:
        raise BackendError(f"--backend {backend}: {backend} is not installed: {INSTALL[backend]}") from None


def _onnxruntime(ort, path: Path, names: tuple[str, ...]) -> Engine:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}  # a conditioning input the network ignores is pruned

    def run(x: torch.Tensor, cond: dict) -> torch.Tensor:
        feed = {"image": _numpy(x)} | {k: _numpy(v) for k, v in cond.items() if k in taken}
        return torch.from_numpy(session.run(None, feed)[0])

    return Engine("onnxruntime fp32", "fp32", run, names)


def _openvino(ov, path: Path, names: tuple[str, ...], precision: str) -> Engine:
    core = ov.Core()
    model = core.read_model(str(path))
    taken = {n for i in model.inputs for n in i.get_names()}
    hint = {"INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
    compiled: OrderedDict[tuple, object] = OrderedDict()  # input shapes -> infer request
    lock = threading.Lock()  # an infer request serves one call at a time (the app may run several)

    def request(feed: dict):
        key = tuple((k, tuple(v.shape)) for k, v in feed.items())
        if key not in compiled:
            # Static shapes: the CPU plugin plans memory and picks kernels for the one size.
            shaped = model.clone()
            shaped.reshape({k: list(v.shape) for k, v in feed.items()})
            with kept_signal_stack():  # the plugin replaces it (signal_stack.py)
                compiled[key] = core.compile_model(shaped, "CPU", hint).create_infer_request()
            while len(compiled) > SHAPES_KEPT:
                compiled.popitem(last=False)
        compiled.move_to_end(key)
        return compiled[key]

    def run(x: torch.Tensor, cond: dict) -> torch.Tensor:
        feed = {"image": _numpy(x)} | {k: _numpy(v) for k, v in cond.items() if k in taken}
        with lock, kept_signal_stack():  # the plugin replaces the thread's signal stack (signal_stack.py)
            return torch.from_numpy(request(feed).infer(feed)[0].copy())  # the request reuses its output buffer

    return Engine(f"openvino {precision}", precision, run, names)


def _numpy(t: torch.Tensor):
    return t.detach().cpu().contiguous().numpy()


def torch_engine(gen: Generator, precision: str) -> Engine:
    """PyTorch in ``precision`` (the same network and compiled function as ``gen``), for auto's timing."""
    g = gen if precision == gen.precision else replace(gen, precision=precision, compiled=None)
    label = f"torch {precision}{' compiled' if g.compiled is not None else ''}"
    return Engine(label, "bf16" if precision in ("bf16", BLOCKS) else "fp32", g.run,
                  tuple(gen.kind.example_conditions(gen.info.arch, 1)))
