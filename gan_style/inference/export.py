"""Export a generator for deployment: safetensors, TorchScript or ONNX, each verified.

- safetensors: the weights plus ``GeneratorInfo`` (architecture, mean/std, multiple of 4,
  direction, domain names) as metadata, so ``load_generator`` needs no other file. This is the
  format ``gan-style translate`` prefers: it loads without unpickling anything.
- TorchScript (``torch.jit.script``) and ONNX: a graph taking (N, 3, H, W) in [-1, 1] with H and
  W multiples of 4 and returning the same shape in [-1, 1]; batch, height and width are dynamic.
  ONNX uses opset 17 by default (onnxruntime >= 1.12, TensorRT >= 8.5, OpenVINO, ...).
- Generators conditioned on more than the image (a kind's ``example_conditions``: UNSB's time step
  and noise vector) are exported as the one-step network, taking those inputs after the image
  (TorchScript by tracing); a multi-step kind's schedule is in the metadata (``kind``, ``arch``),
  and the caller runs the steps (docs/translate.md shows the loop). One graph then serves every
  number of steps, and a phone app can stop after any of them.

Every file is written to a temporary name, checked against the PyTorch model on a random input
of another size than the one used for export (max abs difference below 1e-4 for fp32, 3e-2 for
fp16, which is compared with the fp32 model), and only then moved into place.
Imports nothing from the training code.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import usual_permissions
from .translate import load_generator
from .weights import GeneratorInfo

FORMATS = {"safetensors": ".safetensors", "torchscript": ".torchscript.pt", "onnx": ".onnx",
           # phones (mobile.py): fixed input sizes, converters from gan_style[mobile]
           "executorch": ".pte", "coreml": ".mlpackage", "tflite": ".tflite"}
MOBILE_SIZE = 512  # the mobile exports' input size unless --size
DEFAULT_OPSET = 17
TOLERANCE = {False: 1e-4, True: 3e-2}  # by half
EXAMPLE_SHAPE = (1, 3, 64, 64)  # traced with this...
CHECK_SHAPE = (2, 3, 72, 56)  # ...verified with this: proves batch, height and width are dynamic


class ExportError(RuntimeError):
    """An export that failed or did not match the PyTorch model; nothing was written."""


@dataclass
class ExportResult:
    path: Path
    max_diff: float
    tolerance: float
    checked_with: str


def default_name(info: GeneratorInfo, weights: str, half: bool) -> str:
    """monet_BtoA, style_monet, or the weights file's stem (+ _fp16)."""
    if info.run_name:
        stem = f"{info.run_name}_{info.direction}"
    elif weights.startswith("official:"):
        stem = weights.removeprefix("official:")
    else:
        stem = Path(weights).name.split(".")[0]
    return stem + ("_fp16" if half else "")


def export_generator(
    weights: str | Path,
    fmt: str,
    output: str | Path | None = None,
    direction: str | None = None,
    half: bool = False,
    opset: int = DEFAULT_OPSET,
    ema: bool = True,
    size: int = MOBILE_SIZE,
) -> ExportResult:
    """Export the generator in ``weights`` (anything ``load_generator`` reads) as ``fmt``.

    ``output``: a file name, or a folder (default ``exports/``) to put ``<name><suffix>`` in.
    ``ema``: a checkpoint's averaged generator when it has one (else the raw weights).
    ``size``: the fixed input size of the mobile formats (executorch, coreml, tflite).
    ``max_diff`` is None where the format's runtime cannot run here (Core ML off macOS).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    gen = load_generator(weights, direction, device="cpu", precision="fp32", ema=ema)
    info = gen.info
    path = Path(output) if output is not None else Path("exports")
    if not path.name.endswith(FORMATS[fmt]):
        path = path / (default_name(info, str(weights), half) + FORMATS[fmt])
    path.parent.mkdir(parents=True, exist_ok=True)
    writer, tolerance = {"safetensors": _safetensors, "torchscript": _torchscript, "onnx": _onnx}.get(fmt), TOLERANCE[half]
    if writer is None:
        from .mobile import MOBILE_TOLERANCE, mobile_writer

        writer, tolerance = mobile_writer(fmt, size), MOBILE_TOLERANCE
    # Not mkstemp: its files are private (0600); this one gets the usual permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{FORMATS[fmt]}"
    try:
        diff, checked_with = writer(gen.net, info, Path(tmp), half, opset)
        if diff is not None and not diff < tolerance:
            raise ExportError(
                f"{path}: the {fmt} model differs from PyTorch by {diff:.3g} (> {tolerance:.3g}); not written"
            )
        _move_into_place(Path(tmp), path)
    finally:
        if Path(tmp).is_dir():  # an .mlpackage
            shutil.rmtree(tmp, ignore_errors=True)
        Path(tmp).unlink(missing_ok=True)
    return ExportResult(path, diff, tolerance, checked_with)


def _move_into_place(tmp: Path, path: Path) -> None:
    """``tmp`` onto ``path``; a folder (an .mlpackage) replaces the previous one, which is removed after."""
    if not tmp.is_dir():
        usual_permissions(tmp)  # some writers (safetensors) create private files
        os.replace(tmp, path)
        return
    old = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.old"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _check_input(info: GeneratorInfo) -> tuple[torch.Tensor, ...]:
    """A random image (model.input_nc channels) and the kind's conditioning inputs, if any."""
    shape = (CHECK_SHAPE[0], info.arch.get("in_channels", 3), *CHECK_SHAPE[2:])
    torch.manual_seed(0)
    conditions = info.generator_kind.example_conditions(info.arch, CHECK_SHAPE[0])
    return (torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1, *conditions.values())


def _condition_names(info: GeneratorInfo) -> list[str]:
    return list(info.generator_kind.example_conditions(info.arch, 1))


class Positional(nn.Module):
    """``forward(image, *conditions)`` -> ``net(image, **conditions)``: the exported signature."""

    def __init__(self, net: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.net, self.names = net, names

    def forward(self, x: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        return self.net(x, **dict(zip(self.names, conditions)))


@torch.inference_mode()
def _reference(net: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str]) -> torch.Tensor:
    return Positional(net, names)(*inputs).float()


def _half(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.half() if t.is_floating_point() else t for t in inputs)


def _metadata_json(info: GeneratorInfo, half: bool) -> str:
    meta = {k: json.loads(v) if k not in ("format", "format_version") else v for k, v in info.to_metadata().items()}
    meta["dtype"] = "float16" if half else "float32"
    if info.exact:  # scientific data: source_intensity / target_intensity say how units map to [-1, 1]
        meta["input"] = (f"(N, {info.arch['in_channels']}, H, W): data units mapped to [-1, 1] by source_intensity; "
                         "H and W multiples of 4")
        meta["output"] = f"(N, {info.arch['out_channels']}, H, W) in [-1, 1]: data units by target_intensity"
    else:
        meta["input"] = "(N, 3, H, W) RGB, (pixel/255 - mean)/std, i.e. in [-1, 1]; H and W multiples of 4"
        meta["output"] = "(N, 3, H, W) RGB in [-1, 1]: pixel = (y + 1) * 127.5"
    return json.dumps(meta)


def _safetensors(net: nn.Module, info: GeneratorInfo, path: Path, half: bool, opset: int) -> tuple[float, str]:
    from safetensors.torch import save_file

    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to(dtype).contiguous() for k, v in net.state_dict().items()}
    meta = info.to_metadata() | {"dtype": json.dumps("float16" if half else "float32")}
    save_file(state, str(path), metadata=meta)
    reloaded = load_generator(path, device="cpu", precision="fp32")  # the same route translate takes
    inputs, names = _check_input(info), _condition_names(info)
    return (_reference(reloaded.net, inputs, names) - _reference(net, inputs, names)).abs().max().item(), \
        "load_generator"


def _torchscript(net: nn.Module, info: GeneratorInfo, path: Path, half: bool, opset: int) -> tuple[float, str]:
    model = copy.deepcopy(net).eval()
    if half:
        model = model.half()
    inputs, names = _check_input(info), _condition_names(info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still runs everywhere; tracer notes
        # Conditioned kinds return features on other paths of their forward: traced at the example
        # size (every op is size-generic, which the check at another size proves); others scripted.
        scripted = torch.jit.trace(Positional(model, names), _half(_example(info)) if half else _example(info)) \
            if names else torch.jit.script(model)
        torch.jit.save(scripted, str(path), _extra_files={"gan_style.json": _metadata_json(info, half)})
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        y = loaded(*(_half(inputs) if half else inputs)).float()
    return (y - _reference(net, inputs, names)).abs().max().item(), "torch.jit.load"


def _example(info: GeneratorInfo) -> tuple[torch.Tensor, ...]:
    """The export's example inputs: zeros of EXAMPLE_SHAPE and the kind's example conditions."""
    shape = (EXAMPLE_SHAPE[0], info.arch.get("in_channels", 3), *EXAMPLE_SHAPE[2:])
    return (torch.zeros(shape), *info.generator_kind.example_conditions(info.arch, EXAMPLE_SHAPE[0]).values())


def _onnx(net: nn.Module, info: GeneratorInfo, path: Path, half: bool, opset: int) -> tuple[float, str]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'gan_style[export]'") from None
    model = copy.deepcopy(net).eval()
    if half:
        model = model.half()
    names = _condition_names(info)
    example = _half(_example(info)) if half else _example(info)
    _torch_onnx_export(Positional(model, names) if names else model, example, names, path, opset)
    proto = onnx.load(str(path))
    proto.doc_string = (f"gan_style {info.kind} generator: image (N,C,H,W) in [-1,1], H and W multiples of 4"
                        + "".join(f", {n}" for n in names) + " -> output")
    entry = proto.metadata_props.add()
    entry.key, entry.value = "gan_style", _metadata_json(info, half)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = _check_input(info)
    # By name: a conditioning input the network ignores (UNSB's step index in the official blocks) is
    # pruned from the graph.
    given = dict(zip(["image", *names], _half(inputs) if half else inputs))
    feed = {i.name: given[i.name].numpy() for i in session.get_inputs()}
    y = torch.from_numpy(session.run(None, feed)[0]).float()
    return (y - _reference(net, inputs, names)).abs().max().item(), f"onnxruntime {ort.__version__}"


def write_onnx(net: nn.Module, info: GeneratorInfo, path: Path, opset: int = DEFAULT_OPSET) -> list[str]:
    """The fp32 ONNX graph of ``net`` alone (no metadata, not verified): inputs ``image`` and the kind's
    conditioning inputs, output ``output``; batch, height and width dynamic. For the CPU backends
    (backends.py), which check it themselves. Returns the conditioning input names."""
    names = _condition_names(info)
    model = copy.deepcopy(net).eval()
    _torch_onnx_export(Positional(model, names) if names else model, _example(info), names, path, opset)
    return names


def _torch_onnx_export(model: nn.Module, example: tuple[torch.Tensor, ...], conditions: list[str], path: Path,
                       opset: int) -> None:
    names = {"input_names": ["image", *conditions], "output_names": ["output"]}
    dims = {0: "batch", 2: "height", 3: "width"}
    axes = {"image": dims, "output": dims} | {n: {0: "batch"} for n in conditions}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer notes from torch.onnx, not actionable here
        if opset < 18:
            # Opsets below 18 come from the TorchScript-based exporter; the torch.export-based one
            # starts at 18 and cannot convert the reflection Pad down to 17.
            try:
                torch.onnx.export(
                    model,
                    example,
                    str(path),
                    dynamo=False,
                    opset_version=opset,
                    dynamic_axes=axes,
                    **names,
                )
                return
            except (TypeError, RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
                raise ExportError(f"ONNX opset {opset} export failed ({e}); try --opset 18") from None
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=True,
                opset_version=opset,
                external_data=False,
                dynamic_shapes=(dims, tuple({0: "batch"} for _ in conditions)) if conditions else {"x": dims},
                **names,
            )
