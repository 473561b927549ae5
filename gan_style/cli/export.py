"""``gan-style export``: write a generator as safetensors, TorchScript, ONNX or for phones, verified.

    gan-style export --weights runs/monet/last.pt --direction BtoA                 # exports/monet_BtoA.safetensors
    gan-style export --weights runs/monet/last.pt --format onnx torchscript --half
    gan-style export --weights runs/monet/last.pt --format executorch coreml tflite --size 512   # phones

Imports nothing from the training code.
"""

from __future__ import annotations

import argparse
import sys

from ..io.checkpoint import CheckpointError
from ..io.download import DownloadError
from ..inference.export import DEFAULT_OPSET, FORMATS, MOBILE_SIZE, ExportError, export_generator
from ..inference.weights import DIRECTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style export --weights runs/monet/last.pt --direction BtoA     # -> exports/monet_BtoA.safetensors\n"
        "  gan-style export --weights official:style_monet --format onnx       # -> exports/style_monet.onnx\n"
        "  gan-style export --weights runs/monet --format torchscript onnx --half\n"
        "\nsee docs/translate.md for the exported files' inputs, outputs and metadata"
    )
    a = parser.add_argument
    a(
        "--weights",
        "-w",
        required=True,
        help="training checkpoint (runs/NAME/last.pt or runs/NAME), exported .safetensors, reference .pth, "
        "or official:NAME",
    )
    a(
        "--direction",
        "-d",
        choices=DIRECTIONS,
        help="generator of a training checkpoint: AtoB (G_A) or BtoA (G_B); default BtoA for *2photo datasets, else AtoB",
    )
    a("--raw-weights", action="store_true",
      help="a training checkpoint's raw generator weights instead of their EMA (used by default when train.ema was on)")
    a(
        "--format",
        "-f",
        nargs="+",
        choices=list(FORMATS),
        default=["safetensors"],
        help="one or more of: safetensors (default; what translate prefers), torchscript, onnx; for phones "
        "(pip install 'gan_style[mobile]'): executorch (.pte, XNNPACK), coreml (.mlpackage), tflite (LiteRT)",
    )
    a(
        "--output",
        "-o",
        help=f"output file (one format; ends with {', '.join(FORMATS.values())}) or folder (default: exports/)",
    )
    a("--half", action="store_true", help="export fp16 weights (checked against the fp32 model to 3e-2)")
    a("--size", type=int, default=MOBILE_SIZE, metavar="N",
      help=f"executorch, coreml, tflite: the fixed input size, N x N pixels, a multiple of 4 (default {MOBILE_SIZE}); "
      "a phone app tiles larger photos (docs/translate.md)")
    a(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset (default {DEFAULT_OPSET}, for the widest runtime support; 18+ uses torch's newer exporter)",
    )


def run(args: argparse.Namespace) -> int:
    formats = list(dict.fromkeys(args.format))
    if args.output and len(formats) > 1 and any(args.output.endswith(s) for s in FORMATS.values()):
        print(
            f"error: --output {args.output} is a file name but {len(formats)} formats were asked: pass a folder",
            file=sys.stderr,
        )
        return 2
    if args.opset < 11:
        print(f"error: --opset {args.opset}: use 11 or higher (17 is the default)", file=sys.stderr)
        return 2
    for fmt in formats:
        try:
            result = export_generator(args.weights, fmt, args.output, args.direction, args.half, args.opset,
                                      ema=not args.raw_weights, size=args.size)
        except (CheckpointError, DownloadError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if result.max_diff is None:  # Core ML off macOS: the program was checked, not run
            print(f"{fmt}: {result.path} (checked with {result.checked_with})")
            continue
        print(
            f"{fmt}: {result.path} (verified with {result.checked_with}: max abs difference "
            f"{result.max_diff:.2g} < {result.tolerance:.2g})"
        )
    return 0
