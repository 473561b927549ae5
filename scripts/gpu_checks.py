"""GPU correctness checks for scripts/gpu_run.sh: smoke trains and a resume, in parallel processes.

    python scripts/gpu_checks.py OUT_DIR [--device cuda] [--steps 24] [--timeout 150]

1. Smoke: the tiny config (ngf 8, 2 blocks, 64 px) trains ``--steps`` steps for every method in
   four settings that between them cover bf16 and fp16, eager and torch.compile, NCHW and
   channels_last; each run must end with finite losses and a checkpoint that loads.
2. Resume: CycleGAN and CUT trained 2 x N steps straight, twice, and N + resume + N. CUDA kernels
   are not bitwise deterministic (atomic adds in the backward of the padding and the
   convolutions), so the resumed run cannot be compared with one straight run bitwise: it passes
   when its weights differ from straight run 1 by no more than straight run 2 does (plus 1e-6),
   i.e. resuming adds nothing to the GPU's own run-to-run noise.

Every run is its own ``python -m gan_style train`` process (as a user runs it); they run side by
side, so the whole check takes about as long as its slowest run (a compiled one). Writes
OUT_DIR/gpu_checks.json and prints one line per check. A dry run on a CPU: ``--device cpu`` (fp16
and compile are then skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_style.data.toydata import make_toy_dataset  # noqa: E402
from gan_style.io.checkpoint import load_safe  # noqa: E402
from gan_style.methods import METHODS  # noqa: E402

# (precision, compile, channels_last): each factor appears both ways.
SMOKE_SETTINGS = (("bf16", False, False), ("fp16", False, True), ("bf16", True, True), ("fp16", True, False))


def command(root: Path, out: Path, name: str, device: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "gan_style", "train", "-c", str(REPO / "configs" / "tiny.yaml"),
            f"data.root={root}", f"out_dir={out}", f"name={name}", f"train.device={device}",
            "logging.log_every=4", "logging.n_samples=2", *extra]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "4", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait(procs: dict[str, tuple[subprocess.Popen, Path]], deadline: float) -> dict[str, int | None]:
    codes = {}
    for name, (proc, _) in procs.items():
        try:
            codes[name] = proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = None
    return codes


def checkpoint_summary(path: Path) -> dict:
    if not path.is_file():
        return {"ok": False, "error": f"{path} missing"}
    ckpt = load_safe(path)
    weights = [v for sd in ckpt["models"].values() for v in sd.values() if v.is_floating_point()]
    finite = all(bool(torch.isfinite(v).all()) for v in weights)
    return {"ok": finite, "step": ckpt["step"], "finite": finite}


def rel_diff(a: Path, b: Path) -> float:
    """Largest over networks of ||w_a - w_b|| / ||w_b|| (all float tensors of a network together)."""
    ma, mb = load_safe(a)["models"], load_safe(b)["models"]
    worst = 0.0
    for net in mb:
        da = torch.cat([v.double().flatten() for v in ma[net].values() if v.is_floating_point()])
        db = torch.cat([v.double().flatten() for v in mb[net].values() if v.is_floating_point()])
        worst = max(worst, float((da - db).norm() / db.norm()))
    return worst


def synthetic(method: str, folder: Path) -> list[str]:
    """key=value overrides for the files a method needs on synthetic data (the style method's painting)."""
    def value(v: object) -> str:
        return f"[{','.join(map(str, v))}]" if isinstance(v, list) else str(v)

    return [f"{k}={value(v)}" for k, v in METHODS[method].synthetic_overrides(folder).items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=150)
    args = parser.parse_args()
    out = args.out.resolve()
    runs, logs = out / "runs", out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    root = make_toy_dataset(out / "toy", n_train=16, n_test=2, size=72)
    deadline = time.time() + args.timeout
    cuda = args.device.startswith("cuda")
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    steps = f"train.max_steps={args.steps}"
    for method in METHODS:  # every registered method (UNSB and style included)
        for precision, comp, cl in SMOKE_SETTINGS:
            if not cuda and (precision == "fp16" or comp):
                continue
            name = f"smoke_{method}_{precision}_{'compiled' if comp else 'eager'}_{'cl' if cl else 'nchw'}"
            extra = [f"method={method}", f"train.precision={precision}", f"train.compile={comp}",
                     f"train.channels_last={cl}", steps, *synthetic(method, out)]
            procs[name] = (start(command(root, runs, name, args.device, extra), logs / f"{name}.log"), runs / name)
    # Resume: straight twice (the noise floor) and split in two, the second half a new process.
    half = args.steps // 2
    resume_runs = {}
    for method in ("cyclegan", "cut"):
        base = [f"method={method}", "train.precision=fp32", f"train.max_steps={args.steps}"]
        for name in (f"straight1_{method}", f"straight2_{method}"):
            procs[name] = (start(command(root, runs, name, args.device, base), logs / f"{name}.log"), runs / name)
        name = f"resumed_{method}"
        first = base[:-1] + [f"train.max_steps={half}"]
        resume_runs[name] = (command(root, runs, name, args.device, first), command(root, runs, name, args.device,
                                                                                    base + ["resume=auto"]))
    for name, (first, second) in resume_runs.items():  # the second half starts when the first ends
        log = logs / f"{name}.log"
        subprocess.run(first, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO,
                       env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=max(1.0, deadline - time.time()))
        procs[name] = (start(second, logs / f"{name}_part2.log"), runs / name)
    codes = wait(procs, deadline)

    results: dict[str, dict] = {}
    for name, (_, run_dir) in procs.items():
        row = {"exit_code": codes[name]} | checkpoint_summary(run_dir / "last.pt")
        row["ok"] = row["ok"] and codes[name] == 0 and row.get("step") == args.steps
        if not row["ok"]:
            row["log_tail"] = (logs / f"{name}{'_part2' if name.startswith('resumed') else ''}.log").read_text()[-1500:]
        results[name] = row
    for method in ("cyclegan", "cut"):
        paths = {k: runs / f"{k}_{method}" / "last.pt" for k in ("straight1", "straight2", "resumed")}
        if all(p.is_file() for p in paths.values()):
            noise = rel_diff(paths["straight2"], paths["straight1"])
            resumed = rel_diff(paths["resumed"], paths["straight1"])
            results[f"resume_{method}"] = {"ok": resumed <= noise + 1e-6, "rel_diff_resumed_vs_straight": resumed,
                                           "rel_diff_straight_vs_straight": noise}
        else:
            results[f"resume_{method}"] = {"ok": False, "error": "a run did not finish"}
    info = {"device": args.device, "gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
            "steps": args.steps, "results": results}
    (out / "gpu_checks.json").write_text(json.dumps(info, indent=2))
    for name, row in results.items():
        detail = {k: v for k, v in row.items() if k not in ("ok", "log_tail")}
        print(f"{'PASS' if row['ok'] else 'FAIL'} {name} {detail}", flush=True)
        if "log_tail" in row:
            print("    " + row["log_tail"].strip().splitlines()[-1][:300] if row["log_tail"].strip() else "", flush=True)
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
