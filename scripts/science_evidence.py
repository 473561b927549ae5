"""Evidence for docs/science.md, from real scans that pip packages ship in their wheels.

    python scripts/science_evidence.py learn OUT [--steps 3000]   # a learning task with a known answer
    python scripts/science_evidence.py baselines OUT              # the learning task's baselines alone (1 s)
    python scripts/science_evidence.py robust OUT --steps 3000    # every known-answer task, with and without
                                                                  # anchored generators (--tasks, --variants, --seeds)
    python scripts/science_evidence.py table OUT                  # robust's results as a markdown table
    python scripts/science_evidence.py roundtrip OUT              # 16-bit TIFF, DICOM and NIfTI round trips
    python scripts/science_evidence.py slide OUT --size 20000     # a large slide and a small generator, then:
    /usr/bin/time -v gan-style translate -w OUT/g8.safetensors -i OUT/slide.tif -o OUT/translated --slide --pyramid

The learned model on other real files (docs/science.md prints what pydicom and nibabel read back):

    S=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    gan-style translate -w OUT/runs/science_mr2ct/last.pt -d BtoA -i $S/pydicom/data/test_files/CT_small.dcm -o OUT/dicom_out
    gan-style translate -w OUT/runs/science_mr2ct/last.pt -d AtoB -i $S/nibabel/tests/data/example4d.nii.gz --volume 1 -o OUT/nifti_out

learn: domain A = MR slices of nibabel's ``example4d.nii.gz`` (volume 0); domain B = the same
scanner's volume 1 through a known nonlinear map f (an MR -> "CT" curve into [-1000, 2000]) plus
Gaussian noise. Every 4th slice is held out: its exact answer is f(slice). A 1-channel CycleGAN
trains on the CPU; its translations of the held-out slices are compared with f in the target's
units by ``gan-style eval --paired``, beside its baselines: the input untranslated, histogram
matching to domain B's training file (unpaired, no learning), and the best linear map fitted on
the answer itself (--oracle).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.testing import data_path

BIN = Path(sys.executable).parent
HELD_OUT = slice(3, None, 4)  # slices 3, 7, 11 ... of axis 2: the test set


def f(x: np.ndarray) -> np.ndarray:
    """The known answer: MR values (0..1200) -> 'HU' in [-1000, 2000], a square-root curve."""
    return -1000.0 + 3000.0 * np.sqrt(np.clip(x, 0, None) / 1200.0)


def save(volume: np.ndarray, like: nib.Nifti1Image, path: Path, dtype=np.int16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = like.header.copy()
    header.set_data_dtype(dtype)
    nib.save(nib.Nifti1Image(np.rint(volume).astype(dtype), like.affine, header), str(path))


def build_task(out: Path, seed: int = 0, mr_dtype=np.int16) -> dict[str, np.ndarray]:
    """The MR task's files; ``mr_dtype``: how the MR (domain A, 0..1200) is stored: int16, or uint16
    as many MR scanners store it (the CT-like domain B is int16 either way)."""
    src = nib.load(str(Path(data_path) / "example4d.nii.gz"))
    data = np.asarray(src.dataobj, dtype=np.float64)  # (128, 96, 24, 2)
    like = nib.Nifti1Image(data[..., 0], src.affine, src.header)
    test = np.zeros(data.shape[2], bool)
    test[HELD_OUT] = True
    rng = np.random.default_rng(seed)
    mr, other = data[..., 0], data[..., 1]
    save(mr[:, :, ~test], like, out / "data" / "trainA" / "mr.nii.gz", mr_dtype)
    save(f(other[:, :, ~test]) + rng.normal(0, 15, other[:, :, ~test].shape), like, out / "data" / "trainB" / "ct.nii.gz")
    save(mr[:, :, test], like, out / "data" / "testA" / "case.nii.gz", mr_dtype)
    save(f(other[:, :, test]), like, out / "data" / "testB" / "case.nii.gz")  # panels only
    save(f(mr[:, :, test]), like, out / "truth" / "case.nii.gz")  # the exact answer
    return {"test": mr[:, :, test], "truth": np.rint(f(mr[:, :, test])), "train_B": f(other[:, :, ~test])}


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def learn(out: Path, steps: int) -> None:
    build_task(out)
    epochs = -(-steps // (2 * 18))  # 18 training slices per epoch: the LR decays to ~0 at the last step
    run(str(BIN / "gan-style"), "train", "-c", "configs/science_mr2ct.yaml", f"data.root={out / 'data'}",
        f"out_dir={out / 'runs'}", f"train.max_steps={steps}", f"train.n_epochs={epochs}",
        f"train.n_epochs_decay={epochs}")
    ckpt = out / "runs" / "science_mr2ct" / "last.pt"
    run(str(BIN / "gan-style"), "translate", "-w", str(ckpt), "-d", "AtoB", "-i", str(out / "data" / "testA"),
        "-o", str(out / "pred"), "--overwrite")
    report = out / "paired.json"  # the model beside eval's baselines, over all values and in the body
    run(str(BIN / "gan-style"), "eval", "--paired", "--fake", str(out / "pred"), "--real", str(out / "truth"),
        "--input", str(out / "data" / "testA"), "--reference", str(out / "data" / "trainB"), "--oracle",
        "--mask-above", "-900", "--json", str(report))
    results = json.loads(report.read_text())["results"]["baselines"]["methods"]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


# ---------------------------------------------------------------- known-answer tasks from real images

TILE = 128  # tiles of the 2-D tasks; one in four is held out, the rest alternate between A and B


def gamma(x: np.ndarray) -> np.ndarray:
    return x ** 2.2


def logarithmic(x: np.ndarray) -> np.ndarray:
    return np.log1p(20 * x) / np.log1p(20)


def sigmoid(x: np.ndarray) -> np.ndarray:
    lo, hi = 1 / (1 + np.exp(4.0)), 1 / (1 + np.exp(-6.0))
    return (1 / (1 + np.exp(-10 * (x - 0.4))) - lo) / (hi - lo)


def blurred(curve):
    """The curve, then a wider point-spread function (a Gaussian of sigma 2 px): a map that depends on
    each pixel's neighbourhood, which no intensity map (histogram matching) can make."""
    from scipy.ndimage import gaussian_filter

    return lambda x: gaussian_filter(curve(x), 2.0, mode="reflect")


def skimage_gray(name: str) -> np.ndarray:
    """A real image that ships in scikit-image's wheel, as float64 in [0, 1] (green channel of RGB)."""
    from PIL import Image
    from skimage import data_dir

    im = np.asarray(Image.open(Path(data_dir) / name))
    if im.ndim == 3:
        im = im[..., 1]
    return im.astype(np.float64) / 255.0


# name -> (image, curve): A = the image's tiles as uint16, B = other tiles through the curve as float32
TILE_TASKS = {
    "camera": ("camera.png", gamma),
    "moon": ("moon.png", logarithmic),
    "cell": ("cell.png", sigmoid),
    "gravel-psf": ("gravel.png", blurred(gamma)),  # the context task: a texture under a wider PSF
}


def build_tile_task(out: Path, name: str, seed: int = 0) -> int:
    """Unpaired uint16 (A) and float32 (B) TIFF tiles of one real image; the held-out tiles' answer is the
    curve applied to them (on the whole image, so that a blur sees across tile borders). Returns the
    number of training tiles per domain."""
    import tifffile

    image, curve = TILE_TASKS[name]
    x = skimage_gray(image)
    h, w = (s // TILE * TILE for s in x.shape)
    x = x[:h, :w]
    rng = np.random.default_rng(seed)
    answer = curve(x)
    stored = np.rint(2000 + 50000 * x + rng.normal(0, 40, x.shape)).astype(np.uint16)  # A: a 16-bit camera
    target = (answer + rng.normal(0, 0.005, x.shape)).astype(np.float32)  # B: float32 with its own noise
    tiles = [(i, j) for i in range(0, h, TILE) for j in range(0, w, TILE)]
    for folder in ("data/testA", "data/trainA", "data/trainB", "truth"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    train = [t for k, t in enumerate(tiles) if k % 4 != 1]
    for k, (i, j) in enumerate(tiles):
        cut = (slice(i, i + TILE), slice(j, j + TILE))
        if k % 4 == 1:
            tifffile.imwrite(out / "data" / "testA" / f"t{k:02d}.tif", stored[cut])
            tifffile.imwrite(out / "truth" / f"t{k:02d}.tif", answer[cut].astype(np.float32))
        elif train.index((i, j)) % 2 == 0:
            tifffile.imwrite(out / "data" / "trainA" / f"t{k:02d}.tif", stored[cut])
        else:
            tifffile.imwrite(out / "data" / "trainB" / f"t{k:02d}.tif", target[cut])
    return -(-len(train) // 2)


def correlation(pred_dir: Path, truth_dir: Path, mask_above: float | None) -> float:
    """Pearson correlation of the translations with the answer over every compared value."""
    from gan_style.io.scans import read_scan

    xs, ys = [], []
    for truth in sorted(truth_dir.iterdir()):
        y = read_scan(truth).planes.astype(np.float64).ravel()
        x = read_scan(next(pred_dir.glob(truth.name.split(".")[0] + ".*"))).planes.astype(np.float64).ravel()
        keep = y > mask_above if mask_above is not None else np.ones_like(y, bool)
        xs.append(x[keep])
        ys.append(y[keep])
    return float(np.corrcoef(np.concatenate(xs), np.concatenate(ys))[0, 1])


def dataset_matching_mae(out: Path, mask_above: float | None) -> float:
    """MAE of histogram matching with one map for the whole dataset (trainA's quantiles onto trainB's, as the
    anchor's map, in data units) on the held-out inputs; eval's baseline matches each input on its own."""
    from gan_style.io.scans import read_scan

    levels = np.linspace(0, 1, 1025)
    q = [np.quantile(np.concatenate([read_scan(f).planes.astype(np.float64).ravel()
                                     for f in sorted((out / "data" / f"train{d}").iterdir())]), levels) for d in "AB"]
    errors = []
    for truth in sorted((out / "truth").iterdir()):
        y = read_scan(truth).planes.astype(np.float64).ravel()
        x = np.interp(read_scan(out / "data" / "testA" / truth.name).planes.astype(np.float64).ravel(), *q)
        keep = y > mask_above if mask_above is not None else np.ones_like(y, bool)
        errors.append(np.abs(x - y)[keep])
    return float(np.concatenate(errors).mean())


def variant_overrides(variant: str) -> list[str]:
    """anchor: the shipped config (anchored generators); plain: a plain ResNet CycleGAN; KEY=VALUE[+KEY=VALUE...]: the shipped
    config with these overrides (e.g. train.lambda_histogram=20)."""
    if variant == "anchor":
        return []
    if variant == "plain":
        return ["train.histogram_prior=false", "train.lambda_histogram=0"]
    return variant.split("+")


def robust_run(out: Path, task: str, variant: str, seed: int, steps: int) -> dict:
    """Train the science config on one task, translate the held-out inputs, evaluate beside the baselines."""
    if task in ("mr", "mr-uint16"):
        build_task(out, mr_dtype=np.uint16 if task == "mr-uint16" else np.int16)
        per_epoch, mask, units = 18, -900.0, []
    else:
        per_epoch, mask = build_tile_task(out, task), None
        units = ["data.intensity.B.low=0", "data.intensity.B.high=1"]  # B: float32 in [0, 1]
    label = variant.replace("train.", "").replace("=", "")
    run_dir = out / "runs" / f"{label}-{seed}"
    epochs = -(-steps // (2 * per_epoch))  # the LR decays to ~0 at the last step
    run(str(BIN / "gan-style"), "train", "-c", "configs/science_mr2ct.yaml", f"data.root={out / 'data'}",
        f"out_dir={run_dir}", f"train.max_steps={steps}", f"train.n_epochs={epochs}", f"train.n_epochs_decay={epochs}",
        f"train.seed={seed}", "logging.wandb=disabled", "data.num_workers=0", *units, *variant_overrides(variant))
    pred = out / f"pred-{label}-{seed}"
    run(str(BIN / "gan-style"), "translate", "-w", str(run_dir / "science_mr2ct" / "last.pt"), "-d", "AtoB",
        "-i", str(out / "data" / "testA"), "-o", str(pred), "--overwrite")
    report = out / f"paired-{label}-{seed}.json"
    run(str(BIN / "gan-style"), "eval", "--paired", "--fake", str(pred), "--real", str(out / "truth"), "--input",
        str(out / "data" / "testA"), "--reference", str(out / "data" / "trainB"), "--oracle", "--json", str(report),
        *(["--mask-above", str(mask)] if mask is not None else []))
    methods = json.loads(report.read_text())["results"]["baselines"]["methods"]
    part = "mask" if mask is not None else "all"
    model, matching = methods["model"][part]["mae"], methods["histogram matching"][part]["mae"]
    return {"task": task, "variant": variant, "seed": seed, "steps": steps, "mae": model, "histogram_mae": matching,
            "ratio": model / matching, "oracle_mae": methods["best linear map (oracle)"][part]["mae"],
            "dataset_matching_mae": dataset_matching_mae(out, mask), "r": correlation(pred, out / "truth", mask),
            "where": "body" if mask is not None else "all pixels"} | written(pred)


def written(pred: Path) -> dict:
    """How the translations were stored: their dtype and fraction of negative values (NIfTI outputs only)."""
    files = sorted(pred.glob("*.nii.gz"))
    if not files:
        return {}
    values = np.concatenate([np.asarray(nib.load(str(f)).dataobj).ravel() for f in files])
    return {"written_dtype": str(values.dtype), "negative_fraction": float(np.mean(values < 0))}


def robust(out: Path, steps: int, tasks: list[str], variants: list[str], seeds: list[int]) -> None:
    """Each task x variant x seed; results.jsonl gets one line per run (kept across calls)."""
    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for variant in variants:
            for seed in seeds:
                row = robust_run(out / task, task, variant, seed, steps)
                with open(out / "results.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def table(out: Path) -> None:
    """results.jsonl of ``robust`` as a markdown table (the last run of each task, variant and seed)."""
    rows = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows[r["task"], r["variant"], r["seed"]] = r
    print("| task | generators | MAE | histogram matching (eval, per input) | model / matching | one map for the "
          "training set | oracle linear map | r |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows.values():
        print(f"| {r['task']} ({r['where']}) | {r['variant']} | {r['mae']:.4g} | {r['histogram_mae']:.4g} | "
              f"{r['ratio']:.2f} | {r['dataset_matching_mae']:.4g} | {r['oracle_mae']:.4g} | {r['r']:+.3f} |")


def eval_baselines(out: Path) -> None:
    """The learning task's baselines as ``gan-style eval --paired`` reports them beside any model (here the
    untranslated input stands in the model's place): histogram matching onto domain B's training file,
    the oracle linear map, over all values and in the body."""
    build_task(out)
    run(str(BIN / "gan-style"), "eval", "--paired", "--fake", str(out / "data" / "testA"), "--input",
        str(out / "data" / "testA"), "--real", str(out / "truth"), "--reference", str(out / "data" / "trainB"),
        "--oracle", "--mask-above", "-900", "--json", str(out / "baselines.json"))


def roundtrip(out: Path) -> None:
    """The checks docs/science.md quotes: exact 16-bit TIFF, and DICOM / NIfTI read back by their libraries."""
    import pydicom
    import tifffile

    from gan_style.io.scans import read_scan, write_scan

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 65536, (3, 64, 80), dtype=np.uint16)
    tifffile.imwrite(out / "in16.tif", stack, resolution=(10.0, 10.0))
    scan = read_scan(out / "in16.tif")
    write_scan(out / "out16.tif", scan, scan.planes)
    back = tifffile.imread(out / "out16.tif")
    print(f"16-bit TIFF: {stack.shape} {stack.dtype} -> {back.shape} {back.dtype}, identical: "
          f"{np.array_equal(stack, back)}, max value {back.max()}")
    ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    scan = read_scan(ct)
    scan.meta["derivation"] = "round trip"
    write_scan(out / "CT_small_derived.dcm", scan, scan.planes)
    a, b = pydicom.dcmread(ct), pydicom.dcmread(out / "CT_small_derived.dcm")
    hu = b.pixel_array * float(b.RescaleSlope) + float(b.RescaleIntercept)
    print(f"DICOM: HU {scan.planes.min():.0f}..{scan.planes.max():.0f}; re-read by pydicom: same HU "
          f"{np.array_equal(hu, scan.planes[0, ..., 0])}, PatientName {b.PatientName} == {a.PatientName}, "
          f"new SeriesInstanceUID {b.SeriesInstanceUID != a.SeriesInstanceUID}, ImageType {list(b.ImageType)}")
    nii = Path(data_path) / "anatomical.nii"
    scan = read_scan(nii, axis=2)
    write_scan(out / "anatomical.nii", scan, scan.planes)
    x, y = nib.load(str(nii)), nib.load(str(out / "anatomical.nii"))
    print(f"NIfTI: {x.shape} {x.get_data_dtype()} -> {y.shape} {y.get_data_dtype()}, same affine "
          f"{np.array_equal(x.affine, y.affine)}, same zooms {x.header.get_zooms() == y.header.get_zooms()}, "
          f"same values {np.array_equal(np.asarray(x.dataobj), np.asarray(y.dataobj))}")


def slide(out: Path, size: int) -> None:
    """A size x size RGB BigTIFF (512 px zlib tiles) tiled from scikit-image's ihc.png (a stain image,
    every other tile flipped), and a small random generator (ngf 8, 2 blocks: speed and memory do not
    depend on the weights)."""
    import tifffile
    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from skimage import data_dir

    from gan_style.nets import ResnetGenerator, init_weights

    out.mkdir(parents=True, exist_ok=True)
    ihc = np.asarray(Image.open(Path(data_dir) / "ihc.png").convert("RGB"))[:512, :512]
    tiles = (np.ascontiguousarray(ihc if (x + y) % 2 == 0 else ihc[::-1, ::-1])
             for y in range(0, size, 512) for x in range(0, size, 512))
    tifffile.imwrite(out / "slide.tif", tiles, shape=(size, size, 3), dtype="uint8", tile=(512, 512),
                     photometric="rgb", bigtiff=True, compression="zlib", resolution=(40000.0, 40000.0),
                     resolutionunit="CENTIMETER")
    torch.manual_seed(0)
    save_file(init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.02).state_dict(), str(out / "g8.safetensors"))
    print(f"{out / 'slide.tif'}: {size} x {size} px; generator {out / 'g8.safetensors'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("learn", "baselines", "robust", "table", "roundtrip", "slide"))
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--size", type=int, default=20000, help="slide: its side in pixels (a multiple of 512)")
    p.add_argument("--tasks", default="mr," + ",".join(TILE_TASKS),
                   help="robust: which tasks (also mr-uint16: the MR task with the MR stored as uint16)")
    p.add_argument("--variants", default="anchor,plain", help="robust: anchor (the shipped config), plain (ResNet generators), KEY=VALUE[+...] (overrides)")
    p.add_argument("--seeds", default="0", help="robust: training seeds, e.g. 0,1")
    args = p.parse_args()
    if args.what == "table":
        table(args.out)
    elif args.what == "robust":
        robust(args.out, args.steps, args.tasks.split(","), args.variants.split(","),
               [int(x) for x in args.seeds.split(",")])
    elif args.what == "learn":
        learn(args.out, args.steps)
    elif args.what == "baselines":
        eval_baselines(args.out)
    elif args.what == "slide":
        slide(args.out, args.size)
    else:
        roundtrip(args.out)


if __name__ == "__main__":
    main()
