"""The benchmarks' baseline attentions compute the same values as ours, so speed-ups compare like with like."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.straightforward_attention import per_term_attention, straightforward_attention  # noqa: E402
from mantis.nn.attention import FracTALAttention  # noqa: E402


@pytest.mark.parametrize("baseline", [straightforward_attention, per_term_attention])
@pytest.mark.parametrize("depth", [0, 1, 5])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_baseline_matches_fused_attention(baseline, depth: int, spatial_dims: int) -> None:
    torch.manual_seed(depth + 10 * spatial_dims)
    att = FracTALAttention(8, nheads=2, attention_depth=depth, spatial_dims=spatial_dims).double()
    shape = (2, 8) + (6, 5, 4)[:spatial_dims]
    q_src, kv_src = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    expected_self, expected_rel = att(q_src), att(q_src, kv_src)
    ours = FracTALAttention.forward
    with baseline():
        assert FracTALAttention.forward is not ours  # the baseline really runs
        got_self, got_rel = att(q_src), att(q_src, kv_src)
    assert FracTALAttention.forward is ours  # and ours is restored
    torch.testing.assert_close(got_self, expected_self, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(got_rel, expected_rel, rtol=1e-9, atol=1e-10)
