"""The fractal Tanimoto similarity against a direct transcription of the formula and hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mantis.nn.functional import fractal_tanimoto


def direct_ft(p: torch.Tensor, l: torch.Tensor, depth: int, dim: tuple[int, ...], s: float = 1e-5) -> torch.Tensor:  # noqa: E741
    """The spec's formula, term by term, with the complement materialised (float64)."""
    p, l = p.double(), l.double()  # noqa: E741

    def avg_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ab = (a * b).sum(dim, keepdim=True)
        aa = (a * a).sum(dim, keepdim=True)
        bb = (b * b).sum(dim, keepdim=True)
        d = max(depth, 1)
        total = sum(1.0 / (2**i * (aa + bb) - (2 ** (i + 1) - 1) * ab + s) for i in range(d))
        return (ab + s) * total / d

    return 0.5 * (avg_t(p, l) + avg_t(1 - p, 1 - l))


@pytest.mark.parametrize("depth", [0, 1, 3, 5, 10])
@pytest.mark.parametrize("dim", [(1,), (2, 3), (1, 2, 3)])
def test_matches_direct_formula(depth: int, dim: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 5, 6, 7, generator=g, dtype=torch.float64)
    l = torch.rand(2, 5, 6, 7, generator=g, dtype=torch.float64)  # noqa: E741
    torch.testing.assert_close(fractal_tanimoto(p, l, depth, dim), direct_ft(p, l, depth, dim), rtol=1e-12, atol=1e-12)


def test_hand_computed_small_case() -> None:
    # p = (1, 0), l = (1, 1): <p,l> = 1, <p,p> = 1, <l,l> = 2; complement: (0, 1) vs (0, 0): 0, 1, 0.
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    l = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # noqa: E741
    s = 1e-5
    t0 = (1 + s) / (3 - 1 + s)  # depth 1: 1 / (1 + 2 - 1)
    t0c = (0 + s) / (1 - 0 + s)
    assert fractal_tanimoto(p, l, 1, 1, smooth=s).item() == pytest.approx(0.5 * (t0 + t0c), abs=1e-12)
    # depth 2 adds i = 1: 1 / (2 * 3 - 3 * 1) for the pair and 1 / (2 * 1) for the complement.
    t1 = (1 + s) * 0.5 * (1 / (2 + s) + 1 / (3 + s))
    t1c = s * 0.5 * (1 / (1 + s) + 1 / (2 + s))
    assert fractal_tanimoto(p, l, 2, 1, smooth=s).item() == pytest.approx(0.5 * (t1 + t1c), abs=1e-12)
    assert fractal_tanimoto(p, l, 2, 1, complement=False, smooth=s).item() == pytest.approx(t1, abs=1e-12)


def test_equal_inputs_and_zeros_give_one() -> None:
    p = torch.rand(3, 4, 8, 8)
    torch.testing.assert_close(fractal_tanimoto(p, p, 30, (1, 2, 3)), torch.ones(3, 1, 1, 1))
    z = torch.zeros(2, 4, 5)
    assert torch.equal(fractal_tanimoto(z, z, 10, (1, 2)), torch.ones(2, 1, 1))


def test_depth_zero_equals_depth_one() -> None:
    p, l = torch.rand(2, 3, 9), torch.rand(2, 3, 9)  # noqa: E741
    assert torch.equal(fractal_tanimoto(p, l, 0, 1), fractal_tanimoto(p, l, 1, 1))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), depth=st.integers(0, 20))
def test_range_and_symmetry(seed: int, depth: int) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(2, 3, 4, generator=g, dtype=torch.float64)
    l = torch.rand(2, 3, 4, generator=g, dtype=torch.float64)  # noqa: E741
    a = fractal_tanimoto(p, l, depth, (1, 2))
    assert torch.all((a >= 0) & (a <= 1))
    torch.testing.assert_close(a, fractal_tanimoto(l, p, depth, (1, 2)))


def test_steeper_with_depth() -> None:
    g = torch.Generator().manual_seed(3)
    l = (torch.rand(1, 2, 16, generator=g) > 0.5).double()  # noqa: E741
    p = (0.7 * l + 0.3 * torch.rand(1, 2, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    values = [fractal_tanimoto(p, l, d, (1, 2)).item() for d in (1, 2, 5, 10, 20)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_stable_at_high_depth_in_float32() -> None:
    # The naive denominator 2^i(<p,p>+<l,l>) - (2^(i+1)-1)<p,l> cancels catastrophically at depth 30.
    g = torch.Generator().manual_seed(1)
    l = torch.rand(1, 2, 64, 64, generator=g)  # noqa: E741
    p = (l + 0.01 * torch.randn(1, 2, 64, 64, generator=g)).clamp(0, 1)
    got = fractal_tanimoto(p, l, 30, (1, 2, 3))
    want = direct_ft(p.double(), l.double(), 30, (1, 2, 3))
    assert math.isfinite(got.item())
    assert got.item() == pytest.approx(want.item(), abs=1e-5)


def test_bf16_inputs_reduce_in_float32() -> None:
    p, l = torch.rand(2, 8, 32, 32), torch.rand(2, 8, 32, 32)  # noqa: E741
    got = fractal_tanimoto(p.bfloat16(), l.bfloat16(), 5, (2, 3))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, fractal_tanimoto(p, l, 5, (2, 3)), atol=5e-3, rtol=0)


def test_gradcheck() -> None:
    p = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)
    l = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)  # noqa: E741
    assert torch.autograd.gradcheck(lambda a, b: fractal_tanimoto(a, b, 5, 1), (p, l))
    assert torch.autograd.gradcheck(lambda a, b: fractal_tanimoto(a, b, 3, (1, 2)), (p, l))


def test_weights_exclude_elements() -> None:
    p, l = torch.rand(1, 2, 10, dtype=torch.float64), torch.rand(1, 2, 10, dtype=torch.float64)  # noqa: E741
    w = torch.ones(1, 1, 10, dtype=torch.float64)
    w[..., 6:] = 0
    got = fractal_tanimoto(p, l, 4, (1, 2), weight=w)
    torch.testing.assert_close(got, direct_ft(p[..., :6], l[..., :6], 4, (1, 2)))
