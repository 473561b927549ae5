"""Evidence for docs/science.md, from real scans that pip packages ship in their wheels.

    python scripts/science_evidence.py learn OUT [--steps 3000]   # a learning task with a known answer
    python scripts/science_evidence.py baselines OUT              # the learning task's baselines alone (1 s)
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


def save(volume: np.ndarray, like: nib.Nifti1Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = like.header.copy()
    header.set_data_dtype(np.int16)
    nib.save(nib.Nifti1Image(np.rint(volume).astype(np.int16), like.affine, header), str(path))


def build_task(out: Path, seed: int = 0) -> dict[str, np.ndarray]:
    src = nib.load(str(Path(data_path) / "example4d.nii.gz"))
    data = np.asarray(src.dataobj, dtype=np.float64)  # (128, 96, 24, 2)
    like = nib.Nifti1Image(data[..., 0], src.affine, src.header)
    test = np.zeros(data.shape[2], bool)
    test[HELD_OUT] = True
    rng = np.random.default_rng(seed)
    mr, other = data[..., 0], data[..., 1]
    save(mr[:, :, ~test], like, out / "data" / "trainA" / "mr.nii.gz")
    save(f(other[:, :, ~test]) + rng.normal(0, 15, other[:, :, ~test].shape), like, out / "data" / "trainB" / "ct.nii.gz")
    save(mr[:, :, test], like, out / "data" / "testA" / "case.nii.gz")
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
    p.add_argument("what", choices=("learn", "baselines", "roundtrip", "slide"))
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--size", type=int, default=20000, help="slide: its side in pixels (a multiple of 512)")
    args = p.parse_args()
    if args.what == "learn":
        learn(args.out, args.steps)
    elif args.what == "baselines":
        eval_baselines(args.out)
    elif args.what == "slide":
        slide(args.out, args.size)
    else:
        roundtrip(args.out)


if __name__ == "__main__":
    main()
