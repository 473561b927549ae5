"""Each speed-up gives the same training as the plain path, within its precision's tolerance.

The plain path is ``gan_style.bench.training.ReferenceStep``: the reference implementation's iteration
(six separate generator passes, separate discriminator backwards, default Adam, fp32, NCHW).
Tiny models on the CPU. Adam's first step moves every weight by about +-lr whatever the size of
its gradient, so rounding noise in near-zero gradients becomes lr-sized weight changes: the
multi-step comparisons use a tiny lr to keep that noise far below the tolerances.
"""

from __future__ import annotations

import contextlib
import functools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_style.bench.common import compiled_graphs
from gan_style.bench.methods import method_config
from gan_style.bench.training import ReferenceStep, count_flops, generator_flops
from gan_style.cli import bench
from gan_style.methods import METHODS, load_config
from gan_style.methods.cyclegan import STAT_NAMES, CycleGAN

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One PyTorch thread: when other processes share the cores, two threads can wait on each
    other for seconds (see docs/benchmarks.md); the comparisons do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(precision: str = "fp32", **train) -> CycleGAN:
    overrides = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "train.pool_size=1", "train.lr=1e-6"]
    overrides += [f"train.{k}={v}" for k, v in train.items()]
    return CycleGAN(load_config(None, overrides), CPU, precision)


def batches(n: int = 2, batch: int = 2, size: int = 32) -> list[dict[str, torch.Tensor]]:
    """Seed 8: no (Leaky)ReLU input within 1e-6 std of 0 in the first step (see kink_margins;
    measured 2.8e-6). Seed 1 had one at 4e-7 std, which took the other slope with channels_last."""
    g = torch.Generator().manual_seed(8)
    return [{d: torch.rand(batch, 3, size, size, generator=g) * 2 - 1 for d in "AB"} for _ in range(n)]


def grads(model: CycleGAN) -> dict[str, torch.Tensor]:
    """Each network's gradient as one vector (left in .grad by the last step)."""
    return {name: torch.cat([p.grad.flatten() for p in net.parameters()]) for name, net in model.nets.items()}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@contextlib.contextmanager
def kink_margins(model: CycleGAN):
    """Collects, for every (Leaky)ReLU call in the model's networks, how far its input stays from
    the kink at 0: min |x| / std(x). An input within rounding (~1e-7 std) of 0 may take the other
    slope on other kernels (CPUs), and in a model this small that one unit moves a gradient by ~2%.
    The gradient comparisons need every margin above 1e-6 (10x rounding) to be well-conditioned."""
    margins: list[float] = []

    def record(module, args):
        x = args[0].detach()
        margins.append((x.abs().min() / x.std()).item())

    kinks = (m for net in model.nets.values() for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU)))
    hooks = [m.register_forward_pre_hook(record) for m in kinks]
    try:
        yield margins
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_our_step_equals_the_reference_step(lambda_identity):
    # Ours batches independent passes (2N images per call) and uses fused Adam.
    ours, ref = make(lambda_identity=lambda_identity), make(lambda_identity=lambda_identity)
    reference = ReferenceStep(ref)
    data = batches()
    with kink_margins(ref) as margins:
        v_ours, v_ref = ours.step(data[0])["vector"], reference.step(data[0])["vector"]
    assert v_ours.shape == (len(STAT_NAMES),) and min(margins) > 1e-6
    torch.testing.assert_close(v_ours, v_ref, rtol=1e-5, atol=1e-6)
    g_ours, g_ref = grads(ours), grads(ref)
    for name in g_ref:
        assert rel_err(g_ours[name], g_ref[name]) < 1e-4, name
    for a, b in ((d["A"], d["B"]) for d in data[1:]):  # the pools (size 1) now swap: both must pick the same fakes
        torch.testing.assert_close(ours.step({"A": a, "B": b})["vector"], reference.step({"A": a, "B": b})["vector"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.stack(ours.pool_A.images), torch.stack(ref.pool_A.images), rtol=1e-4, atol=1e-5)


def test_reference_step_is_a_real_check():
    # The comparison above fails if a loss term is lost: drop the identity loss on one side only.
    ours, ref = make(), make(lambda_identity=0.0)
    a, b = batches(1)[0].values()
    v_ours, v_ref = ours.step({"A": a, "B": b})["vector"], ReferenceStep(ref).step({"A": a, "B": b})["vector"]
    assert not torch.allclose(v_ours, v_ref, rtol=1e-3, atol=1e-4)
    assert rel_err(grads(ours)["G_A"], grads(ref)["G_A"]) > 1e-3


def test_channels_last_equals_contiguous():
    plain, fast = make(), make(channels_last=True)
    assert fast.G_A.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    data = batches()
    with kink_margins(plain) as margins:  # other kernels, other rounding: no input near a kink
        v_plain = plain.step(data[0])["vector"]
    assert min(margins) > 1e-6
    torch.testing.assert_close(fast.step(data[0])["vector"], v_plain, rtol=1e-5, atol=1e-6)
    g_fast, g_plain = grads(fast), grads(plain)
    for name in g_plain:
        assert rel_err(g_fast[name], g_plain[name]) < 1e-4, name
    for a, b in ((d["A"], d["B"]) for d in data[1:]):
        torch.testing.assert_close(fast.step({"A": a, "B": b})["vector"], plain.step({"A": a, "B": b})["vector"], rtol=1e-4, atol=1e-5)


def test_bf16_autocast_is_close_to_fp32():
    plain, fast = make(), make("bf16", channels_last=True)
    a, b = batches(1)[0].values()
    v_fast, v_plain = fast.step({"A": a, "B": b})["vector"], plain.step({"A": a, "B": b})["vector"]
    assert v_fast.dtype == torch.float32 and torch.isfinite(v_fast).all()
    # bf16 keeps 8 significant bits: losses agree to a few per cent, gradients point the same way.
    torch.testing.assert_close(v_fast, v_plain, rtol=0.05, atol=0.05)
    g_fast, g_plain = grads(fast), grads(plain)
    for name in g_plain:
        assert F.cosine_similarity(g_fast[name], g_plain[name], dim=0) > 0.9, name
    # Weights, gradients and Adam's state stay fp32 (autocast only lowers the matmul inputs).
    assert {p.dtype for p in fast.G_A.parameters()} == {torch.float32} == {g.dtype for g in g_fast.values()}
    assert not fast.scaler.is_enabled()  # the GradScaler is for fp16 only


def test_fused_and_foreach_adam_equal_the_for_loop():
    assert make().opt_G.defaults["fused"] is True  # what CycleGAN uses on the CPU (and on CUDA)
    g = torch.Generator().manual_seed(0)
    shapes = [(16, 8, 3, 3), (16,), (3, 16, 7, 7)]
    start = [torch.randn(s, generator=g) for s in shapes]
    steps = [[torch.randn(s, generator=g) for s in shapes] for _ in range(5)]
    results = {}
    for kind in ("for-loop", "foreach", "fused"):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        flags = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[kind]
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **flags)
        for grads_now in steps:
            for p, gr in zip(params, grads_now):
                p.grad = gr.clone()
            opt.step()
        results[kind] = params
    for kind in ("foreach", "fused"):
        for p, q in zip(results[kind], results["for-loop"]):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)
    assert not torch.equal(results["foreach"][0], start[0])  # the weights did move


def test_compiled_step_equals_eager_and_never_recompiles(monkeypatch):
    # The graphs torch.compile captures, run by the aot_eager backend: tests the capture and its
    # guards (no recompiles after the first step) without the minutes of C++ compilation.
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    eager, compiled = make(), make(compile=True)
    data = batches()
    torch.testing.assert_close(compiled.step(data[0])["vector"], eager.step(data[0])["vector"], rtol=1e-5, atol=1e-6)
    g_compiled, g_eager = grads(compiled), grads(eager)
    for name in g_eager:
        assert rel_err(g_compiled[name], g_eager[name]) < 1e-4, name
    after_first = compiled_graphs()
    assert after_first > 0  # it did compile
    for a, b in ((d["A"], d["B"]) for d in data[1:]):
        torch.testing.assert_close(compiled.step({"A": a, "B": b})["vector"], eager.step({"A": a, "B": b})["vector"], rtol=1e-4, atol=1e-5)
    assert compiled_graphs() == after_first, "torch.compile recompiled after the first step"
    torch._dynamo.reset()


def test_flop_count_matches_the_paper_model():
    # One 256 px iteration of the paper's model: ~1.88 TFLOP; one generator pass 49.6 GMAC = 99.1 GFLOP.
    cfg = load_config(None, [])
    assert generator_flops(cfg, 256) == pytest.approx(99.1e9, rel=1e-3)
    assert count_flops(cfg, 1, 256) == pytest.approx(1.88e12, rel=5e-3)
    # Without the identity loss two of the six generator passes go, each ~3 x 99.1 GFLOP (forward + backward).
    no_idt = load_config(None, ["train.lambda_identity=0"])
    assert count_flops(no_idt, 1, 256) == pytest.approx(1.88e12 - 6 * 99.1e9, rel=5e-3)


def test_bench_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    tiny = "--ngf 4 --ndf 4 --n-blocks 1 --size 32 --warmup 1 --iters 1 --repeats 1 --batch-sizes 2"
    small = "--translate-sizes 32 --tiled 72x40 --tile 32 --data-images 4 --workers 0 --threads 1"
    small += " --only train,data,translate,methods,steps"
    rc = bench.main([*tiny.split(), *small.split(), "--out", str(out)])
    assert rc == 0
    results = json.loads(out.read_text())
    names = [r["name"] for r in results["train"]]
    assert names == ["reference", "our step", "+ channels_last", "+ bf16", "batch 2"]
    for row in results["train"]:
        assert row["img_per_s"] > 0 and row["tflop_per_iter"] > 0 and row["graphs_compiled_after_first_step"] == 0
    assert results["data"]["loader"][0]["pairs_per_s"] > 0
    assert [r["size"] for r in results["translate"]["rows"]] == [32, 32]
    assert [r["tile"] for r in results["translate"]["large"]] == [32, 0]
    assert results["machine"]["versions"]["torch"] == torch.__version__
    methods = results["methods"]["rows"]  # 1 block: CUT's NCE layer 16 lies in the upsampling part
    assert [r["method"] for r in methods] == list(METHODS) and all(r["it_per_s"] > 0 for r in methods)
    steps = results["steps"]  # the multi-step kinds (UNSB) at each number of network evaluations
    assert [(r["kind"], r["size"], r["steps"]) for r in steps] == [("unsb", 32, k) for k in range(1, 6)]
    assert all(r["s_per_img"] > 0 and r["s_per_step"] == pytest.approx(r["s_per_img"] / r["steps"]) for r in steps)
    printed = capsys.readouterr().out
    assert "reference step, fp32, NCHW, eager, batch 1" in printed and str(out) in printed


def test_method_config_takes_each_methods_defaults():
    base = load_config(None, ["train.pool_size=3"])  # a CycleGAN-only key, set: must not reach CUT
    cut, fastcut = method_config(base, "cut", 2), method_config(base, "fastcut", 2)
    assert (cut.model.init_type, cut.model.antialias, cut.cut.lambda_NCE, cut.cut.nce_idt) == ("xavier", True, 1.0, True)
    assert (fastcut.cut.lambda_NCE, fastcut.cut.flip_equivariance, fastcut.train.batch_size) == (10.0, True, 2)
    assert method_config(cut, "cyclegan", 1).model.antialias is False


def test_methods_side_by_side(tmp_path):
    out = tmp_path / "m.json"
    tiny = "--ngf 4 --ndf 4 --n-blocks 5 --size 32 --warmup 0 --iters 1 --repeats 1 --threads 1 --only methods"
    assert bench.main([*tiny.split(), "--out", str(out)]) == 0
    section = json.loads(out.read_text())["methods"]
    assert [r["method"] for r in section["rows"]] == list(METHODS)
    for row in section["rows"]:
        assert row["s_per_iter"] > 0 and row["batch"] == 1 and row["precision"] == "fp32"
    assert section["rows"][0]["speedup_vs_first"] == 1.0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--precisions", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
        (["--tiled", "big"], "expected WIDTHxHEIGHT"),
        (["--only", "speed"], "unknown section"),
        (["--methods", "pix2pix"], "unknown method"),
        (["--size", "30"], "multiple of 4"),
        (["--batch-sizes", "4,x"], "--batch-sizes '4,x': expected whole numbers"),
    ],
)
def test_bench_rejects_bad_options_in_one_line(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
