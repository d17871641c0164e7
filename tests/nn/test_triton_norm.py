"""The fused GroupNorm + ReLU: interpreted against PyTorch's form, dispatched from the ResNet-v2 block on CUDA
only when enabled, and off the CPU path. (Compiled to sm_90 cubins with the attention kernels:
``test_triton_attention.py``.)
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

pytest.importorskip("triton", reason="Triton is not installed (pip install 'mantis-cd[gpu]')")

from mantis.nn import triton_norm  # noqa: E402
from mantis.nn.units import ResNetV2Block  # noqa: E402

from .test_triton_attention import _child, run_interpreted_cases  # noqa: E402


def test_interpreted_kernels_match_group_norm_then_relu() -> None:
    """fp32 and bf16, 1D/2D/3D, 1 to C groups, ragged tiles, layouts, large means, opcheck (the cases file)."""
    run_interpreted_cases("tests/nn/triton_norm_interpreted_cases.py")


def test_block_sends_cuda_maps_to_the_fused_op_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake CUDA tensors (shapes, dtypes, devices, no data): which maps the block sends to the fused op."""
    calls: list[tuple[torch.dtype, int]] = []

    def spy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
        calls.append((x.dtype, groups))
        return x

    monkeypatch.setattr(triton_norm, "group_norm_relu", spy)
    block = ResNetV2Block(8, norm="group", norm_groups=4)
    batch_norm = ResNetV2Block(8, norm="batch")
    with FakeTensorMode():
        x = torch.empty(2, 8, 6, 6, device="cuda", dtype=torch.bfloat16)
        monkeypatch.setattr(triton_norm, "ENABLED", False)
        assert not triton_norm.supports(block.norm1, x)  # off by default: PyTorch's GroupNorm and ReLU
        monkeypatch.setattr(triton_norm, "ENABLED", True)
        assert block._norm_act(block.norm1, x) is x and calls == [(torch.bfloat16, 4)]
        assert not triton_norm.supports(batch_norm.norm1, x)  # only GroupNorm has the fused path
        assert not triton_norm.supports(block.norm1, torch.empty(2, 8, 6, 6, device="cuda", dtype=torch.float64))


def test_the_ops_fake_implementations_give_shapes_dtypes_and_layouts() -> None:
    """What torch.compile traces with: outputs in x's dtype and layout, float32 statistics per sample and group."""
    with FakeTensorMode():
        x = torch.empty(2, 5, 8, 6, device="cuda", dtype=torch.bfloat16).permute(0, 3, 1, 2)  # channels-last
        w, b = torch.empty(6, device="cuda"), torch.empty(6, device="cuda")
        y, mean, rstd = torch.ops.mantis.group_norm_relu(x, w, b, 3, 1e-5)
        assert y.shape == x.shape and y.dtype == torch.bfloat16 and y.is_cuda
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert mean.shape == rstd.shape == (2, 3) and mean.dtype == rstd.dtype == torch.float32
        dx, dw, db = torch.ops.mantis.group_norm_relu_backward(y, x, w, b, mean, rstd)
        assert (
            dx.shape == x.shape and dx.dtype == torch.bfloat16 and dx.is_contiguous(memory_format=torch.channels_last)
        )
        assert dw.shape == db.shape == (6,) and dw.dtype == torch.float32


def test_cpu_maps_stay_on_the_pytorch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> torch.Tensor:
        raise AssertionError("the Triton GroupNorm ran on a CPU tensor")

    monkeypatch.setattr(triton_norm, "group_norm_relu", fail)
    monkeypatch.setattr(triton_norm, "ENABLED", True)
    torch.manual_seed(0)
    block = ResNetV2Block(8, norm="group", norm_groups=4)
    x = torch.randn(1, 8, 5, 5)
    want = block.conv2(torch.relu(block.norm2(block.conv1(torch.relu(block.norm1(x))))))
    torch.testing.assert_close(block(x), want)


def test_enabled_only_by_mantis_triton_norm_1() -> None:
    check = "from mantis.nn import triton_norm as t; print(t.ENABLED)"
    runs = {flag: _child(["-c", check], interpret=False, MANTIS_TRITON_NORM=flag) for flag in ("0", "1")}
    unset = _child(["-c", check], interpret=False)
    assert [runs["0"].stdout.strip(), runs["1"].stdout.strip(), unset.stdout.strip()] == ["False", "True", "False"]
