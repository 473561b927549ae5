"""train.auto_weights: the adversarial term scaled by the adaptive weight of Esser et al. (CVPR 2021),
||grad content|| / (||grad adversarial|| + 1e-4) at the generator's last layer. Its DDP equivalence
is in test_distributed.py (cut-auto-weights); how it measured against the defaults in docs/strength.md."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_overrides
from gan_style.io.checkpoint import load_safe
from gan_style.methods import load_config
from gan_style.methods.base import adaptive_weights, last_layer
from gan_style.nets import ResnetGenerator
from gan_style.training.loop import train


def test_the_weight_is_the_ratio_of_the_gradient_norms_at_the_last_layer():
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, 4, 1)
    layer = last_layer(net)
    assert layer is net.model[-2].weight  # the output convolution, before the tanh
    y = net(torch.rand(2, 3, 16, 16))
    content, adversarial = (y - 0.3).abs().mean() * 10, (y + 1).square().mean()
    (g_c,) = torch.autograd.grad(content, layer, retain_graph=True)
    (g_a,) = torch.autograd.grad(adversarial, layer, retain_graph=True)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    (weight,) = adaptive_weights(content, [adversarial], [layer], scaler)
    assert not weight.requires_grad
    torch.testing.assert_close(weight, g_c.norm() / (g_a.norm() + 1e-4))
    assert adaptive_weights(content, [adversarial * 0], [layer], scaler)[0] == 1e4  # clamped, not infinite
    (twice,) = adaptive_weights(content, [2 * adversarial], [layer], scaler)
    torch.testing.assert_close(twice, weight / 2, rtol=1e-4, atol=0)  # balances whatever the loss's scale


@pytest.mark.parametrize("method,extra", [("cyclegan", {}), ("fastcut", {"cut__num_patches": 16})])
def test_a_run_with_auto_weights_logs_them_and_trains_differently(toy_root, tmp_path, method, extra):
    common = dict(method=method, train__max_steps=3, logging__log_every=1, **extra)
    plain = train(load_config(None, tiny_overrides(toy_root, tmp_path / "plain", **common)))
    auto = train(load_config(None, tiny_overrides(toy_root, tmp_path / "auto", train__auto_weights="true", **common)))
    rows = [json.loads(line) for line in (auto.parent / "metrics.jsonl").read_text().splitlines()]
    keys = ("auto_weight/G_A", "auto_weight/G_B") if method == "cyclegan" else ("auto_weight/G",)
    logged = [row[k] for row in rows for k in keys if k in row]
    assert len(logged) == 3 * len(keys) and all(0 < w <= 1e4 for w in logged)  # 1e4: the clamp
    a, b = load_safe(plain)["models"], load_safe(auto)["models"]
    g = "G_A" if method == "cyclegan" else "G"
    assert not torch.equal(a[g]["model.1.weight"], b[g]["model.1.weight"])


@pytest.mark.parametrize("method,extra,message", [
    ("cyclegan", {"train__strength_range": "[0,1]"}, "train.auto_weights balances fixed weights"),
    ("unsb", {}, "method=unsb does not take it"),
])
def test_auto_weights_where_they_do_not_apply_is_one_line(toy_root, tmp_path, method, extra, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, tiny_overrides(toy_root, tmp_path, method=method, train__auto_weights="true", **extra))

