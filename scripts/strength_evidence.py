"""Evidence for docs/strength.md: strength-conditioned networks against fixed-weight ones, on a CPU.

    python scripts/strength_evidence.py style    --out OUT [--steps 300] [--size 128]
    python scripts/strength_evidence.py cyclegan --out OUT [--steps 800] [--size 64] [--photos DIR --limit N]
                                                 [--auto] [--ema 0.999]

style: on monet-kaggle's photos (trainB) against its first Monet, one network trained on strengths
[0.1, 0.9] and one at each fixed strength 0.25, 0.5, 0.75, all with the same steps; each evaluated
on 30 held-out photos (testB, 256 px) with the objective's style and content distances
(metrics/style.py), the conditioned one at each of the three strengths.

cyclegan: on monet2photo-mini, photo -> Monet, one CycleGAN trained on strengths [0, 1] and one at
the paper's fixed weights (lambda 10), same steps; each translates the 20 test photos (the
conditioned one at 0, 0.25, 0.5, 0.75, 1); measured: the mean distance of the output from its
photo (8-bit levels) and the colour W1 to the Monet paintings (trainA). ``--photos DIR --limit N``:
evaluate on the first N photos of DIR instead (e.g. monet-kaggle's testB, which no run trains on).
``--auto``: also a run at the fixed weights with train.auto_weights (the adaptive GAN weight).

Both write OUT/<what>.json, a Markdown table on stdout and OUT/strength_<what>_strip.jpg (one photo
at 5 strengths).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_style.inference.translate import load_generator, translate_image  # noqa: E402
from gan_style.io.images import list_images, read_rgb  # noqa: E402
from gan_style.metrics.colour import ColourHistogram, colour_w1  # noqa: E402
from gan_style.metrics.style import evaluate_style  # noqa: E402
from gan_style.methods import load_config  # noqa: E402
from gan_style.training.loop import train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STRIP = (0.0, 0.25, 0.5, 0.75, 1.0)


def run(out: Path, name: str, overrides: dict) -> tuple[Path, float]:
    """Train (or reuse) OUT/runs/<name>; returns its last.pt and the seconds per step."""
    last = out / "runs" / name / "last.pt"
    if last.is_file():
        return last, float("nan")
    keys = {"name": name, "out_dir": str(out / "runs"), "train.device": "cpu", "logging.wandb": "disabled",
            "checkpoint.save_every": 0, "logging.image_every": 0, "data.dataset": None} | overrides
    start = time.perf_counter()
    train(load_config(None, [f"{k}={'null' if v is None else v}" for k, v in keys.items()]))
    return last, (time.perf_counter() - start) / overrides["train.max_steps"]


def strip(weights: Path, photo: Path, dest: Path, strengths=STRIP, size: int = 192) -> None:
    """The photo, then its translation at each strength, side by side."""
    gen = load_generator(weights, device="cpu", precision="fp32")
    image = read_rgb(photo).resize((size, size))
    cells = [image] + [translate_image(gen.with_strength(s), image) for s in strengths]
    out = Image.new("RGB", (len(cells) * (size + 4) - 4, size), "white")
    for i, cell in enumerate(cells):
        out.paste(cell, (i * (size + 4), 0))
    out.save(dest, quality=90)


def style(args: argparse.Namespace) -> dict:
    data = SHARED / "monet-kaggle"
    painting = list_images(data / "trainA")[0]
    common = {"method": "style", "data.root": str(data), "data.load_size": args.size + args.size // 8,
              "data.crop_size": args.size, "data.num_workers": 1, "model.ngf": 32, "model.n_blocks": 5,
              "train.batch_size": 2, "train.lr": 0.001, "train.n_epochs": 1, "train.n_epochs_decay": 0,
              "train.max_steps": args.steps, "style.paintings": f"[{painting}]", "logging.log_every": 50}
    results = {}
    weights, s_it = run(args.out, "style_range", common | {"style.strength_range": "[0.1,0.9]"})
    for s in (0.25, 0.5, 0.75):
        results[f"range@{s}"] = evaluate_style(painting, data / "testB", weights=str(weights), limit=30, strength=s)
    results["range"] = {"s_per_step": s_it}
    for s in (0.25, 0.5, 0.75):
        fixed, s_it = run(args.out, f"style_fixed{s}", common | {"style.strength": s})
        results[f"fixed@{s}"] = evaluate_style(painting, data / "testB", weights=str(fixed), limit=30)
        results[f"fixed@{s}"]["s_per_step"] = s_it
    strip(weights, list_images(data / "testB")[0], args.out / "strength_style_strip.jpg")
    print("| strength | style: range | style: fixed | ratio | content: range | content: fixed | ratio |")
    print("|---|---|---|---|---|---|---|")
    for s in (0.25, 0.5, 0.75):
        r, f = results[f"range@{s}"], results[f"fixed@{s}"]
        print(f"| {s} | {r['style']:.3f} | {f['style']:.3f} | {r['style'] / f['style']:.2f} | {r['content']:.3f} "
              f"| {f['content']:.3f} | {r['content'] / f['content']:.2f} |")
    return results


def chw(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) pixels -> a uint8 (1, 3, H, W) tensor, what ColourHistogram counts."""
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8)).permute(2, 0, 1)[None]


def distances(gen, photos: list[Path], monets: ColourHistogram) -> dict:
    """Mean |output - photo| in 8-bit levels, and the outputs' colour W1 to the Monets."""
    colours, change = ColourHistogram(), []
    for photo in photos:
        image = read_rgb(photo)
        out = np.asarray(translate_image(gen, image), dtype=np.float32)
        change.append(np.abs(out - np.asarray(image, dtype=np.float32)).mean())
        colours.add(chw(out))
    return {"distance": float(np.mean(change)), "colour_w1": colour_w1(colours, monets)}


def cyclegan(args: argparse.Namespace) -> dict:
    data = SHARED / "monet2photo-mini"
    common = {"method": "cyclegan", "data.root": str(data), "data.direction": "BtoA",
              "data.load_size": args.size + args.size // 8, "data.crop_size": args.size, "data.num_workers": 1,
              "model.ngf": 32, "model.ndf": 32, "model.n_blocks": 6, "train.n_epochs": args.steps // 80 + 1,
              "train.n_epochs_decay": 0, "train.max_steps": args.steps, "logging.log_every": 50}
    if args.ema:  # every run's generators averaged (translation uses the average)
        common["train.ema"] = args.ema
    if args.decay:  # the learning rate constant for the first half of the steps, then linearly to 0 (the paper's)
        epochs = -(-args.steps // 80)  # monet2photo-mini: 80 photos, one step each at batch 1
        common |= {"train.n_epochs": epochs - epochs // 2, "train.n_epochs_decay": epochs // 2}
    photos = list_images(args.photos or data / "testB")[: args.limit]
    monets = ColourHistogram()
    for m in list_images(data / "trainA"):
        monets.add(chw(np.asarray(read_rgb(m))))
    ranged, s_range = run(args.out, "cyclegan_range", common | {"train.strength_range": "[0,1]"})
    fixed, s_fixed = run(args.out, "cyclegan_fixed", common)
    gen = load_generator(ranged, "BtoA", device="cpu", precision="fp32")
    results = {f"range@{s}": distances(gen.with_strength(s), photos, monets) for s in STRIP}
    results["fixed"] = distances(load_generator(fixed, "BtoA", device="cpu", precision="fp32"), photos, monets)
    results["s_per_step"] = {"range": s_range, "fixed": s_fixed}
    if args.auto:
        auto, results["s_per_step"]["auto"] = run(args.out, "cyclegan_auto", common | {"train.auto_weights": "true"})
        results["auto"] = distances(load_generator(auto, "BtoA", device="cpu", precision="fp32"), photos, monets)
    results["photos"] = {"dir": str(photos[0].parent), "count": len(photos)}
    strip(ranged, photos[0], args.out / "strength_cyclegan_strip.jpg")
    print("| model | strength | distance from the photo (levels) | colour W1 to the Monets |")
    print("|---|---|---|---|")
    for s in STRIP:
        r = results[f"range@{s}"]
        print(f"| conditioned, [0, 1] | {s} | {r['distance']:.2f} | {r['colour_w1']:.4f} |")
    print(f"| fixed (lambda 10) | - | {results['fixed']['distance']:.2f} | {results['fixed']['colour_w1']:.4f} |")
    if args.auto:
        print(f"| fixed, auto_weights | - | {results['auto']['distance']:.2f} | {results['auto']['colour_w1']:.4f} |")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("style", "cyclegan"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--photos", type=Path, help="cyclegan: evaluate on these photos (default: the dataset's testB)")
    parser.add_argument("--limit", type=int, help="cyclegan: the first N photos only")
    parser.add_argument("--auto", action="store_true", help="cyclegan: also train one with train.auto_weights")
    parser.add_argument("--ema", type=float, default=0.0, help="cyclegan: train.ema for every run (e.g. 0.999; 0: off)")
    parser.add_argument("--decay", action="store_true", help="cyclegan: the learning rate decays to 0 over the second half")
    args = parser.parse_args()
    args.steps = args.steps or {"style": 300, "cyclegan": 800}[args.what]
    args.size = args.size or {"style": 128, "cyclegan": 64}[args.what]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"style": style, "cyclegan": cyclegan}[args.what](args)
    name = args.what if args.photos is None else f"{args.what}_{args.photos.parent.name}_{args.limit}"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
