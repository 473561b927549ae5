"""The "From one painting" tab's work: stylise uploaded photos from an uploaded painting
(gan_style/inference/stylize.py), streaming previews as the painting emerges.

``stylize_stream`` is a generator of ``Update``s: a status line, the newest preview (a small JPEG,
written at most every ``PREVIEW_EVERY_S``) and the finished PNGs. The optimisation runs in a
worker thread that hands its progress to the generator through a queue, so the page can show
each preview while the next steps run. A photo that cannot be read is named and the others go
on; on a CPU the long side is capped (``CPU_MAX_SIDE``), with a note. Imports no training code.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..inference.stylize import StylizeSettings, stylize
from ..io.images import ImageReadError
from ..io.tensors import float_to_image, image_to_float
from ..nets.perceptual import FeatureNet, load_features
from .batch import Limits, read_upload, save_png, save_preview, unique_stem

CPU_MAX_SIDE = 512  # px: about 30 s a photo on 2 CPU cores
PREVIEW_EVERY_S = 1.0
_FEATURES: dict[str, FeatureNet] = {}  # loaded once per server


def features(name: str = "inception") -> FeatureNet:
    if name not in _FEATURES:
        _FEATURES[name] = load_features(name)
    return _FEATURES[name]


@dataclass
class Update:
    status: str
    preview: Path | None = None
    results: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def capped_side(image: Image.Image, device: torch.device, max_side: int | None) -> tuple[int | None, str]:
    """The output's long side (None: the photo's) and a note when a cap shrinks it."""
    cap = max_side if max_side else (CPU_MAX_SIDE if device.type == "cpu" else None)
    if cap is None or max(image.size) <= cap:
        return None, ""
    return cap, f"{max(image.size)} px is over this server's limit of {cap} px: stylised at {cap} px on its long side"


def _run(net: FeatureNet, photo: torch.Tensor, painting: torch.Tensor, settings: StylizeSettings,
         device: torch.device, updates: queue.Queue) -> None:
    """The worker thread: stylise, putting ("step", done, total, image) and then ("done", result) or ("error", e)."""
    try:
        result, _ = stylize(net, photo, [painting], settings, device,
                            lambda done, total, image: updates.put(("step", done, total, image.clone())))
        updates.put(("done", result))
    except Exception as e:  # noqa: BLE001 - reported to the page in one line
        updates.put(("error", e))


def stylize_stream(photos: list[tuple[Path, str]], painting: tuple[Path, str], strength: float, keep_colour: bool,
                   out_dir: Path, device: torch.device, limits: Limits = Limits(), max_side: int | None = None,
                   steps: int = 60) -> Iterator[Update]:
    """Stylise ``photos`` ((path, the user's name)) after ``painting``; see the module doc."""
    style = image_to_float(read_upload(*painting, None, limits))[None]
    net, results, warnings, taken = features(), [], [], set()
    for n, (path, name) in enumerate(photos, start=1):
        try:
            image = read_upload(path, name, None, limits)
        except (ImageReadError, ValueError) as e:
            warnings.append(str(e))
            continue
        side, note = capped_side(image, device, max_side)
        if note:
            warnings.append(f"{name}: {note}")
        settings = StylizeSettings(strength=strength, steps=steps, size=side, preserve_colour=keep_colour)
        dest = out_dir / f"{unique_stem(Path(name).stem, taken)}_painted.png"
        yield from _one_photo(net, image, style, settings, device, dest, f"photo {n} of {len(photos)} ({name})",
                              results, warnings)
    done = f"Stylized {len(results)} of {len(photos)} photo(s) at strength {strength:g} on {device}"
    yield Update(done + (": " + "; ".join(warnings) if warnings else ""), results[-1] if results else None,
                 list(results), list(warnings))


def _one_photo(net: FeatureNet, image: Image.Image, style: torch.Tensor, settings: StylizeSettings,
               device: torch.device, dest: Path, what: str, results: list[Path], warnings: list[str]) -> Iterator[Update]:
    updates: queue.Queue = queue.Queue()
    worker = threading.Thread(target=_run, args=(net, image_to_float(image)[None], style, settings, device, updates),
                              daemon=True)
    worker.start()
    shown = 0.0
    while True:
        item = updates.get()
        if item[0] == "error":
            warnings.append(f"{dest.stem}: {str(item[1]).splitlines()[0] if str(item[1]) else type(item[1]).__name__}")
            return
        if item[0] == "done":
            results.append(save_png(float_to_image(item[1][0]), dest))
            yield Update(f"{what}: done", results[-1], list(results), list(warnings))
            return
        _, step, total, current = item
        if time.monotonic() - shown >= PREVIEW_EVERY_S:
            shown = time.monotonic()
            preview = save_preview(float_to_image(current[0].float().cpu().clamp(-1, 1)),
                                   dest.with_name(f"{dest.stem}_step{step:04d}.jpg"))
            yield Update(f"{what}: step {step} of {total}", preview, list(results), list(warnings))
