"""The InstanceNorm of every network (nets/layers.InstanceNorm2d) gives the right input gradient
for a batch of one image whatever the incoming gradient's memory layout. PyTorch 2.14.1's CPU
kernel does not when that gradient is channels_last (batch-1 runs with train.channels_last, and
gradients coming back through PatchNCE's patch sampling)."""

import pytest
import torch
import torch.nn.functional as F

from gan_style.nets import PatchSampler, ResnetGenerator, init_weights
from gan_style.nets.layers import ChannelAffine, ModulatedNorm, instance_norm


def gradient(norm, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(norm(x), x, grad)
    return g


def reference(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The same gradient in fp64, all contiguous."""
    return gradient(F.instance_norm, x.double().contiguous(), grad.double().contiguous()).float()


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("grad_layout", [torch.contiguous_format, torch.channels_last])
def test_input_gradient_is_right_in_every_layout(n, x_layout, grad_layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, 8, 8, generator=g).contiguous(memory_format=x_layout)
    grad = torch.randn(n, 16, 8, 8, generator=g).contiguous(memory_format=grad_layout)
    torch.testing.assert_close(gradient(instance_norm(16), x, grad), reference(x, grad), atol=1e-5, rtol=1e-4)


def test_patch_nce_gradients_through_the_generator_match_finite_differences():
    """One image through G's encoder, the patch sampler (a transposed view: channels_last
    gradients) and a loss: the analytic directional derivative equals the finite difference."""
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, 4, 2), 0.5).double()
    sampler = init_weights(PatchSampler([16], 8), 0.5).double()
    x = torch.rand(1, 3, 16, 16, dtype=torch.double) * 2 - 1
    ids = [torch.randperm(16)[:8]]

    def loss(inp: torch.Tensor) -> torch.Tensor:
        (feat,) = net.encode(inp, (10,))  # the first residual block's output (N, 16, 4, 4)
        return sampler([feat], ids)[0].square().sum() + sampler([feat], ids)[0][:, 0].sum()

    direction = torch.randn_like(x)
    inp = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(inp), inp)
    with torch.no_grad():
        numeric = (loss(x + 1e-6 * direction) - loss(x - 1e-6 * direction)) / 2e-6
    torch.testing.assert_close((grad * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_modulated_norm_is_the_norm_then_its_modulation_in_one_pass(n, layout):
    """FiLM's training layer (each image its own scale and shift, inside the norm's kernel) gives the
    values and the gradients (input, scale, shift) of the norm followed by the modulation, fp64."""
    g = torch.Generator().manual_seed(1)
    x, grad = (torch.randn(n, 16, 8, 8, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
               for _ in range(2))
    scale, shift = 1 + 0.5 * torch.randn(n, 16, generator=g, dtype=torch.float64), torch.randn(n, 16, generator=g, dtype=torch.float64)
    results = []
    for layer in (torch.nn.Sequential, ModulatedNorm):
        leaves = [t.detach().clone().requires_grad_(True) for t in (x, scale, shift)]
        y = layer(instance_norm(16), ChannelAffine(leaves[1], leaves[2]))(leaves[0])
        results.append([y, *torch.autograd.grad(y, leaves, grad)])
    for fused, plain in zip(*results):
        torch.testing.assert_close(fused, plain, atol=1e-12, rtol=1e-10)
