"""Exports for phones, each verified where its runtime runs: ExecuTorch, Core ML and LiteRT (TFLite).

- ``executorch``: a ``.pte`` program with the XNNPACK delegate (Android and iOS CPUs), checked with
  ExecuTorch's Python runtime;
- ``coreml``: an ``.mlpackage`` (ML program, iOS 16 / macOS 13 and later, fp32 unless ``--half``).
  Core ML predicts only on macOS: elsewhere the converted program is checked instead (its inputs
  and outputs, their shapes, and that it holds only the expected operations), and the parity
  check is left to a Mac (``max_diff`` None);
- ``tflite``: a LiteRT flatbuffer converted by ``litert-torch``, checked with the LiteRT interpreter.

Mobile graphs have **fixed input sizes**: (1, C, size, size), ``size`` a multiple of 4 (default
512), plus the kind's conditioning inputs (UNSB: ``time_cond``, ``z``). A phone app translates a
larger photo in overlapping tiles of that size blended with linear ramps (``tiling.translate_blended``
is the recipe); each tile is normalised by its own statistics, so a photo fits best when scaled to
about the export size first (docs/translate.md). Parity: the largest difference from the fp32
PyTorch network on a random input must stay under 2/255 of the output range.

A converter that is not installed, or that refuses an operation, is one line naming the package or
the operation (``ExportError``); nothing is written. The converters come with ``gan_style[mobile]``.
"""

from __future__ import annotations

import copy
import platform
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import BlurUpsample
from .export import ExportError, Positional, _condition_names, _reference
from .weights import GeneratorInfo

MOBILE_TOLERANCE = 2 / 127.5  # 2/255 of the [-1, 1] output range
PACKAGES = {"executorch": "executorch", "coreml": "coremltools", "tflite": "litert_torch"}
# What a Core ML program of a ResNet generator holds (UNSB's adds its conditioning's ops).
COREML_OPS = {"add", "const", "conv", "conv_transpose", "crop", "instance_norm", "pad", "relu", "tanh", "mul",
              "sub", "real_div", "reshape", "identity", "expand_dims", "squeeze", "matmul", "linear", "gather", "cast",
              "slice_by_index", "concat", "leaky_relu", "silu", "sigmoid", "layer_norm", "reduce_mean", "sqrt",
              "rsqrt", "pow", "exp", "sin", "cos", "transpose", "tile", "split", "batch_norm"}


def mobile_writer(fmt: str, size: int) -> Callable[..., tuple[float | None, str]]:
    """The export writer of ``fmt`` for (1, C, size, size) inputs: (net, info, path, half, opset) -> (diff, checked_with)."""
    if size % 4 or size < 32:
        raise ExportError(f"--size {size}: mobile exports need a multiple of 4, at least 32")
    writer = {"executorch": _executorch, "coreml": _coreml, "tflite": _tflite}[fmt]
    return lambda net, info, path, half, opset: _convert(fmt, writer, net, info, path, half, size)


def _convert(fmt: str, writer, net: nn.Module, info: GeneratorInfo, path: Path, half: bool,
             size: int) -> tuple[float | None, str]:
    if half and fmt != "coreml":
        raise ExportError(f"--half: {fmt} exports are fp32 (Core ML alone stores fp16 here)")
    _require(fmt)
    names = _condition_names(info)
    model = Positional(copy.deepcopy(net).eval(), names).eval()
    example, check = _inputs(info, size, 0), _inputs(info, size, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converters' deprecation and version notes
            return writer(model, names, example, check, path, half, _reference(net, check, names))
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - a converter refusing the network: one line naming the op
        raise ExportError(f"{fmt} export of {info.origin} failed: the converter refused {refused_op(e)}; "
                          "nothing written") from None


def _require(fmt: str) -> None:
    try:
        __import__(PACKAGES[fmt])
    except ImportError:
        raise ExportError(f"{fmt} export needs {PACKAGES[fmt].replace('_', '-')}: pip install 'gan_style[mobile]' "
                          "(docs/translate.md, mobile exports)") from None


def refused_op(error: BaseException) -> str:
    """The operation a converter's error names (``aten.foo``, ``mhlo.convolution``, a MIL op ...), else its first line."""
    text = str(error)
    for pattern in (r"(aten[.:]{1,2}[A-Za-z_0-9.]+)", r"operation '([\w.]+)'", r"\bop(?:erator)? '?([\w.:]+)'? (?:is )?not",
                    r"Unsupported (?:op|operator|node)[: ]+'?([\w.:]+)"):
        found = re.search(pattern, text)
        if found:
            return f"the op {found.group(1)}"
    first = text.strip().splitlines()[0][:160] if text.strip() else error.__class__.__name__
    return f"the network ({error.__class__.__name__}: {first})"


def _inputs(info: GeneratorInfo, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """A random image (1, C, size, size) in [-1, 1] and the kind's example conditions."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, info.arch.get("in_channels", 3), size, size, generator=g) * 2 - 1
    conditions = info.generator_kind.example_conditions(info.arch, 1)
    return (image, *conditions.values())


def _diff(y, reference: torch.Tensor) -> float:
    return (torch.as_tensor(y).float() - reference).abs().max().item()


# ---------------------------------------------------------------- ExecuTorch


def _executorch(model, names, example, check, path: Path, half, reference) -> tuple[float, str]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    program = to_edge_transform_and_lower(torch.export.export(model, example), partitioner=[XnnpackPartitioner()])
    path.write_bytes(program.to_executorch().buffer)
    method = Runtime.get().load_program(str(path)).load_method("forward")
    return _diff(method.execute(list(check))[0], reference), "the ExecuTorch runtime (XNNPACK)"


# ---------------------------------------------------------------- LiteRT


class CroppedTranspose(nn.Module):
    """ConvTranspose2d with padding p and output_padding as the unpadded transposed convolution cropped
    at p: the same values, in a form LiteRT's converter takes (it refuses the padded one, lowered to a
    dilated convolution)."""

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        y = F.conv_transpose2d(x, c.weight, c.bias, stride=c.stride, groups=c.groups, dilation=c.dilation)
        (p, q), (op, oq) = c.padding, c.output_padding
        h = (x.shape[2] - 1) * c.stride[0] - 2 * p + c.dilation[0] * (c.kernel_size[0] - 1) + op + 1
        w = (x.shape[3] - 1) * c.stride[1] - 2 * q + c.dilation[1] * (c.kernel_size[1] - 1) + oq + 1
        return y[..., p : p + h, q : q + w]


class CroppedBlurUpsample(nn.Module):
    """``BlurUpsample`` (CUT's and UNSB's antialiased upsampling) with its transposed blur unpadded and
    cropped by 2 + 1 instead: the same values, for LiteRT as above."""

    def __init__(self, blur: BlurUpsample) -> None:
        super().__init__()
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.blur
        return F.conv_transpose2d(b.pad(x), b.filt.to(x.dtype), stride=2, groups=x.shape[1])[:, :, 3:-3, 3:-3]


def cropped_transposes(module: nn.Module) -> nn.Module:
    """``module`` with every padded transposed convolution (ConvTranspose2d, BlurUpsample) in its cropped,
    unpadded form (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.ConvTranspose2d) and any(child.padding):
            setattr(module, name, CroppedTranspose(child))
        elif isinstance(child, BlurUpsample):
            setattr(module, name, CroppedBlurUpsample(child))
        else:
            cropped_transposes(child)
    return module


def _tflite(model, names, example, check, path: Path, half, reference) -> tuple[float, str]:
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    litert_torch.convert(cropped_transposes(model), example).export(str(path))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), check):
        interpreter.set_tensor(detail["index"], value.numpy().astype(detail["dtype"]))
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return _diff(y, reference), "the LiteRT interpreter"


# ---------------------------------------------------------------- Core ML


def _coreml(model, names, example, check, path: Path, half, reference) -> tuple[float | None, str]:
    import coremltools as ct
    import numpy as np

    program = torch.export.export(model, example).run_decompositions({})
    inputs = [ct.TensorType(name=n, shape=t.shape, dtype=np.float32 if t.is_floating_point() else np.int32)
              for n, t in zip(["image", *names], example)]
    mlmodel = ct.convert(program, inputs=inputs, outputs=[ct.TensorType(name="output")], convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS16,
                         compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32)
    mlmodel.save(str(path))
    described = check_coreml(ct.models.MLModel(str(path), skip_model_load=True), ["image", *names], example)
    if platform.system() != "Darwin":
        return None, f"coremltools: {described}; prediction needs macOS"
    feed = {n: t.numpy() if t.is_floating_point() else t.numpy().astype(np.int32)
            for n, t in zip(["image", *names], check)}
    return _diff(mlmodel.predict(feed)["output"], reference), f"Core ML on macOS ({described})"


def check_coreml(mlmodel, names: list[str], example: tuple[torch.Tensor, ...]) -> str:
    """Check a saved Core ML program's inputs, output and operations; returns what was checked (ExportError if wrong)."""
    spec = mlmodel.get_spec()
    got = {i.name: tuple(i.type.multiArrayType.shape) for i in spec.description.input}
    want = {n: tuple(t.shape) for n, t in zip(names, example)}
    outputs = [o.name for o in spec.description.output]
    if got != want or outputs != ["output"]:
        raise ExportError(f"the Core ML program takes {got} and gives {outputs}, not {want} -> ['output']")
    ops = {op.type for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
           for op in b.operations}
    unexpected = ops - COREML_OPS
    if unexpected:
        raise ExportError(f"the Core ML program holds unexpected operations: {', '.join(sorted(unexpected))}")
    return f"inputs {want}, output 'output', {len(ops)} kinds of operation ({', '.join(sorted(ops))})"
