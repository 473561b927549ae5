"""Mobile exports on this CPU: each format's file size and its latency in the runtime that runs here.

    python -m gan_style.bench.mobile                          # 9-block ngf 64 generator, 256 and 512 px
    python -m gan_style.bench.mobile --sizes 256 --repeats 5 --weights runs/monet/last.pt

For each size, the generator is exported as ``gan-style export`` does (``export_generator``: each
file verified against PyTorch first) to ExecuTorch (XNNPACK), LiteRT (TFLite) and Core ML; the
ExecuTorch program runs in ExecuTorch's Python runtime and the TFLite file in the LiteRT interpreter
(its XNNPACK delegate), with ``torch.get_num_threads()`` threads, beside PyTorch fp32 eager on the
same input. Core ML has no runtime off macOS: its size only. Needs ``gan_style[mobile]`` (not
installed by make). Seconds: the median of ``--repeats`` calls after one warm-up call.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..inference.export import ExportError, export_generator
from .cpu_paths import format_table, random_generator

FORMATS = ("executorch", "tflite", "coreml")


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _runner(fmt: str, path: Path, x: torch.Tensor) -> Callable[[], object] | None:
    if fmt == "executorch":
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(str(path)).load_method("forward")
        return lambda: method.execute([x])
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path), num_threads=torch.get_num_threads())
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        return lambda: (interpreter.set_tensor(index, x.numpy()), interpreter.invoke())
    return None  # Core ML: macOS only


def _megabytes(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def bench_mobile(sizes=(256, 512), weights: str | None = None, ngf: int = 64, n_blocks: int = 9,
                 repeats: int = 3, formats=FORMATS) -> list[dict]:
    """One row per size and format (and PyTorch fp32): file MB, s per image, parity with fp32."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mobile_") as tmp:
        if weights is None:
            weights = str(Path(tmp) / "g.safetensors")
            save_file({k: v.contiguous() for k, v in random_generator(ngf, n_blocks).state_dict().items()}, weights)
        net = None
        for size in sizes:
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
            for fmt in formats:
                try:
                    result = export_generator(weights, fmt, Path(tmp) / str(size), size=size)
                except ExportError as e:
                    rows.append({"size": size, "format": fmt, "mb": 0.0, "s_per_image": float("nan"),
                                 "max_diff_255": float("nan"), "runs_with": f"not exported: {e}"})
                    continue
                run = _runner(fmt, result.path, x)
                seconds = _median_seconds(run, repeats) if run else float("nan")
                diff = float("nan") if result.max_diff is None else result.max_diff * 127.5
                rows.append({"size": size, "format": fmt, "mb": _megabytes(result.path), "s_per_image": seconds,
                             "max_diff_255": diff, "runs_with": result.checked_with.split(":")[0]
                             if run else f"not run ({platform.system()}: Core ML predicts on macOS)"})
            if net is None:
                from ..inference.translate import load_generator

                net = load_generator(weights, device="cpu", precision="fp32").net
            with torch.inference_mode():
                seconds = _median_seconds(lambda: net(x), repeats)
            rows.append({"size": size, "format": "pytorch fp32 eager", "mb": float("nan"), "s_per_image": seconds,
                         "max_diff_255": 0.0, "runs_with": f"torch {torch.__version__}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gan_style.bench.mobile", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512", help="input sizes in pixels, comma-separated (default 256,512)")
    p.add_argument("--weights", help="a generator file (default: random weights, --ngf / --n-blocks)")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--threads", type=int, help="torch and runtime threads (default: PyTorch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rows = bench_mobile(tuple(int(s) for s in args.sizes.split(",")), args.weights, args.ngf, args.n_blocks,
                        args.repeats, tuple(args.formats.split(",")))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
