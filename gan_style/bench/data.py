"""The data section: the training input pipeline alone (decode + albumentations), per DataLoader
worker count, and the image decoders compared."""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..config import Config

def bench_data(base: Config, args) -> dict:
    """Decode + augmentation throughput of the training pipeline, per DataLoader worker count."""
    try:
        from ..data.dataset import UnpairedDataset, UnpairedSampler, build_transform
    except ImportError as e:
        return {"skipped": f"the data pipeline needs albumentations ({e}); install gan_style's dependencies"}
    d = base.data
    with tempfile.TemporaryDirectory(prefix="gan_style_bench_") as tmp:
        root = Path(args.data_root) if args.data_root else _jpeg_toy_dataset(Path(tmp), args.data_images, d.load_size)
        transform = build_transform(d.preprocess, d.load_size, d.crop_size, d.flip)
        dataset = UnpairedDataset(root, transform, args.data_images)
        n = len(dataset)
        rows = []
        for workers in args.workers:
            sampler = UnpairedSampler(len(dataset.paths["A"]), len(dataset.paths["B"]), seed=0)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=1, sampler=sampler, num_workers=workers, prefetch_factor=4 if workers else None
            )
            start = time.perf_counter()
            it = iter(loader)
            next(it)  # worker start-up is paid once per run (persistent workers), not per epoch
            startup = time.perf_counter() - start
            # Items the workers prepared while starting come at once: time the steady rate after them.
            skip = min(workers * 4, max(0, n - 3))
            for _ in range(skip):
                next(it)
            start = time.perf_counter()
            count = sum(1 for _ in it)
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "workers": workers,
                    "pairs_per_s": count / elapsed,
                    "startup_s": startup,
                    "pairs_per_s_per_worker": count / elapsed / max(workers, 1),
                    "pairs_timed": count,
                }
            )
        decoders = _bench_decoders(dataset.paths["A"][:32])
    return {
        "root": str(args.data_root or f"generated: {n} JPEG pairs, {d.load_size} px"),
        "transform": f"{d.preprocess} {d.load_size}->{d.crop_size}, flip={d.flip}",
        "loader": rows,
        "decode_ms_per_image": decoders,
    }


def _jpeg_toy_dataset(root: Path, n: int, size: int) -> Path:
    """The toy dataset as JPEGs (the official datasets are JPEG), ``size`` px square."""
    from PIL import Image

    from ..data.toydata import make_toy_dataset

    make_toy_dataset(root, n_train=n, n_test=0, size=size)
    for png in root.glob("train*/*.png"):
        with Image.open(png) as img:
            img.convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    return root


def _bench_decoders(paths: list[Path]) -> dict:
    """Milliseconds per image to decode files to an RGB array with each available decoder."""
    import numpy as np

    from ..io.images import read_rgb

    decoders = {"PIL (read_rgb, used now)": lambda p: np.asarray(read_rgb(p))}
    with contextlib.suppress(ImportError):
        import cv2

        decoders["cv2.imread + BGR->RGB"] = lambda p: cv2.cvtColor(
            cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
        )
    with contextlib.suppress(ImportError):
        from torchvision.io import ImageReadMode, decode_image, read_file

        decoders["torchvision.io.decode_image"] = lambda p: decode_image(read_file(str(p)), mode=ImageReadMode.RGB)
    out = {}
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (measured all the same)
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, decode in decoders.items():
            for p in paths[:2]:
                decode(p)  # warm the page cache and the library
            start = time.perf_counter()
            for p in paths:
                decode(p)
            out[name] = (time.perf_counter() - start) / max(len(paths), 1) * 1e3
    return out

