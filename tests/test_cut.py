"""CUT and FastCUT: the official networks' layout, PatchNCE, flip-equivariance, exact resume,
smoke trains that translate and export, the official CUT zoo, tiling and one-line errors."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, tiny_overrides
from gan_style import load_generator
from gan_style.cli import main as cli_main
from gan_style.config import ConfigError
from gan_style.methods import load_config
from gan_style.inference.export import export_generator
from gan_style.inference.translate import translate_tensor
from gan_style.inference.weights import WeightsError
from gan_style.io.checkpoint import CheckpointError, load_safe
from gan_style.methods import CUT
from gan_style.methods.losses import patch_nce
from gan_style.nets import PatchDiscriminator, PatchSampler, ResnetGenerator, init_weights, nce_channels
from gan_style.training.loop import train

CPU = torch.device("cpu")


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- the official layout


def official_generator_shapes(ngf: int, n_blocks: int) -> dict[str, tuple]:
    """The official CUT ResnetGenerator's state_dict, written out from its layer list:
    pad, conv7, IN, ReLU | 2 x (conv3, IN, ReLU, Downsample) | blocks | 2 x (Upsample, conv3, IN, ReLU) | pad, conv7, tanh."""
    s = {"model.1.weight": (ngf, 3, 7, 7), "model.1.bias": (ngf,),
         "model.4.weight": (2 * ngf, ngf, 3, 3), "model.4.bias": (2 * ngf,), "model.7.filt": (2 * ngf, 1, 3, 3),
         "model.8.weight": (4 * ngf, 2 * ngf, 3, 3), "model.8.bias": (4 * ngf,), "model.11.filt": (4 * ngf, 1, 3, 3)}
    for b in range(n_blocks):
        for conv in (1, 5):
            s[f"model.{12 + b}.conv_block.{conv}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
            s[f"model.{12 + b}.conv_block.{conv}.bias"] = (4 * ngf,)
    up = 12 + n_blocks
    s |= {f"model.{up}.filt": (4 * ngf, 1, 4, 4), f"model.{up + 1}.weight": (2 * ngf, 4 * ngf, 3, 3),
          f"model.{up + 1}.bias": (2 * ngf,), f"model.{up + 4}.filt": (2 * ngf, 1, 4, 4),
          f"model.{up + 5}.weight": (ngf, 2 * ngf, 3, 3), f"model.{up + 5}.bias": (ngf,),
          f"model.{up + 9}.weight": (3, ngf, 7, 7), f"model.{up + 9}.bias": (3,)}
    return s  # fmt: skip


def test_antialiased_generator_has_the_official_keys_and_size():
    net = ResnetGenerator(3, 3, 64, 9, antialias=True, antialias_up=True)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == official_generator_shapes(64, 9)
    assert count(net) == 11_378_179  # the official code prints 11.378 M for CUT's G
    assert net(torch.zeros(1, 3, 64, 48)).shape == (1, 3, 64, 48)


def test_antialiased_discriminator_and_patch_sampler_have_the_official_keys():
    disc = PatchDiscriminator(3, 64, 3, antialias=True)
    expected = {"model.0.weight": (64, 3, 4, 4), "model.0.bias": (64,), "model.2.filt": (64, 1, 3, 3),
                "model.3.weight": (128, 64, 4, 4), "model.3.bias": (128,), "model.6.filt": (128, 1, 3, 3),
                "model.7.weight": (256, 128, 4, 4), "model.7.bias": (256,), "model.10.filt": (256, 1, 3, 3),
                "model.11.weight": (512, 256, 4, 4), "model.11.bias": (512,),
                "model.14.weight": (1, 512, 4, 4), "model.14.bias": (1,)}  # fmt: skip
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == expected
    assert count(disc) == 2_764_737 and disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    channels = nce_channels(64, 9, (0, 4, 8, 12, 16), antialias=True)
    assert channels == [3, 128, 256, 256, 256]  # the input, then encoder outputs
    sampler = PatchSampler(channels, 256)
    keys = {f"mlp_{i}.{j}.{p}" for i in range(5) for j in (0, 2) for p in ("weight", "bias")}
    assert set(sampler.state_dict()) == keys
    assert sampler.state_dict()["mlp_1.0.weight"].shape == (256, 128)
    assert count(sampler) == 560_384
    # With 1 block, layer 16 is in the upsampling part: its width depends on the upsampling layout.
    for up, expected_16 in ((True, 16), (False, 8)):  # conv(4ngf -> 2ngf) output vs ReLU after the 2nd transposed conv
        assert nce_channels(8, 1, (0, 4, 8, 12, 16), True, up)[-1] == expected_16


def test_blur_filters_are_the_binomial_kernels():
    net = ResnetGenerator(3, 3, 8, 1, antialias=True, antialias_up=True)
    down, up = net.state_dict()["model.7.filt"][0, 0], net.state_dict()["model.13.filt"][0, 0]
    row3, row4 = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.allclose(down, torch.outer(row3, row3) / 16)
    assert torch.allclose(up, torch.outer(row4, row4) / 16)  # /64 * stride**2


# ---------------------------------------------------------------- PatchNCE


def test_patch_nce_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    n, p, c, t = 2, 3, 4, 0.07
    q = F.normalize(torch.randn(n * p, c, generator=g), dim=1)
    k = F.normalize(torch.randn(n * p, c, generator=g), dim=1)
    losses = []
    for img in range(n):
        for i in range(p):
            qi = q[img * p + i]
            logits = [qi @ k[img * p + i]]  # the positive: the key at the same location
            logits += [torch.tensor(-10.0) if j == i else qi @ k[img * p + j] for j in range(p)]  # same image only
            logits = torch.stack(logits) / t
            losses.append(-torch.log_softmax(logits, 0)[0])
    assert patch_nce(q, k, n, t).item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)
    q.requires_grad_(True)
    k.requires_grad_(True)
    patch_nce(q, k, n, t).backward()
    assert q.grad.abs().sum() > 0 and k.grad is None  # keys are constants of the loss


def cut_model(tmp_path: Path, **extra) -> CUT:
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path, method="cut", cut__num_patches=16, **extra))
    return CUT(cfg, CPU, "fp32")


def test_flip_equivariance_flips_the_input_and_the_queries_back(tmp_path):
    """A flipped FastCUT step: G translates the flipped batch; PatchNCE compares the features of
    that output, flipped back, with the features of the unflipped input (the keys)."""
    model = cut_model(tmp_path, cut__nce_idt=False, cut__flip_equivariance=True)
    seed = next(s for s in range(100) if torch.rand((), generator=torch.Generator().manual_seed(s)) < 0.5)
    model.flip_rng.manual_seed(seed)  # its first draw says: flip
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():  # computed from the weights before the step, which G's update comes after
        want_q = [q.flip(3) for q in model.G.encode(model.G(a.flip(3)), model.nce_layers)]
        want_k = model.G.encode(a, model.nce_layers)
        unflipped_q = model.G.encode(model.G(a), model.nce_layers)
    seen = []
    real_nce = model._nce
    model._nce = lambda q, k, n, *weights: seen.append((q, k)) or real_nce(q, k, n, *weights)
    model.step({"A": a, "B": b})
    (queries, keys), = seen
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(queries, want_q))
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(keys, want_k))
    assert not torch.allclose(queries[1], unflipped_q[1], atol=1e-3)  # the flip really happened
    flips = [bool(torch.rand((), generator=model.flip_rng) < 0.5) for _ in range(400)]
    assert 150 < sum(flips) < 250  # about half the batches


# ---------------------------------------------------------------- training


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net, sd in load_safe(path)["models"].items() for k, v in sd.items()}


@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_resume_equals_straight_bitwise(toy_root, tmp_path, method):
    common = dict(method=method, cut__num_patches=16, train__n_epochs=2, train__n_epochs_decay=2,
                  data__max_dataset_size=4)
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "straight", **common)))
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", train__max_steps=8, **common)))  # 2 epochs
    ckpt = load_safe(tmp_path / "split" / "t" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["method"] == method and set(ckpt["method_rng"]) == {"patches", "flip"}
    train(load_config(None, tiny_overrides(toy_root, tmp_path / "split", resume="auto", **common)))
    straight, split = weights(tmp_path / "straight" / "t" / "last.pt"), weights(tmp_path / "split" / "t" / "last.pt")
    assert straight.keys() == split.keys() and {k.split(".")[0] for k in straight} == {"G", "D", "F"}
    assert all(torch.equal(straight[k], split[k]) for k in straight), "resumed run diverged"


@pytest.mark.parametrize("config", ["horse2zebra_cut", "monet_fastcut"])
def test_make_train_smoke_then_translate_and_export(toy_root, tmp_path, config, capsys):
    """`make train DOMAIN=<config> DATA_ROOT=... ARGS=<tiny, 1 epoch>`, then translate and export."""
    tiny = tiny_overrides(toy_root, tmp_path, data__max_dataset_size=4, cut__num_patches=16,
                          train__n_epochs_decay=0, logging__log_every=100)
    assert cli_main(["train", "-c", config, "data.dataset=null", *tiny]) == 0
    run_dir = tmp_path / "t"
    rows = (run_dir / "metrics.jsonl").read_text()
    assert "loss/NCE" in rows and "loss/G_GAN" in rows and "loss/D_real" in rows
    assert ("loss/NCE_Y" in rows) == (config == "horse2zebra_cut")
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == ["epoch_0001_X.png", "epoch_0001_Y.png"]
    gen = load_generator(run_dir / "last.pt", device="cpu")
    assert gen.info.direction == ("AtoB" if config == "horse2zebra_cut" else "BtoA")
    assert gen.info.arch["antialias"] and gen.info.arch["antialias_up"]
    out = tmp_path / "out"
    assert cli_main(["translate", "--weights", str(run_dir), "--input", str(toy_root / "testA"), "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {p.name for p in (toy_root / "testA").iterdir()}
    for fmt in ("safetensors", "onnx", "torchscript"):
        result = export_generator(run_dir / "last.pt", fmt, tmp_path / "exports" / f"g.{fmt}")
        assert result.max_diff < 1e-4, fmt
    assert load_generator(tmp_path / "exports" / "g.safetensors", device="cpu").info.arch == gen.info.arch


def test_cut_checkpoint_has_one_direction(toy_root, tmp_path, capsys):
    train(load_config(None, tiny_overrides(toy_root, tmp_path, method="cut", cut__num_patches=16,
                                           data__max_dataset_size=2, train__n_epochs_decay=0)))
    ckpt = tmp_path / "t" / "last.pt"
    with pytest.raises(WeightsError, match="holds one generator, AtoB; it cannot translate BtoA"):
        load_generator(ckpt, direction="BtoA", device="cpu")
    # Cycle metrics need both generators: one line naming the file, no traceback.
    code = cli_main(["eval", "--weights", str(ckpt), "--metrics", "cycle", "--input", str(toy_root / "testA")])
    err = capsys.readouterr().err
    assert code == 2 and "last.pt" in err and "two generators" in err and "Traceback" not in err


def test_resuming_with_another_method_is_one_line(toy_root, tmp_path):
    common = dict(data__max_dataset_size=2, train__n_epochs_decay=0, cut__num_patches=16)
    train(load_config(None, tiny_overrides(toy_root, tmp_path, method="cut", **common)))
    with pytest.raises(CheckpointError, match="a cut checkpoint, but this config trains method=fastcut"):
        train(load_config(None, tiny_overrides(toy_root, tmp_path, method="fastcut", resume="auto", **common)))


def test_keys_of_another_method_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"cut.lambda_NCE=5 does not apply to method=cyclegan \(only to cut / fastcut\)"):
        load_config(None, ["cut.lambda_NCE=5"])
    with pytest.raises(ConfigError, match=r"train.lambda_identity=0.0 does not apply to method=fastcut"):
        load_config("horse2zebra", ["method=fastcut"])  # the paper's horse2zebra sets identity 0
    cfg = load_config("monet", ["method=cut"])  # CycleGAN keys left at their defaults are fine
    assert (cfg.cut.lambda_NCE, cfg.cut.nce_idt, cfg.model.antialias, cfg.model.init_type) == (1.0, True, True, "xavier")
    fast = load_config("monet", ["method=fastcut"]).cut
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)


# ---------------------------------------------------------------- inference


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """The official antialiased CUT generator, written out functionally from its state_dict."""
    def inorm(t):
        return F.instance_norm(t)

    def down(t, filt):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="reflect"), filt, stride=2, groups=t.shape[1])

    def up(t, filt):
        y = F.conv_transpose2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), filt, stride=2, padding=2, groups=t.shape[1])
        return y[:, :, 1:, 1:][:, :, :-1, :-1]

    w = lambda i: (sd[f"model.{i}.weight"], sd[f"model.{i}.bias"])  # noqa: E731
    h = F.relu(inorm(F.conv2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), *w(1))))
    h = down(F.relu(inorm(F.conv2d(h, *w(4), padding=1))), sd["model.7.filt"])
    h = down(F.relu(inorm(F.conv2d(h, *w(8), padding=1))), sd["model.11.filt"])
    for b in range(12, 12 + n_blocks):
        c1 = (sd[f"model.{b}.conv_block.1.weight"], sd[f"model.{b}.conv_block.1.bias"])
        c5 = (sd[f"model.{b}.conv_block.5.weight"], sd[f"model.{b}.conv_block.5.bias"])
        r = F.relu(inorm(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), *c1)))
        h = h + inorm(F.conv2d(F.pad(r, (1, 1, 1, 1), mode="reflect"), *c5))
    u = 12 + n_blocks
    h = F.relu(inorm(F.conv2d(up(h, sd[f"model.{u}.filt"]), *w(u + 1), padding=1)))
    h = F.relu(inorm(F.conv2d(up(h, sd[f"model.{u + 4}.filt"]), *w(u + 5), padding=1)))
    return torch.tanh(F.conv2d(F.pad(h, (3, 3, 3, 3), mode="reflect"), *w(u + 9)))


@pytest.fixture()
def cut_zoo(tmp_path, monkeypatch):
    """pretrained_models.tar as the official one is laid out, on a local HTTP server; counts requests."""
    www = tmp_path / "www"
    www.mkdir()
    states = {}
    with tarfile.open(www / "pretrained_models.tar", "w") as tar:
        for i, name in enumerate(("horse2zebra_cut", "cityscapes_fastcut")):
            torch.manual_seed(i)
            states[name] = init_weights(ResnetGenerator(3, 3, 8, 2, True, True), 0.2).state_dict()
            buf = io.BytesIO()
            torch.save(states[name], buf)
            info = tarfile.TarInfo(f"pretrained_models/{name}_pretrained/latest_net_G.pth")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GAN_STYLE_CUT_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/pretrained_models.tar")
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))
    yield states, requests
    server.shutdown()


def test_official_cut_weights_download_once_and_give_the_official_outputs(cut_zoo, tmp_path):
    states, requests = cut_zoo
    gen = load_generator("official:horse2zebra_cut", device="cpu")
    assert (gen.info.source, gen.info.target, gen.info.direction) == ("horse", "zebra", "AtoB")
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        assert (gen.net(x) - official_forward(states["horse2zebra_cut"], x, 2)).abs().max() < 1e-5
    city = load_generator("official:cityscapes_fastcut", device="cpu")  # same archive: no second download
    assert (city.info.source, city.info.target, city.info.direction) == ("label", "photo", "BtoA")
    assert len(requests) == 1 and (tmp_path / "cache" / "pretrained" / "cut_pretrained_models.tar").is_file()
    assert sorted(p.name for p in (tmp_path / "cache" / "pretrained").glob("*.pth")) == [
        "cityscapes_fastcut.pth", "horse2zebra_cut.pth"]  # only what was asked for is extracted
    with pytest.raises(WeightsError, match="unknown model"):
        load_generator("official:zebra2horse_cut", device="cpu")


def test_tiled_equals_untiled_for_the_antialiased_generator(tmp_path):
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, 8, 2, True, True), 0.05).eval()
    path = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    gen = load_generator(path, device="cpu", precision="fp32")  # exactness: no bf16 blocks
    x = torch.rand(1, 3, 70, 98) * 2 - 1  # not a multiple of 4: padded, then cropped back
    whole, tiled = translate_tensor(gen, x, tile=0), translate_tensor(gen, x, tile=32)
    assert tiled.shape == whole.shape == (1, 3, 70, 98)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_bundled_configs_ship_in_the_wheel(tmp_path):
    """A pip-installed gan_style (no clone) finds `-c horse2zebra_cut` and lists the configs."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "wheel"), str(REPO)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("gan_style-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    code = ("from gan_style.config import bundled_configs; from gan_style.methods import load_config; "
            "import gan_style.config as c; "
            "assert 'site' in c.__file__; print(sorted(bundled_configs())); print(load_config('horse2zebra_cut').method)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    assert out.stdout.splitlines() == [str(names), "cut"]


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gan_style").rglob("__init__.py")}
    assert found | {"gan_style.configs"} == listed


def test_a_nan_in_patch_nce_stops_training_naming_the_loss(toy_root, tmp_path, monkeypatch):
    import gan_style.methods.losses
    from gan_style.training.loop import TrainingStopped

    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = patch_nce(*args, **kwargs)
        return value * float("nan") if calls["n"] > 5 * 2 else value  # from step 2 on (5 layers, 2 NCE terms)

    monkeypatch.setattr(gan_style.methods.losses, "patch_nce", poisoned)  # what CUT's layered NCE calls
    with pytest.raises(TrainingStopped, match=r"loss/NCE became nan at step 2"):
        train(load_config(None, tiny_overrides(toy_root, tmp_path, method="cut", cut__num_patches=16,
                                               logging__log_every=1)))
    assert not (tmp_path / "t" / "last.pt").exists()  # nothing non-finite was saved


def test_eval_every_for_cut_measures_its_one_direction(toy_root, tmp_path):
    train(load_config(None, tiny_overrides(toy_root, tmp_path, method="cut", cut__num_patches=16, eval__every=1,
                                           eval__n_images=2, data__max_dataset_size=2, train__n_epochs_decay=0)))
    import json

    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    assert len(evals) == 1 and "eval/colour_w1_B" in evals[0]  # AtoB: the fakes are compared with real B
    assert not any("cycle" in k for k in evals[0])  # one generator: no cycle metrics
