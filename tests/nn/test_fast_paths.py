"""The measured-faster code paths give the values and gradients of the plain PyTorch forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn import grouped
from mantis.nn.attention import attend
from mantis.nn.grouped import Conv2d, _block_diagonal
from mantis.nn.norm import GroupNorm, _ChannelsLastGroupNorm, _group_norm_rows, _sum_over_space
from mantis.nn.pooling import PSPPooling, _broadcast

CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad((out * weight).sum(), inputs)


@pytest.mark.parametrize("shape", [(2, 8, 6, 10), (2, 12, 4, 6, 5)])
def test_channels_last_group_norm_equals_native_in_float64(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(shape, generator=g, dtype=torch.float64) + 1).contiguous(
        memory_format=CHANNELS_LAST[len(shape)]
    )
    x.requires_grad_()
    w = torch.rand(shape[1], generator=g, dtype=torch.float64).add_(0.5).requires_grad_()
    b = torch.randn(shape[1], generator=g, dtype=torch.float64, requires_grad=True)
    got = _ChannelsLastGroupNorm.apply(x, w, b, 4, 1e-5)
    want = F.group_norm(x, 4, w, b, 1e-5)
    torch.testing.assert_close(got, want)
    upstream = torch.randn(shape, generator=g, dtype=torch.float64)
    for a, c in zip(_grads(got, (x, w, b), upstream), _grads(want, (x, w, b), upstream)):
        torch.testing.assert_close(a, c)
    small = torch.randn(1, 4, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    args = (small.requires_grad_(), w[:4].detach().requires_grad_(), b[:4].detach().requires_grad_())
    assert torch.autograd.gradcheck(lambda *t: _ChannelsLastGroupNorm.apply(*t, 2, 1e-5), args)


def test_group_norm_takes_the_fast_paths_only_for_narrow_channels_last_maps() -> None:
    norm = GroupNorm(4, 32)
    cl = torch.randn(2, 32, 8, 8).contiguous(memory_format=torch.channels_last)
    assert norm.path(cl.bfloat16()) == "analytic backward"
    assert norm.path(cl) == "native"  # float32, 8 per group: PyTorch's kernel is faster
    narrow32 = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    assert GroupNorm(4, 16).path(narrow32) == "analytic backward"  # float32, 4 per group
    assert GroupNorm(4, 16).path(narrow32.contiguous()) == "native"
    assert GroupNorm(4, 16).path(narrow32.double()) == "native"  # float64: never measured, plain path
    assert norm.path(torch.randn(2, 32, 8, 8).bfloat16()) == "native"  # contiguous
    assert GroupNorm(4, 64).path(torch.randn(2, 64, 8, 8).bfloat16()) == "native"  # 16 per group
    narrow = GroupNorm(4, 8)
    narrow_cl = torch.randn(2, 8, 8, 8).bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert norm.path(cl.bfloat16()) == "native"  # 32 channels: PyTorch's forward is as fast
        assert narrow.path(narrow_cl) == "rows"
        assert narrow.path(narrow_cl.float()) == "native"  # float32: own forward only up to 4 channels
        four = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
        assert GroupNorm(4, 4).path(four) == "rows"


def test_group_norm_float32_channels_last_gradients_match_float64() -> None:
    """The float32 fast path (4 channels per group, channels-last) against PyTorch's GroupNorm in float64."""
    g = torch.Generator().manual_seed(1)
    for channels in (4, 16):
        norm = GroupNorm(4, channels)
        with torch.no_grad():
            norm.weight.copy_(torch.rand(channels, generator=g) + 0.5)
            norm.bias.copy_(torch.randn(channels, generator=g))
        x = (2 * torch.randn(2, channels, 16, 16, generator=g) + 1).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        up = torch.randn(x.shape, generator=g).contiguous(memory_format=torch.channels_last)
        assert norm.path(x) == "analytic backward"
        y = norm(x)
        (y * up).sum().backward()
        ref = nn.GroupNorm(4, channels).double()
        ref.load_state_dict(norm.state_dict())
        x64 = x.detach().double().requires_grad_()
        y64 = ref(x64)
        (y64 * up.double()).sum().backward()
        assert y.dtype == torch.float32 and y.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(y.double(), y64, atol=1e-5, rtol=0)
        torch.testing.assert_close(x.grad.double(), x64.grad, atol=1e-4, rtol=0)
        torch.testing.assert_close(norm.weight.grad.double(), ref.weight.grad, atol=1e-3, rtol=1e-5)
        torch.testing.assert_close(norm.bias.grad.double(), ref.bias.grad, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("channels, groups", [(8, 4), (8, 2), (4, 4)])
def test_group_norm_rows_forward_is_as_accurate_as_native_in_bf16(channels: int, groups: int) -> None:
    g = torch.Generator().manual_seed(2)
    shape = (2, channels, 24, 20)
    x = (3 * torch.randn(shape, generator=g) + 5).bfloat16().contiguous(memory_format=torch.channels_last)
    w, b = torch.rand(channels, generator=g) + 0.5, torch.randn(channels, generator=g)
    with torch.no_grad():
        got, mean, rstd = _group_norm_rows(x, w, b, groups, 1e-5)
        native = F.group_norm(x, groups, w.bfloat16(), b.bfloat16(), 1e-5)
    want = F.group_norm(x.double(), groups, w.double(), b.double(), 1e-5)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    assert (got.double() - want).abs().max() <= (native.double() - want).abs().max() * 1.5
    grouped = x.double().reshape(2, groups, -1)
    torch.testing.assert_close(mean.double(), grouped.mean(2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rstd.double(), (grouped.var(2, unbiased=False) + 1e-5).rsqrt(), atol=1e-4, rtol=1e-4)


def test_group_norm_bf16_channels_last_gradients_match_float64() -> None:
    g = torch.Generator().manual_seed(1)
    norm = GroupNorm(4, 32)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
        norm.bias.uniform_(-1, 1, generator=g)
    x = (2 * torch.randn(2, 32, 32, 32, generator=g) + 1).bfloat16().contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    upstream = torch.randn(2, 32, 32, 32, generator=g)
    y = norm(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    got = _grads(y.float(), (x, norm.weight, norm.bias), upstream)
    ref = nn.GroupNorm(4, 32).double()
    ref.load_state_dict(norm.state_dict())
    x64 = x.detach().double().requires_grad_()
    want = _grads(ref(x64), (x64, ref.weight, ref.bias), upstream.double())
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    for a, c in zip(got, want):
        torch.testing.assert_close(a.double(), c, atol=1e-2 * float(c.abs().max()), rtol=0)


def test_group_norm_keeps_the_autocast_dtype_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under autocast on CUDA the norm runs in the autocast dtype (CUDA autocast would widen it to float32).

    No accelerator here: the device test is checked on fake CUDA tensors, and the low-precision path itself
    on CPU tensors by standing in for that decision.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    from mantis.nn import norm as norm_module

    with FakeTensorMode():
        cuda_map = torch.empty(2, 8, 4, 4, device="cuda")
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda device="cuda": device == "cuda")
    monkeypatch.setattr(torch, "get_autocast_dtype", lambda device: torch.bfloat16)
    assert norm_module._autocast_dtype(cuda_map) == torch.bfloat16
    assert norm_module._autocast_dtype(torch.empty(2, 8, 4, 4)) is None  # the CPU keeps its own paths
    monkeypatch.undo()
    meta = torch.empty(2, 8, 4, 4, device="meta")  # no autocast for meta tensors (model summaries use them)
    assert GroupNorm(4, 8).to("meta")(meta).shape == meta.shape

    torch.manual_seed(0)
    gn = GroupNorm(4, 8)
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    want = F.group_norm(x, 4, gn.weight.double(), gn.bias.double(), gn.eps)
    monkeypatch.setattr(norm_module, "_autocast_dtype", lambda t: torch.bfloat16)
    xin = x.float().requires_grad_()
    y = gn(xin)
    assert y.dtype == torch.bfloat16  # not widened
    torch.testing.assert_close(y.double(), want, rtol=0, atol=0.05)  # bf16 input, weights and output
    y.float().square().sum().backward()
    assert xin.grad is not None and gn.weight.grad is not None and gn.weight.grad.dtype == torch.float32


def test_sum_over_space_in_chunks_matches_float64() -> None:
    t = torch.rand(2, 512, 8).bfloat16()
    got = _sum_over_space(t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), t.double().sum(1), atol=0, rtol=4e-3)
    odd = torch.rand(1, 300, 3).bfloat16()  # not a multiple of the chunk: one float32 sum
    torch.testing.assert_close(_sum_over_space(odd).double(), odd.double().sum(1))


@pytest.mark.parametrize(
    ("cin", "cout", "groups", "merge"), [(16, 16, 4, 2), (32, 32, 16, 4), (12, 12, 6, 3), (32, 16, 8, 4), (8, 16, 4, 4)]
)
def test_block_diagonal_groups_equal_the_grouped_convolution(cin: int, cout: int, groups: int, merge: int) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, cin, 9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(cout, cin // groups, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    got = F.conv2d(x, _block_diagonal(w, groups, merge), padding=1, groups=groups // merge)
    want = F.conv2d(x, w, padding=1, groups=groups)
    torch.testing.assert_close(got, want)
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    for a, c in zip(_grads(got, (x, w), upstream), _grads(want, (x, w), upstream)):
        torch.testing.assert_close(a, c)


def test_conv2d_merges_narrow_groups_only_in_channels_last_where_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = Conv2d(32, 32, 3, padding=1, groups=8)
    assert set(conv.state_dict()) == set(nn.Conv2d(32, 32, 3, groups=8).state_dict())
    cl = torch.randn(1, 32, 16, 16).contiguous(memory_format=torch.channels_last)
    assert conv._merge_factor(cl.bfloat16()) == 2  # 4 channels per group -> groups of 8
    # float32: merged only on a CPU without native bf16 (AVX2), where it was measured faster
    monkeypatch.setattr(grouped, "_merge_in_float32", lambda: False)
    assert conv._merge_factor(cl) == 1
    monkeypatch.setattr(grouped, "_merge_in_float32", lambda: True)
    assert conv._merge_factor(cl) == 2
    assert conv._merge_factor(cl.contiguous()) == 1
    assert conv._merge_factor(cl.double()) == 1
    want32 = F.conv2d(cl.double(), conv.weight.double(), conv.bias.double(), padding=1, groups=8)
    torch.testing.assert_close(conv(cl).double(), want32, atol=1e-5, rtol=0)
    assert conv._merge_factor(torch.randn(1, 32, 16, 16).bfloat16()) == 1
    assert Conv2d(32, 32, 3, groups=4)._merge_factor(cl.bfloat16()) == 1  # already 8 per group
    assert Conv2d(32, 16, 3, groups=8)._merge_factor(cl.bfloat16()) == 4  # 4 in, 2 out -> 16 in, 8 out
    assert Conv2d(32, 16, 3, groups=16)._merge_factor(cl.bfloat16()) == 8
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv._merge_factor(cl) == 2
        got = conv(cl)
    want = F.conv2d(cl.double(), conv.weight.double(), conv.bias.double(), padding=1, groups=8)
    torch.testing.assert_close(got.double(), want, atol=3e-2 * float(want.abs().max()), rtol=0)


@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_psp_merged_final_conv_equals_the_concatenated_form(norm: str, dims: int) -> None:
    g = torch.Generator().manual_seed(3)
    psp = PSPPooling(6, 5, depth=3, norm=norm, spatial_dims=dims).double()
    size = (8, 16, 8)[:dims]
    x = torch.randn(2, 6, *size, generator=g, dtype=torch.float64, requires_grad=True)
    got = psp(x)
    pool = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[dims - 1]
    maps = [_broadcast(conv(pool(x, 2**k)), size) for k, conv in enumerate(psp.convs)]
    want = psp.conv_final(torch.cat([x, *maps], dim=1))
    torch.testing.assert_close(got, want)
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    inputs = (x, *psp.parameters())
    for a, c in zip(_grads(got, inputs, upstream), _grads(want, inputs, upstream)):
        torch.testing.assert_close(a, c)


def test_fused_attention_same_in_every_memory_layout() -> None:
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.rand(2, 6, 5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    upstream = torch.randn(2, 6, 5, 7, generator=g, dtype=torch.float64)
    base = tuple(t.clone().requires_grad_() for t in (q, k, v))
    want = attend(*base, 5)
    want_grads = _grads(want, base, upstream)
    layouts = [
        (torch.channels_last,) * 3,
        (torch.channels_last, torch.contiguous_format, torch.channels_last),  # mixed: follows q
    ]
    for formats in layouts:
        inputs = tuple(t.contiguous(memory_format=f).requires_grad_() for t, f in zip((q, k, v), formats))
        got = attend(*inputs, 5)
        assert got.is_contiguous(memory_format=formats[0])
        torch.testing.assert_close(got, want)
        for a, c in zip(_grads(got, inputs, upstream), want_grads):
            torch.testing.assert_close(a, c)
    cl = tuple(t.contiguous(memory_format=torch.channels_last).requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: attend(a, b, c, 3), cl)


@pytest.mark.parametrize(("norm", "groups"), [("group", 5), ("instance", 4)])
def test_psp_global_branch_normed_with_one_value_per_statistic(norm: str, groups: int) -> None:
    # One channel per group (or InstanceNorm) on the 1-cell global branch: the spec convolves and norms the
    # broadcast map, where each channel is constant; the pooled form must give the same, not refuse.
    g = torch.Generator().manual_seed(5)
    psp = PSPPooling(6, 5, depth=3, norm=norm, norm_groups=groups).double()
    for module in psp.modules():
        if isinstance(module, (nn.GroupNorm, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.bias, generator=g)  # a constant channel normalises to its bias
    x = torch.randn(1, 6, 8, 8, generator=g, dtype=torch.float64)
    got = psp(x)
    maps = [conv(_broadcast(F.adaptive_max_pool2d(x, 2**k), (8, 8))) for k, conv in enumerate(psp.convs)]
    torch.testing.assert_close(got, psp.conv_final(torch.cat([x, *maps], dim=1)))
