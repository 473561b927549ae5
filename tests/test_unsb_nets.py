"""UNSB's networks (nets/unsb.py) against the official code's, and the UNSB generator kind.

The fixture (tests/fixtures/unsb/official.pt, made by make_fixtures_unsb.py.txt) holds the
OFFICIAL networks' state dicts (fp16-exact values, stored as fp16), inputs, outputs and PatchNCE
features, and digests of their bare official init.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gan_style.inference.tiling import translate_tiled
from gan_style.nets import (
    KINDS, ChannelAffine, ResidualBlock, ResnetGenerator, ResnetKind, UNSBDiscriminator, UNSBGenerator, UNSBKind,
    describe, init_weights, recognise, translate_with, unsb_times,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OFFICIAL = torch.load(Path(__file__).parent / "fixtures" / "unsb" / "official.pt")
GENERATORS = ("G", "G_plain")  # antialiased ngf 8, 2 blocks; plain ngf 4, 1 block, 1 output channel


def fp32(state: dict) -> dict:
    return {k: v.float() for k, v in state.items()}


def official_generator(name: str = "G", **extra) -> tuple[UNSBGenerator, dict]:
    fx = OFFICIAL[name]
    net = UNSBGenerator(**fx["config"], **extra)
    net.load_state_dict(fp32(fx["state"]), strict=True)
    return net.eval(), fx


def inputs(fx: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return fx["x"].float(), fx["t"], fx["z"].float()


# ---- compatibility with the official networks


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_state_dict_is_the_official_one_key_for_key(name):
    fx = OFFICIAL[name]
    for fixed in (False, True):
        ours = UNSBGenerator(**fx["config"], fixed_blocks=fixed).state_dict()
        assert list(ours) == list(fx["state"])  # same keys, in the same order
        assert all(ours[k].shape == v.shape for k, v in fx["state"].items())


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_reproduces_official_outputs_and_nce_features(name):
    net, fx = official_generator(name)
    x, t, z = inputs(fx)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, z), fx["out"], atol=1e-5, rtol=0)
        feats = net(x[:1], t[:1], z[:1], fx["layers"], encode_only=True)
    assert len(feats) == len(fx["feats"])
    for ours, theirs in zip(feats, fx["feats"]):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_features_with_the_translation_come_from_one_pass():
    net, fx = official_generator()
    x, t, z = inputs(fx)
    with torch.no_grad():
        out, feats = net(x[:1], t[:1], z[:1], fx["layers"])
        torch.testing.assert_close(out, net(x[:1], t[:1], z[:1]))
        assert [f.shape for f in feats] == [f.shape for f in fx["feats"]]
        with pytest.raises(ValueError, match="0..13"):
            net(x, t, z, (0, 14), encode_only=True)


@pytest.mark.parametrize("name", ("D", "E"))
def test_discriminator_and_energy_net_reproduce_official_outputs(name):
    fx = OFFICIAL[name]
    net = UNSBDiscriminator(**fx["config"])
    assert list(net.state_dict()) == list(fx["state"])
    net.load_state_dict(fp32(fx["state"]), strict=True)
    with torch.no_grad():
        if name == "D":
            x = fx["x"].float()
            torch.testing.assert_close(net(x, fx["t"]), fx["out"], atol=1e-5, rtol=0)
            # One step index for the whole batch (shape (1,)), as the official training calls D.
            torch.testing.assert_close(net(x, fx["t1"]), fx["out_t1"], atol=1e-5, rtol=0)
        else:  # E(cat(x_t, x_1), t, cat(x'_t, x'_1))
            xs = [v.float() for v in fx["xs"]]
            out = net(torch.cat(xs[:2], 1), fx["t"], torch.cat(xs[2:], 1))
            torch.testing.assert_close(out, fx["out"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ("G", "G_plain", "D", "E"))
def test_init_weights_xavier_gives_the_official_init(name):
    """Same draws in the same order (module registration order), Linear biases zeroed (the
    AdaptiveLayer's 1/0 bias too, as the official init_weights ends up)."""
    fx = OFFICIAL[name]
    net = UNSBGenerator(**fx["config"]) if name.startswith("G") else UNSBDiscriminator(**fx["config"])
    torch.manual_seed(fx["init_seed"])
    init_weights(net, gain=0.02, init_type="xavier")
    state = net.state_dict()
    assert list(state) == list(fx["init"])
    for k, digest in fx["init"].items():
        v = state[k].double().flatten()
        ours = torch.cat([v[:4], v.sum()[None], v.square().sum()[None]])
        torch.testing.assert_close(ours, digest, rtol=1e-6, atol=1e-9, msg=k)


# ---- the official block quirk and its fix


def test_official_blocks_ignore_time_and_fixed_blocks_do_not():
    x, t, z = inputs(OFFICIAL["G"])
    official, _ = official_generator()
    fixed, _ = official_generator(fixed_blocks=True)  # same keys: the official weights load
    with torch.no_grad():
        torch.testing.assert_close(official(x, t, z), official(x, t + 1, z), atol=0, rtol=0)
        moved = (fixed(x, t, z) - fixed(x, t + 1, z)).abs().max()
        assert moved > 1e-3
        assert (fixed(x, t, z) - official(x, t, z)).abs().max() > 1e-3


@pytest.mark.parametrize("fixed", (False, True))
def test_exactly_the_parameters_that_reach_the_output_train(fixed):
    net, fx = official_generator(fixed_blocks=fixed)
    x, t, z = inputs(fx)
    net(x, t, z).square().mean().backward()
    unused = ("conv_block.1.", "Dense_time.", "time_embed.") if not fixed else ()
    for name, p in net.named_parameters():
        frozen = ".style." in name or any(u in name for u in unused)
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name  # every trainable parameter gets a gradient
        assert name in net.state_dict()


# ---- fixed conditioning as plain layers; exact tiling


@pytest.mark.parametrize("fixed", (False, True))
@pytest.mark.parametrize("name", GENERATORS)
def test_bound_chain_equals_forward(name, fixed):
    net, fx = official_generator(name, fixed_blocks=fixed)
    x, t, z = inputs(fx)
    bound = net.bind(t[:1], z[:1])
    assert sum(isinstance(m, ResidualBlock) for m in bound) == fx["config"]["n_blocks"]
    affines = [m for b in bound if isinstance(b, ResidualBlock) for m in b.body if isinstance(m, ChannelAffine)]
    assert len(affines) == fx["config"]["n_blocks"] * (2 if fixed else 1)  # adaptive [+ time bias]
    with torch.no_grad():
        torch.testing.assert_close(nn.Sequential(*bound)(x[:1]), net(x[:1], t[:1], z[:1]), atol=1e-6, rtol=0)
    assert UNSBKind().layers(net, {"time_cond": t[:1], "z": z[:1]})[0] is bound[0]


@pytest.mark.parametrize("fixed", (False, True))
def test_tiled_translation_equals_untiled(fixed):
    net, fx = official_generator(fixed_blocks=fixed)
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    t, z = fx["t"][:1], fx["z"][:1].float()
    with torch.inference_mode():
        tiled = translate_tiled(nn.Sequential(*net.bind(t, z)), x, tile=16, device=torch.device("cpu"))
        torch.testing.assert_close(tiled, net(x, t, z), atol=1e-5, rtol=0)


# ---- the kind: recognising, architecture, sampling


@pytest.mark.parametrize("name", GENERATORS)
def test_arch_is_read_from_the_tensors_and_rebuilds_the_net(name):
    fx = OFFICIAL[name]
    kind = UNSBKind()
    arch = kind.arch(fx["state"])
    assert arch == fx["config"]
    rebuilt = kind.build(arch).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in fx["state"].items()}
    net = UNSBGenerator(**arch, num_timesteps=3, tau=0.05)
    assert describe(net) == ("unsb", arch | {"fixed_blocks": False, "num_timesteps": 3, "tau": 0.05, "strength_range": None})
    assert kind.steps(describe(net)[1]) == (3, 3)
    assert kind.channels(arch) == (3, fx["config"]["out_channels"])


def test_defaults_are_the_constructors_and_the_official_ones():
    signature = inspect.signature(UNSBGenerator).parameters
    defaults = UNSBKind().defaults()
    assert defaults == {"fixed_blocks": False, "num_timesteps": 5, "tau": 0.01, "strength_range": None}
    assert all(signature[k].default == v for k, v in defaults.items())
    assert UNSBKind().steps({}) == (5, 5)


def test_recognise_tells_resnet_and_unsb_apart():
    resnet = ResnetGenerator(ngf=4, n_blocks=1, antialias=True, antialias_up=True).state_dict()
    unsb = OFFICIAL["G"]["state"]
    no_blocks = UNSBGenerator(ngf=4, n_blocks=0).state_dict()  # no model_res keys at all
    assert not UNSBKind().recognises(resnet) and UNSBKind().recognises(unsb) and UNSBKind().recognises(no_blocks)
    assert ResnetKind().recognises(resnet) and not ResnetKind().recognises(unsb)
    assert not ResnetKind().recognises(no_blocks)
    assert recognise(resnet) is KINDS["resnet"] and recognise(unsb) is KINDS["unsb"] is recognise(no_blocks)


def test_a_missing_key_is_named():
    state = dict(OFFICIAL["G"]["state"])
    del state["model.1.weight"]
    with pytest.raises(ValueError, match="'model.1.weight' is missing"):
        UNSBKind().arch(state)
    state = fp32(OFFICIAL["G"]["state"])
    del state["model_res.1.adaptive.style_net.bias"]
    with pytest.raises(RuntimeError, match=r"model_res\.1\.adaptive\.style_net\.bias"):
        UNSBGenerator(**OFFICIAL["G"]["config"]).load_state_dict(state, strict=True)


def test_times_are_the_official_schedule():
    torch.testing.assert_close(unsb_times(5), torch.tensor([0.0, 0.5, 0.74, 0.86, 0.94, 1.0]))
    for T in (2, 3, 8, 20):  # the official numpy formula
        incs = np.array([0] + [1 / (i + 1) for i in range(T - 1)])
        times = np.cumsum(incs)
        times = times / times[-1]
        times = np.concatenate([np.zeros(1), 0.5 * times[-1] + 0.5 * times])
        assert torch.equal(unsb_times(T), torch.tensor(times).float())
    assert unsb_times(1).tolist() == [0.0, 1.0]


def fake_generator(calls: list):
    """A stand-in for the network that depends on x_t, the step index and z, and records its inputs."""
    def run(x, cond):
        calls.append((x.clone(), cond["time_cond"].clone(), cond["z"].clone()))
        return torch.tanh(1.5 * x + cond["z"].mean(1)[:, None, None, None] + 0.1 * cond["time_cond"][:, None, None, None])
    return run


def hand_sampler(x, ngf, T, tau, steps, seed):
    """The official test phase written out (its times in numpy, inter and scale in fp32), with the
    noise of each image from its own stream: eps then z at each step."""
    incs = np.array([0] + [1 / (i + 1) for i in range(T - 1)])
    times = np.cumsum(incs)
    times = times / times[-1]
    times = torch.tensor(np.concatenate([np.zeros(1), 0.5 * times[-1] + 0.5 * times])).float()
    gens = [torch.Generator().manual_seed(seed) for _ in range(x.shape[0])]
    Xt = Xt_1 = x
    for t in range(steps):
        if t > 0:
            delta, denom = times[t] - times[t - 1], times[-1] - times[t - 1]
            inter, scale = delta / denom, delta * (1 - delta / denom)
            eps = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens])
            Xt = (1 - inter) * Xt + inter * Xt_1 + (scale * tau).sqrt() * eps
        z = torch.stack([torch.randn(4 * ngf, generator=g) for g in gens])
        Xt_1 = torch.tanh(1.5 * Xt + z.mean(1)[:, None, None, None] + 0.1 * t)
    return Xt_1


@pytest.mark.parametrize("steps", (1, 2, 5))
def test_sampler_follows_the_official_formulas(steps):
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    arch = {"ngf": 4, "num_timesteps": 5, "tau": 0.3}  # a large tau: the noise term shows
    calls = []
    out = UNSBKind().translate(fake_generator(calls), x, arch, steps, seed=7)
    torch.testing.assert_close(out, hand_sampler(x, 4, 5, 0.3, steps, seed=7), atol=1e-6, rtol=0)
    assert len(calls) == steps  # NFE = steps: the official fake_<steps>
    for i, (_, t, z) in enumerate(calls):
        assert t.dtype == torch.long and t.tolist() == [i, i] and z.shape == (2, 16)
    if steps > 1:
        assert not torch.equal(calls[1][0], x)


def test_sampler_is_seeded_per_image():
    net, fx = official_generator()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        both = translate_with(net, x, steps=3, seed=5)
        alone = translate_with(net, x[:1], steps=3, seed=5)
        other = translate_with(net, torch.cat([x[:1], -x[1:]]), steps=3, seed=5)
        # Batch-independent: up to float rounding (convolutions block a batch of 2 differently),
        # where one wrong noise draw would move pixels by ~sqrt(tau * v) = 0.05.
        torch.testing.assert_close(alone[0], both[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(other[0], both[0], atol=1e-4, rtol=0)
        assert torch.equal(translate_with(net, x, steps=3, seed=5), both)  # deterministic
        assert (translate_with(net, x, steps=3, seed=6) - both).abs().max() > 1e-4  # the seed matters
        assert (translate_with(net, x, steps=2, seed=5) - both).abs().max() > 1e-4


@pytest.mark.parametrize("steps", (0, 6, -1))
def test_steps_outside_the_schedule_are_refused(steps):
    with pytest.raises(ValueError, match=r"1 to 5 steps") as err:
        UNSBKind().translate(fake_generator([]), torch.zeros(1, 3, 8, 8), {"ngf": 4}, steps, seed=0)
    assert "\n" not in str(err.value)


def test_example_conditions_fit_the_network():
    net, fx = official_generator()
    cond = UNSBKind().example_conditions(fx["config"], 2)
    assert cond["time_cond"].dtype == torch.long and cond["time_cond"].shape == (2,)
    assert cond["z"].shape == (2, 32) and not math.isclose(float(cond["z"].std()), 0.0)
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 16, 16), **cond).shape == (2, 3, 16, 16)

