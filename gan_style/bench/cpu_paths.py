"""CPU translation paths side by side: which way of running a generator is fastest on this CPU.

    python -m gan_style.bench.cpu_paths                              # 9-block generator, 1024x768
    python -m gan_style.bench.cpu_paths --weights runs/monet/last.pt --photos photos/ --repeats 3

For one image (untiled, batch 1) each path reports seconds per image (the median of
``--repeats`` rounds that call every path once in turn, so that other load on the machine hits
all paths alike; and the best round), images per second, the first call's time (compilation,
session creation) and its largest difference from fp32 eager on the same input, in 1/255 of the
output range (an 8-bit pixel step). Paths:

- ``fp32`` / ``fp32 channels_last``: PyTorch eager, NCHW or NHWC;
- ``bf16`` / ``bf16 channels_last``: the same under ``torch.autocast("cpu", torch.bfloat16)``
  (fast only where the CPU has native bf16 units: AMX or AVX512-BF16);
- ``bf16-blocks`` (+ ``channels_last``): only the residual blocks' convolutions in bf16, every
  full- and half-resolution layer and every norm in fp32 (``--precision bf16-blocks``);
- ``fp32 compile`` / ``bf16-blocks compile``: ``torch.compile`` (inductor, dynamic shapes), as
  ``--compile`` does; the first call compiles (run with a fresh ``TORCHINDUCTOR_CACHE_DIR`` to
  see the cold compile time);
- ``onnxruntime fp32``: the model as ``gan-style export --format onnx`` writes it, on
  onnxruntime's CPU provider;
- ``openvino f32`` / ``openvino bf16``: the same graph on OpenVINO's CPU plugin with that precision
  hint (``--backend openvino``, ``inference/backends.py``); left out when OpenVINO is not installed;
- ``backend auto``: what ``--backend auto`` chooses for this generator (its choice is in the row's
  ``auto_choice``), run as translate runs it;
- ``gan_style default``: what ``gan-style translate`` and ``serve`` do with ``--precision auto``.

``--photos`` measures, in addition, the largest bf16 and bf16-blocks error on each photo at its
own size (the rule: precision=auto may pick a bf16 path on the CPU only if its error stays under
2/255 on real photos).
Self-contained: imports no training code. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..inference.backend_auto import choose
from ..inference.backends import BackendError, make_engine, require
from ..inference.translate import Generator, load_generator, translate_tensor
from ..io.images import list_images, read_rgb
from ..io.tensors import image_to_float
from ..nets import KINDS, init_weights

PATHS = (
    "fp32",
    "fp32 channels_last",
    "bf16",
    "bf16 channels_last",
    "bf16-blocks",
    "bf16-blocks channels_last",
    "fp32 compile",
    "bf16-blocks compile",
    "onnxruntime fp32",
    "openvino f32",
    "openvino bf16",
    "backend auto",
    "gan_style default",
)
Runner = Callable[[torch.Tensor], torch.Tensor]  # (1, 3, H, W) in [-1, 1] -> the same, fp32
AUTO_CHOICE: dict[Path, str] = {}  # what "backend auto" chose, by run folder


def synthetic_photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A smooth random colour image (W, H): something between noise and a flat photo."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8))
    return small.resize((w, h), Image.Resampling.BICUBIC)


def random_generator(ngf: int, n_blocks: int, seed: int = 0) -> torch.nn.Module:
    # Gain 0.2, not the reference's 0.02: an untrained 0.02 generator's output is nearly constant.
    torch.manual_seed(seed)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": n_blocks}
    return init_weights(KINDS["resnet"].build(arch), gain=0.2).eval().requires_grad_(False)


def torch_runner(gen: Generator, precision: str, channels_last: bool, compiled: bool) -> Runner:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(gen.net).to(memory_format=fmt)
    g = Generator(net, gen.info, gen.device, precision)
    forward = g.compile().compiled if compiled else g.forward  # as --compile does: dynamic shapes

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        return forward(x.contiguous(memory_format=fmt)).float()

    return run


def onnx_runner(gen: Generator, folder: Path) -> Runner:
    import onnxruntime as ort
    from safetensors.torch import save_file

    from ..inference.export import export_generator

    weights = folder / "g.safetensors"
    save_file({k: v.contiguous() for k, v in gen.net.state_dict().items()}, str(weights))
    path = export_generator(weights, "onnx", folder / "g.onnx").path
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def make_runner(path: str, gen: Generator, folder: Path) -> Runner:
    if path == "onnxruntime fp32":
        return onnx_runner(gen, folder)
    if path.startswith("openvino"):
        engine = make_engine(gen, "openvino", "fp32" if path.endswith("f32") else "bf16")
        return lambda x: engine.run(x, {})
    if path == "backend auto":
        chosen = choose(load_generator(folder / "default.safetensors", device="cpu", precision="auto"), remember=False)
        AUTO_CHOICE[folder] = chosen.choice
        return lambda x: translate_tensor(chosen, x, tile=0)
    if path == "gan_style default":
        default = load_generator(folder / "default.safetensors", device="cpu", precision="auto")
        return lambda x: translate_tensor(default, x, tile=0)
    precision, *rest = path.split()
    return torch_runner(gen, precision, "channels_last" in rest, "compile" in rest)


def time_runners(runners: dict[str, Runner], x: torch.Tensor, repeats: int) -> dict[str, dict]:
    """First call, then ``repeats`` rounds calling each runner once in turn (so that a change in
    the machine's load hits every path alike): first-call seconds, all timings, the output."""
    results = {}
    for name, run in runners.items():
        start = time.perf_counter()
        y = run(x)
        results[name] = {"first": time.perf_counter() - start, "times": [], "output": y}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x)
            results[name]["times"].append(time.perf_counter() - start)
    return results


def max_error_255(y: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest difference of two outputs in [-1, 1], in 8-bit steps (1/255 of the range)."""
    return (y.float() - ref.float()).abs().max().item() * 127.5


def _generator(weights: str | None, direction: str | None, ngf: int, n_blocks: int, folder: Path) -> Generator:
    from safetensors.torch import save_file

    gen = load_generator(weights, direction, device="cpu", precision="fp32") if weights else None
    net = gen.net if gen else random_generator(ngf, n_blocks)
    # The "default" path loads from a file, exactly as translate does.
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "default.safetensors"))
    return load_generator(folder / "default.safetensors", device="cpu", precision="fp32")


def bench_cpu_paths(
    size: tuple[int, int] = (1024, 768),
    ngf: int = 64,
    n_blocks: int = 9,
    repeats: int = 3,
    paths: tuple[str, ...] = PATHS,
    weights: str | None = None,
    image: str | Path | None = None,
    direction: str | None = None,
) -> list[dict]:
    """Time each of ``paths`` on one (W, H) = ``size`` image; returns one row per path.

    ``weights`` (and ``direction`` for a training checkpoint): a generator file to use instead of a
    random ``ngf``/``n_blocks`` one; ``image``: a photo to translate (resized to ``size``) instead
    of a synthetic one.
    """
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(f"unknown paths {unknown}: choose from {', '.join(PATHS)}")
    paths = tuple(p for p in paths if not p.startswith("openvino") or _installed("openvino"))
    img = read_rgb(image).resize(size, Image.Resampling.BICUBIC) if image else synthetic_photo(size)
    x = image_to_float(img)[None]
    with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
        gen = _generator(weights, direction, ngf, n_blocks, Path(tmp))
        ref = torch_runner(gen, "fp32", False, False)(x)
        results = time_runners({p: make_runner(p, gen, Path(tmp)) for p in paths}, x, repeats)
        choice = AUTO_CHOICE.pop(Path(tmp), None)
    rows = []
    for path, r in results.items():
        median = statistics.median(r["times"])
        rows.append({
            "path": path,
            "s_per_image": median,
            "img_per_s": 1.0 / median,
            "best_s": min(r["times"]),
            "first_call_s": r["first"],
            "max_err_255": max_error_255(r["output"], ref),
        } | ({"auto_choice": choice} if path == "backend auto" else {}))
    return rows


def _installed(backend: str) -> bool:
    try:
        require(backend)
        return True
    except BackendError:
        return False


def photo_errors(
    weights: str | None, photos: list[Path], ngf: int = 64, n_blocks: int = 9, direction: str | None = None
) -> list[dict]:
    """The largest bf16 and bf16-blocks vs fp32 difference (in 1/255) on each photo, at its own size."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
        gen = _generator(weights, direction, ngf, n_blocks, Path(tmp))
        gens = {p: Generator(gen.net, gen.info, gen.device, p) for p in ("fp32", "bf16", "bf16-blocks")}
        for photo in photos:
            x = image_to_float(read_rgb(photo))[None]
            out = {p: translate_tensor(g, x) for p, g in gens.items()}
            row = {"photo": photo.name, "size": f"{x.shape[3]}x{x.shape[2]}"}
            rows.append(row | {f"{p}_err_255": max_error_255(out[p], out["fp32"]) for p in ("bf16", "bf16-blocks")})
    return rows


def format_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gan_style.bench.cpu_paths", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1024x768", help="W x H of the timed image (default 1024x768)")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after the first call (median)")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from: {', '.join(PATHS)}")
    p.add_argument("--weights", help="a generator file (default: random ngf/n_blocks weights)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), help="the generator of a training checkpoint")
    p.add_argument("--image", help="translate this photo (resized to --size) instead of a synthetic one")
    p.add_argument("--photos", nargs="*", default=[], help="image files or folders: bf16 error on each")
    p.add_argument("--threads", type=int, help="torch threads (default: PyTorch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    paths = tuple(s.strip() for s in args.paths.split(",") if s.strip())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
    rows = bench_cpu_paths(
        (w, h), args.ngf, args.n_blocks, args.repeats, paths, args.weights, args.image, args.direction
    )
    print(format_table(rows))
    for row in rows:
        if "auto_choice" in row:
            print(f"backend auto chose: {row['auto_choice']}")
    photos = [q for s in args.photos for q in (list_images(Path(s)) if Path(s).is_dir() else [Path(s)])]
    if photos:
        print(format_table(photo_errors(args.weights, photos, args.ngf, args.n_blocks, args.direction)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
