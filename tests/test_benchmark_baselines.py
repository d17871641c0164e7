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


def test_conv_kernel_ways_compute_the_same_convolution() -> None:
    """benchmarks/conv_kernels.py times three ways of each convolution: they must give the same values."""
    from benchmarks.conv_kernels import WAYS, build, forward, record_calls

    calls = record_calls("fractal_resunet")
    assert sum(calls.values()) == 64  # every convolution of one forward pass at demo size
    # A grouped attention convolution (merged into block-diagonal groups where that path applies), a strided
    # one, and the stem's 1x1 (whose input needs no gradient): smaller batches keep the test quick.
    picked = [
        next(c for c in calls if c.groups > 1 and c.mantis_conv),
        next(c for c in calls if c.stride == (2, 2)),
        next(c for c in calls if not c.input_grad),
    ]
    for call in picked:
        call = call._replace(input_shape=(2, *call.input_shape[1:]))
        torch.manual_seed(0)
        reference, x = build(call, WAYS[0], torch.float32)
        for way in WAYS:
            conv, _ = build(call, way, torch.float32)
            conv.load_state_dict(reference.state_dict())
            x_way = x.detach().clone().requires_grad_(call.input_grad)
            y = forward(conv, x_way, way)
            assert y.is_contiguous(memory_format=torch.channels_last)
            y.backward(torch.ones_like(y))
            if way == WAYS[0]:
                expected_y, expected_grads = y.detach(), [conv.weight.grad, x_way.grad]
                continue
            torch.testing.assert_close(y, expected_y, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(conv.weight.grad, expected_grads[0], rtol=1e-4, atol=1e-3)
            if call.input_grad:
                torch.testing.assert_close(x_way.grad, expected_grads[1], rtol=1e-4, atol=1e-4)
            else:
                assert x_way.grad is None
