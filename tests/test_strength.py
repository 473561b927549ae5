"""Strength-conditioned generators (docs/strength.md): the FiLM kind, loss-conditional training for
the style method, CycleGAN and CUT, and the strength wherever a generator runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import synthetic_extra, tiny_overrides
from gan_style.cli import main as cli_main
from gan_style.inference.backends import with_backend
from gan_style.inference.export import export_generator
from gan_style.inference.translate import load_generator, translate_tensor
from gan_style.inference.weights import WeightsError
from gan_style.io.checkpoint import load_safe
from gan_style.methods import load_config
from gan_style.methods.base import sampled_strengths, weight_at, weighted_l1
from gan_style.inference.translate import Generator
from gan_style.inference.weights import GeneratorInfo
from gan_style.nets import ChannelAffine, FiLMKind, FiLMResnetGenerator, ResnetGenerator, UNSBGenerator, init_weights
from gan_style.nets.perceptual import StyleObjective
from gan_style.training.loop import train

SPAN = "[0.1,0.9]"


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net, sd in load_safe(path)["models"].items() for k, v in sd.items()}


def modulated(seed: int = 0) -> FiLMResnetGenerator:
    """A FiLM generator whose modulation depends on the strength (its last layer is not zero)."""
    torch.manual_seed(seed)
    net = init_weights(FiLMResnetGenerator(3, 3, 8, 2), 0.2)
    torch.nn.init.normal_(net.film[-1].weight, 0, 0.05)
    return net.eval()


def test_film_at_the_identity_modulation_is_the_resnet_generator():
    torch.manual_seed(0)
    film = init_weights(FiLMResnetGenerator(3, 3, 8, 2, antialias=True, antialias_up=True), 0.2)
    torch.nn.init.zeros_(film.film[-1].weight)  # dgamma = beta = 0 whatever the strength
    torch.nn.init.zeros_(film.film[-1].bias)
    plain = ResnetGenerator(3, 3, 8, 2, antialias=True, antialias_up=True)
    plain.load_state_dict({k: v for k, v in film.state_dict().items() if k.startswith("model.")}, strict=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for s in (0.0, 0.37, 1.0):
            assert torch.equal(film(x, torch.full((2,), s)), plain(x))
        assert not torch.equal(modulated()(x, torch.full((2,), 0.1)), modulated()(x, torch.full((2,), 0.9)))


def test_init_weights_leaves_the_film_mlp_able_to_learn():
    """The methods' init (N(0, 0.02)) reaches the backbone, not FiLM's MLP: its hidden activations
    stay of order one (under N(0, 0.02) they would be ~1e-4, and the modulations would barely
    learn), and its last layer stays zero (the identity modulation)."""
    torch.manual_seed(0)
    net = init_weights(FiLMResnetGenerator(3, 3, 8, 2), 0.02)
    hidden = torch.nn.Sequential(*list(net.film)[:4])(torch.ones(1, 1))  # (1, 64): the last layer's input at s = 1
    assert hidden.abs().mean() > 0.05
    assert not net.film[-1].weight.any() and not net.film[-1].bias.any()
    assert abs(net.model[1].weight.std().item() - 0.02) < 0.005  # the backbone did get the init


def test_translation_folds_the_modulation_into_the_norms():
    """At one strength, translation runs each norm and its modulation as one affine InstanceNorm
    (no extra pass: docs/strength.md's cost), with the forward's result, in fp32 and bf16-blocks."""
    net = modulated()
    x = torch.rand(2, 3, 40, 48) * 2 - 1
    for s in (0.2, 0.8):
        strength = torch.full((2,), s)
        layers = FiLMKind().layers(net, {"strength": strength})
        assert not any(isinstance(m, ChannelAffine) for layer in layers for m in layer.modules())
        assert sum(isinstance(m, torch.nn.InstanceNorm2d) and m.affine for layer in layers for m in layer.modules()) \
            == len(net.widths)
        info = GeneratorInfo(arch={}, origin="film", kind="film")
        with torch.no_grad():
            fp32 = Generator(net, info, torch.device("cpu"), "fp32", strength=s)
            torch.testing.assert_close(fp32(x), net(x, strength), atol=1e-5, rtol=0)
            blocks = Generator(net, info, torch.device("cpu"), "bf16-blocks", strength=s)
            unfolded = blocks._blocks_in_bf16(net.bind(strength), x)  # the same path with norm, then modulation
            diff = (blocks(x) - unfolded).abs()  # bf16 rounding flips only (this random net amplifies them)
            assert diff.mean() < 2e-3 and diff.max() < 0.1, (diff.mean(), diff.max())
    mixed = torch.tensor([0.2, 0.8])  # two strengths in one batch: not folded
    assert any(isinstance(m, ChannelAffine) for layer in FiLMKind().layers(net, {"strength": mixed})
               for m in layer.modules())


def test_strengths_come_from_the_samples_and_map_to_weights():
    seeds = torch.tensor([3, 11, 3])
    s = sampled_strengths(seeds, [0.2, 0.6])
    assert s[0] == s[2] and s[0] != s[1] and ((0.2 <= s) & (s <= 0.6)).all()
    assert torch.equal(sampled_strengths(seeds[1:2], [0.2, 0.6]), s[1:2])  # a sample's own, whatever its batch
    torch.testing.assert_close(weight_at(torch.tensor([0.0, 0.5, 1.0]), 10.0), torch.tensor([40.0, 10.0, 2.5]))
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    per = (a - b).abs().mean((1, 2, 3))
    torch.testing.assert_close(weighted_l1(a, b, torch.tensor([1.0, 3.0])), (per[0] + 3 * per[1]) / 2)
    torch.testing.assert_close(weighted_l1(a, b, 2.0), 2 * (a - b).abs().mean())


def test_style_objective_takes_one_strength_per_photo():
    class Net:  # a feature "network": the image and its square, as two layers
        def check(self, layers):
            pass

        def __call__(self, x, layers):
            return {"c": x, "s": x.square()}

    photo, out = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    grams = {"s": torch.rand(1, 3, 3)}
    both = StyleObjective(Net(), photo, grams, ["c"], torch.tensor([0.2, 0.7]))(out)[0]
    for i, s in enumerate((0.2, 0.7)):
        one = StyleObjective(Net(), photo[i : i + 1], grams, ["c"], s)(out[i : i + 1])[0]
        torch.testing.assert_close(both[i : i + 1], one)


@pytest.fixture(scope="module")
def style_run(toy_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("strength")
    extra = synthetic_extra("style", out)
    return train(load_config(None, tiny_overrides(toy_root, out, method="style", train__max_steps=4,
                                                  style__strength_range=SPAN, **extra)))


def test_a_style_run_records_a_film_generator_and_translates_at_any_strength(style_run, tmp_path, toy_root):
    (record,) = load_safe(style_run)["generators"].values()
    assert record["kind"] == "film" and record["arch"]["strength_range"] == [0.1, 0.9] and "trained_at" not in record
    gen = load_generator(style_run, device="cpu", precision="fp32")
    assert gen.strength == 0.5  # the middle of the range
    assert len(load_safe(style_run)["models"]["G"]) > len(ResnetGenerator(3, 3, 8, 2).state_dict())  # + the MLP
    out = tmp_path / "o"
    assert cli_main(["translate", "-w", str(style_run), "-i", str(toy_root / "testA"), "-o", str(out),
                     "--strength", "0.25"]) == 0
    assert len(list(out.iterdir())) == 2


def test_exact_tiling_and_exports_at_two_strengths(tmp_path, monkeypatch):
    torch.save(modulated().state_dict(), tmp_path / "film.pth")
    gen = load_generator(tmp_path / "film.pth", device="cpu", precision="fp32")
    assert gen.info.kind == "film"
    x = torch.rand(1, 3, 72, 56) * 2 - 1
    outs = {}
    for s in (0.2, 0.8):
        at = gen.with_strength(s)
        outs[s] = translate_tensor(at, x, tile=0)
        torch.testing.assert_close(translate_tensor(at, x, tile=32), outs[s], atol=2e-5, rtol=0)  # exact tiling
    assert (outs[0.2] - outs[0.8]).abs().max() > 1e-2
    import onnxruntime as ort

    export_generator(tmp_path / "film.pth", "onnx", tmp_path / "film.onnx")
    session = ort.InferenceSession(str(tmp_path / "film.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "strength"]
    for s, want in outs.items():
        got = session.run(None, {"image": x.numpy(), "strength": torch.tensor([s]).numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=0)
    export_generator(tmp_path / "film.pth", "safetensors", tmp_path / "film.safetensors")
    again = load_generator(tmp_path / "film.safetensors", device="cpu", precision="fp32")
    assert again.info.arch["strength_range"] == [0.0, 1.0]
    assert torch.equal(translate_tensor(again.with_strength(0.8), x, tile=0), outs[0.8])
    on_ort = with_backend(gen, "onnxruntime").with_strength(0.2)  # the CPU backend feeds the strength by name
    assert "strength" in on_ort.engine.conditions
    torch.testing.assert_close(translate_tensor(on_ort, x, tile=0), outs[0.2], atol=1e-4, rtol=0)
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path))  # auto calibrates at the chosen strength, not the middle
    auto = with_backend(gen.with_strength(0.2), "auto")
    assert "(over)" not in auto.choice.split("onnxruntime fp32")[1].split(",")[0], auto.choice
    torch.testing.assert_close(translate_tensor(auto, x, tile=0), outs[0.2], atol=3 / 127.5, rtol=0)


@pytest.mark.parametrize("method,extra", [("cyclegan", {}), ("cut", {"cut__num_patches": 16}),
                                          ("unsb", {"unsb__num_patches": 16, "unsb__netF_nc": 16})])
def test_resume_with_sampled_strengths_equals_straight_bitwise(toy_root, tmp_path, method, extra):
    common = dict(method=method, train__n_epochs=2, train__n_epochs_decay=1, data__max_dataset_size=4,
                  train__strength_range=SPAN, **extra)
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "straight", **common)))
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", train__max_steps=6, **common)))
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", resume="auto", **common)))
    straight, split = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert straight.keys() == split.keys() and any(".film." in k for k in straight)
    assert all(torch.equal(straight[k], split[k]) for k in straight), "resumed run diverged"


def test_strength_errors_are_one_line(style_run, toy_root, tmp_path, capsys):
    fixed = train(load_config(None, tiny_overrides(toy_root, tmp_path, train__max_steps=1)))
    code = cli_main(["translate", "-w", str(fixed), "-i", str(toy_root / "testA"), "-o", str(tmp_path / "o"),
                     "--strength", "0.3"])
    err = capsys.readouterr().err
    assert code == 2 and "was trained at a fixed weight (train.lambda_A=10.0, train.lambda_B=10.0" in err
    code = cli_main(["translate", "-w", str(style_run), "-i", str(toy_root / "testA"), "-o", str(tmp_path / "p"),
                     "--strength", "1.5"])
    err = capsys.readouterr().err
    assert code == 2 and "--strength 1.5: use a value in [0, 1]" in err and "Traceback" not in err
    with pytest.raises(WeightsError, match="trained at a fixed weight"):
        load_generator(fixed, device="cpu").with_strength(0.5)
    style = dict(method="style", **synthetic_extra("style", tmp_path))
    for key, value, extra in (("train.strength_range", "[0.9,0.1]", {}), ("train.strength_range", "[0,2]", {}),
                              ("style.strength_range", "[0.5]", style)):
        with pytest.raises(ValueError, match=rf"{key}.*give \[lo, hi\] with 0 <= lo <= hi <= 1"):
            load_config(None, tiny_overrides(toy_root, tmp_path, **{key.replace(".", "__"): value}, **extra))


def test_eval_sweeps_strengths(style_run, toy_root, tmp_path, capsys):
    code = cli_main(["eval", "--weights", str(style_run), "--strength", "0.25,0.75", "--metrics", "colour",
                     "--input", str(toy_root / "testA"), "--real", str(toy_root / "trainB"), "--json", "-"])
    out = capsys.readouterr().out
    assert code == 0 and "@ strength 0.25" in out and "@ strength 0.75" in out
    assert cli_main(["eval", "--fake", str(toy_root / "testA"), "--real", str(toy_root / "testB"),
                     "--strength", "0.5"]) == 2


def test_unsb_with_the_identity_modulation_is_the_unconditioned_generator():
    """A strength-conditioned UNSB generator is the official one plus ``film`` (added to the mapped
    noise w): with its last layer at zero it computes the unconditioned generator at any strength."""
    torch.manual_seed(0)
    film = init_weights(UNSBGenerator(3, 3, 8, 2, strength_range=[0.1, 0.9]), 0.2)
    plain = UNSBGenerator(3, 3, 8, 2)
    plain.load_state_dict({k: v for k, v in film.state_dict().items() if not k.startswith("film.")}, strict=True)
    x, t, z = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([0, 3]), torch.randn(2, 32)
    with torch.no_grad():
        for s in (0.0, 0.5, 1.0):
            assert torch.equal(film(x, t, z, strength=torch.full((2,), s)), plain(x, t, z))
        torch.nn.init.normal_(film.film[-1].weight, 0, 0.05)
        assert not torch.equal(film(x, t, z, strength=torch.full((2,), 0.1)), film(x, t, z, strength=torch.full((2,), 0.9)))
    with pytest.raises(ValueError, match="give it a strength"):
        film(x, t, z)


def test_a_unsb_run_on_a_range_translates_tiles_and_exports_at_two_strengths(toy_root, tmp_path):
    """unsb with train.strength_range: the checkpoint records the range and no fixed weight; translation
    at two strengths differs, tiles exactly at each and matches its ONNX export (strength an input)."""
    last = train(load_config(None, tiny_overrides(toy_root, tmp_path, method="unsb", unsb__num_patches=16,
                                                  unsb__netF_nc=16, data__max_dataset_size=4, train__max_steps=2,
                                                  train__strength_range=SPAN)))
    (record,) = load_safe(last)["generators"].values()
    assert record["kind"] == "unsb" and record["arch"]["strength_range"] == [0.1, 0.9] and "trained_at" not in record
    ckpt = load_safe(last)  # make the modulation depend on the strength (2 steps barely move it)
    film = ckpt["models"]["G"]["film.4.weight"]
    film.copy_(torch.randn(film.shape, generator=torch.Generator().manual_seed(0)) * 0.05)
    torch.save(ckpt, path := tmp_path / "modulated.pt")
    gen = load_generator(path, device="cpu", precision="fp32", steps=1)
    assert gen.strength == 0.5 and gen.info.kind == "unsb"
    x, outs = torch.rand(1, 3, 72, 56) * 2 - 1, {}
    for s in (0.2, 0.8):
        outs[s] = translate_tensor(gen.with_strength(s), x, tile=0)
        torch.testing.assert_close(translate_tensor(gen.with_strength(s), x, tile=32), outs[s], atol=2e-5, rtol=0)
    assert (outs[0.2] - outs[0.8]).abs().max() > 1e-3
    import onnxruntime as ort

    export_generator(path, "onnx", tmp_path / "G.onnx")
    session = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[0] == "image" and "strength" in names
    cond = gen.kind.example_conditions(gen.info.arch, 1)
    for s, want in outs.items():
        feed = {"image": x.numpy(), "strength": torch.tensor([s]).numpy()}
        feed |= {k: v.numpy() for k, v in cond.items() if k in names and k not in feed}
        got = torch.from_numpy(session.run(None, feed)[0])
        ref = gen.net(x, **(cond | {"strength": torch.tensor([s])}))
        torch.testing.assert_close(got, ref.detach(), atol=1e-4, rtol=0)
