"""bf16-blocks, the CPU's default precision where bf16 is native: which layers run in bf16, that
tiling keeps it, and when auto picks it. The error on real photos is measured in docs/benchmarks.md."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_style import devices
from gan_style.devices import resolve_inference_precision as resolve_precision
from gan_style.inference.translate import Generator, translate_tensor
from gan_style.inference.weights import GeneratorInfo
from gan_style.nets import ResnetBlock, ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def generators(seed: int = 1) -> dict[str, Generator]:
    torch.manual_seed(seed)
    net = init_weights(ResnetGenerator(3, 3, 8, 3), gain=0.02).eval().requires_grad_(False)  # the reference init
    info = GeneratorInfo(arch={}, origin="tiny")
    return {p: Generator(net, info, CPU, p) for p in ("fp32", "bf16", "bf16-blocks")}


def err255(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() * 127.5


def test_only_the_residual_blocks_convolutions_run_in_bf16():
    gen = generators()["bf16-blocks"]
    seen = {}
    in_blocks = {id(m) for b in gen.net.modules() if isinstance(b, ResnetBlock) for m in b.modules()}
    for name, m in gen.net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d)):
            m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, (i[0].dtype, o.dtype)))
    translate_tensor(gen, torch.rand(1, 3, 32, 40) * 2 - 1, tile=0)
    for name, m in gen.net.named_modules():
        if name not in seen:
            continue
        bf16_conv = id(m) in in_blocks and isinstance(m, nn.Conv2d)
        assert seen[name][1] == (torch.bfloat16 if bf16_conv else torch.float32), name  # norms in fp32 too
    assert sum(d == (torch.float32, torch.bfloat16) for d in seen.values()) == 6  # 3 blocks x 2 convs


def test_bf16_blocks_is_closer_to_fp32_than_bf16_and_tiling_keeps_it():
    x = torch.rand(1, 3, 64, 80) * 2 - 1
    gens = generators()
    out = {p: translate_tensor(g, x, tile=0) for p, g in gens.items()}
    blocks, whole = err255(out["bf16-blocks"], out["fp32"]), err255(out["bf16"], out["fp32"])
    assert 0 < blocks < whole / 1.5
    tiled = translate_tensor(gens["bf16-blocks"], x, tile=32)
    tiled_fp32 = translate_tensor(gens["fp32"], x, tile=32)
    assert err255(tiled, tiled_fp32) > blocks / 4  # the tiles use bf16 as well...
    assert err255(tiled, out["bf16-blocks"]) < 1.5  # ...in the same layers (bf16 rounding differs per tile)


def test_auto_picks_bf16_blocks_only_on_cpus_with_native_bf16(monkeypatch):
    monkeypatch.setattr(devices, "native_bf16_cpu", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16-blocks"
    monkeypatch.setattr(devices, "native_bf16_cpu", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16-blocks", CPU) == "bf16-blocks"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device: use bf16-blocks"):
        resolve_precision("fp16", CPU)


def test_compiled_generator_matches_eager_and_falls_back_when_compiling_fails(caplog):
    # aot_eager: dynamo's capture and guards without minutes of C++ compilation (inductor is timed
    # in docs/benchmarks.md, not tested here).
    x, other = torch.rand(1, 3, 32, 40) * 2 - 1, torch.rand(1, 3, 44, 28) * 2 - 1
    eager = generators()["bf16-blocks"]
    compiled = generators()["bf16-blocks"].compile(backend="aot_eager")
    for inp in (x, other):  # dynamic shapes: another size works too
        assert err255(compiled(inp), eager(inp)) < 0.05
    assert compiled.compiled is not None

    def no_compiler(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    broken = generators()["bf16-blocks"].compile(backend=no_compiler)
    assert torch.equal(broken(x), eager(x))  # ran uncompiled
    assert broken.compiled is None
    err = caplog.text
    assert "torch.compile failed" in err and "no C++ compiler on this machine" in err and "running uncompiled" in err
