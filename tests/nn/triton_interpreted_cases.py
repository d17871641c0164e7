"""The Triton attention core gives the reference form's values and gradients, run by Triton's interpreter on CPU.

Run by ``test_triton_attention.py`` in a child process with TRITON_INTERPRET=1 (Triton reads it when it and the
kernels are imported, so it must be set before either; a child keeps it out of the rest of the suite). By hand:
``TRITON_INTERPRET=1 pytest tests/nn/triton_interpreted_cases.py``.

Reference: :func:`fractal_similarity_maps` followed by ``0.5 * v * (spatial + channel)``, differentiated by
autograd in float64 on the same (rounded) inputs: independent of both the kernels and ``_FusedAttention``.
"""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("needs TRITON_INTERPRET=1 set before Triton is imported", allow_module_level=True)
pytest.importorskip("triton", reason="Triton is not installed (pip install 'mantis-cd[gpu]')")

from mantis.nn import triton_attention  # noqa: E402
from mantis.nn.attention import _FusedAttention, fractal_similarity_maps  # noqa: E402


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int) -> torch.Tensor:
    sp, ch = fractal_similarity_maps(q, k, depth)
    return 0.5 * v * (sp + ch)


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    """q, k, v in (0, 1) and an upstream gradient, already rounded to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.rand(shape, generator=g).to(dtype) for _ in range(3))
    return q, k, v, torch.randn(shape, generator=g).to(dtype)


def _float64_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, depth: int
) -> tuple[torch.Tensor, ...]:
    inputs = tuple(t.double().requires_grad_() for t in (q, k, v))
    y = _reference(*inputs, depth)
    return (y.detach(), *torch.autograd.grad(y, inputs, grad.double()))


def _bound(ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Allowed error per element.

    float32: 1e-5 of the tensor's largest entry (sums of <= 200 terms and d Tanimoto terms in float32 are
    ~1e-7 relative; 100x margin). bfloat16: the kernels compute in float32 from the bf16 inputs and round each
    result once. A GPU rounds to nearest (half an ulp); Triton 3.7's interpreter truncates float32 -> bf16
    (``cast_impl`` ignores the rounding mode), up to one ulp, which is 2^-7 of the entry at worst (8-bit
    significand). Allowed: that ulp plus the float32 term, which covers entries made of cancelling terms.
    """
    floor = 1e-5 * ref.abs().max()
    return floor if dtype == torch.float32 else floor + 2.0**-7 * ref.abs()


CASES = [
    # shape, tile (BLOCK_C, BLOCK_S) or None for the launch heuristic, depth
    ((2, 5, 13), (2, 4), 5),  # 1D: several channel blocks and tiles, both with a ragged edge
    ((2, 6, 5, 7), (4, 8), 3),  # 2D, 35 positions over 5 tiles
    ((1, 3, 3, 5, 6), (2, 16), 1),  # 3D, depth 1 (plain Tanimoto with complement)
    ((3, 7, 4, 9), None, 5),  # 2D with the heuristic tile
    ((1, 2, 2, 3, 2), (4, 4), 10),  # 3D smaller than one tile in both axes, deep
    ((2, 1, 3), None, 2),  # one channel, three positions: the heuristic's smallest tile (1 x 4)
    ((1, 1, 129), (1, 2), 2),  # 65 tiles: the channel sums add 64 tiles a step, the second step ragged
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("shape", "blocks", "depth"), CASES)
def test_kernels_match_the_reference_form(
    shape: tuple[int, ...], blocks: tuple[int, int] | None, depth: int, dtype: torch.dtype
) -> None:
    q, k, v, grad = _inputs(shape, dtype, seed=len(shape) + depth)
    y, sp, ch = triton_attention.launch_forward(q, k, v, depth, 1e-5, blocks)
    grads = triton_attention.launch_backward(grad, q, k, v, sp, ch, blocks)
    want = _float64_reference(q, k, v, grad, depth)
    for name, got, ref in zip(("y", "grad q", "grad k", "grad v"), (y, *grads), want):
        assert got.dtype == dtype and got.shape == ref.shape
        err = (got.double() - ref).abs()
        assert bool((err <= _bound(ref, dtype)).all()), f"{name}: max error {err.max():.3g}"


def test_the_op_runs_through_autograd_and_matches_the_cpu_path() -> None:
    q, k, v, grad = _inputs((2, 6, 4, 5), torch.float32, seed=1)
    inputs = tuple(t.clone().requires_grad_() for t in (q, k, v))
    y = triton_attention.fractal_attention(*inputs, 5, 1e-5)
    grads = torch.autograd.grad(y, inputs, grad)
    cpu_inputs = tuple(t.clone().requires_grad_() for t in (q, k, v))
    want = _FusedAttention.apply(*cpu_inputs, 5, 1e-5)
    want_grads = torch.autograd.grad(want, cpu_inputs, grad)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    for got, ref in zip(grads, want_grads):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_depth_zero_is_depth_one() -> None:
    q, k, v, _ = _inputs((1, 3, 6), torch.float32, seed=2)
    torch.testing.assert_close(
        triton_attention.fractal_attention(q, k, v, 0, 1e-5), triton_attention.fractal_attention(q, k, v, 1, 1e-5)
    )


def test_channels_last_inputs_give_the_same_values_in_their_own_layout() -> None:
    q, k, v, grad = _inputs((2, 5, 3, 6), torch.float32, seed=3)
    want = triton_attention.launch_forward(q, k, v, 5, 1e-5, (2, 4))
    want_grads = triton_attention.launch_backward(grad, q, k, v, *want[1:], (2, 4))
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (q, k, v, grad)]
    for k_in in (cl[1], k):  # k in the layout of q, and in the other one (copied into q's)
        got = triton_attention.launch_forward(cl[0], k_in, cl[2], 5, 1e-5, (2, 4))
        got_grads = triton_attention.launch_backward(cl[3], cl[0], k_in, cl[2], *got[1:], (2, 4))
        assert got[0].is_contiguous(memory_format=torch.channels_last)
        assert all(t.is_contiguous(memory_format=torch.channels_last) for t in got_grads)
        # Same tiles and summation order in both layouts: equal to the last bit.
        for a, b in zip((*got, *got_grads), (*want, *want_grads)):
            assert torch.equal(a, b)


def test_op_registration_passes_opcheck() -> None:
    """Schema, fake (meta) implementation, autograd registration, and AOT dispatch as torch.compile uses it."""
    q, k, v, _ = _inputs((1, 3, 2, 3), torch.float32, seed=4)
    args = (q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), 3, 1e-5)
    torch.library.opcheck(torch.ops.mantis.fractal_attention.default, args)


def test_the_op_compiles_whole_with_its_backward() -> None:
    """torch.compile sees the op (fullgraph: no break) and AOT autograd its backward: same values as eager."""
    q, k, v, grad = _inputs((1, 3, 4, 5), torch.float32, seed=6)

    def layer(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return 2.0 * triton_attention.fractal_attention(a, b, c, 3, 1e-5)

    results = []
    for fn in (layer, torch.compile(layer, fullgraph=True, backend="aot_eager")):
        inputs = tuple(t.clone().requires_grad_() for t in (q, k, v))
        y = fn(*inputs)
        results.append((y, *torch.autograd.grad(y, inputs, grad)))
    for got, want in zip(*results):
        assert torch.equal(got, want)
