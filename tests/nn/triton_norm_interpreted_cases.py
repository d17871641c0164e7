"""The fused GroupNorm + ReLU kernels give ``relu(group_norm(x))``'s values and gradients, run by Triton's
interpreter on the CPU.

Run by ``test_triton_norm.py`` in a child process with TRITON_INTERPRET=1 (read when Triton is imported). By
hand: ``TRITON_INTERPRET=1 pytest tests/nn/triton_norm_interpreted_cases.py``.

Reference: PyTorch's ``group_norm`` and ``relu`` differentiated by autograd in float64 on the same (rounded)
inputs, independent of the kernels.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("needs TRITON_INTERPRET=1 set before Triton is imported", allow_module_level=True)
pytest.importorskip("triton", reason="Triton is not installed (pip install 'mantis-cd[gpu]')")

from mantis.nn import triton_norm  # noqa: E402

EPS = 1e-5


def _inputs(
    shape: tuple[int, ...], dtype: torch.dtype, seed: int, offset: float = 0.0, spread: float = 1.0
) -> tuple[torch.Tensor, ...]:
    """x (rounded to ``dtype``), weight and bias (float32, some weights negative), an upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    x = (offset + spread * torch.randn(shape, generator=g)).to(dtype)
    weight = torch.randn(shape[1], generator=g)
    bias = 0.5 * torch.randn(shape[1], generator=g)
    return x, weight, bias, torch.randn(shape, generator=g).to(dtype)


def _float64_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor, groups: int
) -> tuple[torch.Tensor, ...]:
    inputs = tuple(t.double().requires_grad_() for t in (x, weight, bias))
    y = F.relu(F.group_norm(inputs[0], groups, inputs[1], inputs[2], EPS))
    return (y.detach(), *torch.autograd.grad(y, inputs, grad.double()))


def _bound(ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Allowed error per element: 1e-5 of the largest entry (float32 sums of a few hundred terms are ~1e-7
    relative), plus, for bf16 outputs, one bf16 ulp of the entry (Triton 3.7's interpreter truncates where a
    GPU rounds to nearest)."""
    floor = 1e-5 * ref.abs().max()
    return floor if dtype == torch.float32 else floor + 2.0**-7 * ref.abs()


CASES = [
    # shape, groups, tile (BLOCK_C, BLOCK_S) or None for the launch heuristic
    ((2, 6, 13), 3, (4, 4)),  # 1D: channel blocks across group edges, a ragged last tile
    ((2, 8, 5, 7), 4, (4, 8)),  # 2D, 35 positions over 5 tiles
    ((1, 4, 3, 5, 6), 1, (2, 16)),  # 3D, one group (layer norm)
    ((3, 6, 4, 9), 6, None),  # one channel a group (instance norm), the heuristic's tile
    ((2, 16, 6, 6), 4, None),  # the heuristic's tile
    ((1, 2, 129), 2, (1, 2)),  # 65 tiles of two positions
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("shape", "groups", "blocks"), CASES)
def test_kernels_match_group_norm_then_relu(
    shape: tuple[int, ...], groups: int, blocks: tuple[int, int] | None, dtype: torch.dtype
) -> None:
    x, weight, bias, grad = _inputs(shape, dtype, seed=len(shape) + groups)
    y, mean, rstd = triton_norm.launch_forward(x, weight, bias, groups, EPS, blocks)
    dx, dw, db = triton_norm.launch_backward(grad, x, weight, bias, mean, rstd, blocks)
    want = _float64_reference(x, weight, bias, grad, groups)
    for name, got, ref, out_dtype in zip(
        ("y", "grad x", "grad weight", "grad bias"), (y, dx, dw, db), want, (dtype, dtype, torch.float32, torch.float32)
    ):
        assert got.dtype == out_dtype and got.shape == ref.shape, name
        err = (got.double() - ref).abs()
        assert bool((err <= _bound(ref, out_dtype)).all()), f"{name}: max error {err.max():.3g}"


def test_statistics_keep_their_precision_far_from_zero() -> None:
    """Values of 1000 +- 0.01: a sum-of-squares variance in float32 would lose every digit of it; the output
    is as close to the float64 form as PyTorch's own float32 GroupNorm."""
    x, weight, bias, grad = _inputs((2, 4, 8, 8), torch.float32, seed=7, offset=1000.0, spread=0.01)
    y, mean, rstd = triton_norm.launch_forward(x, weight, bias, 2, EPS, (2, 16))
    want = _float64_reference(x, weight, bias, grad, 2)
    ref_rstd = 1 / torch.sqrt(x.double().view(2, 2, -1).var(2, unbiased=False) + EPS)
    torch.testing.assert_close(rstd.double(), ref_rstd, rtol=1e-3, atol=0)
    flat = x.view(2, 2, -1)  # what the one-pass E[x^2] - E[x]^2 in float32 makes of it: noise
    naive = 1 / torch.sqrt((flat.square().mean(2) - flat.mean(2).square()).clamp_min(0) + EPS)
    assert ((naive.double() - ref_rstd).abs() / ref_rstd).max() > 0.1
    pytorch = F.relu(F.group_norm(x, 2, weight, bias, EPS))  # PyTorch's float32 kernels on the same input
    assert (y.double() - want[0]).abs().max() <= 1.2 * (pytorch.double() - want[0]).abs().max()


def test_the_op_runs_through_autograd_and_matches_pytorch() -> None:
    x, weight, bias, grad = _inputs((2, 8, 4, 5), torch.float32, seed=1)
    inputs = (x.clone().requires_grad_(), weight.clone().requires_grad_(), bias.clone().requires_grad_())
    y = triton_norm.group_norm_relu(*inputs, 4, EPS)
    grads = torch.autograd.grad(y, inputs, grad)
    ref_inputs = (x.clone().requires_grad_(), weight.clone().requires_grad_(), bias.clone().requires_grad_())
    want = F.relu(F.group_norm(ref_inputs[0], 4, ref_inputs[1], ref_inputs[2], EPS))
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, torch.autograd.grad(want, ref_inputs, grad)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_channels_last_inputs_give_the_same_values_in_their_own_layout() -> None:
    x, weight, bias, grad = _inputs((2, 8, 3, 6), torch.float32, seed=3)
    want = triton_norm.launch_forward(x, weight, bias, 4, EPS, (4, 4))
    want_grads = triton_norm.launch_backward(grad, x, weight, bias, *want[1:], (4, 4))
    cl_x, cl_grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    got = triton_norm.launch_forward(cl_x, weight, bias, 4, EPS, (4, 4))
    got_grads = triton_norm.launch_backward(cl_grad, cl_x, weight, bias, *got[1:], (4, 4))
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert got_grads[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip((*got, *got_grads), (*want, *want_grads)):  # same tiles and order: equal to the last bit
        assert torch.equal(a, b)


def test_op_registration_passes_opcheck() -> None:
    x, weight, bias, _ = _inputs((1, 4, 2, 3), torch.float32, seed=4)
    args = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(), 2, EPS)
    torch.library.opcheck(torch.ops.mantis.group_norm_relu.default, args)


def test_the_op_compiles_whole_with_its_backward() -> None:
    """torch.compile sees the op (fullgraph: no break) and AOT autograd its backward: same values as eager."""
    x, weight, bias, grad = _inputs((1, 4, 4, 5), torch.float32, seed=6)

    def layer(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 2.0 * triton_norm.group_norm_relu(a, w, b, 2, EPS)

    results = []
    for fn in (layer, torch.compile(layer, fullgraph=True, backend="aot_eager")):
        inputs = tuple(t.clone().requires_grad_() for t in (x, weight, bias))
        y = fn(*inputs)
        results.append((y, *torch.autograd.grad(y, inputs, grad)))
    for got, want in zip(*results):
        assert torch.equal(got, want)


def test_a_resnet_block_through_the_fused_op_equals_the_pytorch_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block's use of the op (its GroupNorms' weights, biases, groups and eps) on CPU tensors, interpreted."""
    from mantis.nn.units import ResNetV2Block

    torch.manual_seed(0)
    block = ResNetV2Block(8, norm="group", norm_groups=4)
    for norm in (block.norm1, block.norm2):  # not the initial 1 and 0: a mix-up of weight and bias would show
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 6, 7)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(triton_norm, "supports", lambda norm, t, on=fused: on)
        block.zero_grad()
        xin = x.clone().requires_grad_()
        y = block(xin)
        y.square().sum().backward()
        results.append((y, xin.grad, *(p.grad for p in block.parameters())))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
