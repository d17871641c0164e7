"""Building blocks: every one in 1D, 2D and 3D from one code path, with the behaviour users rely on."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mantis.nn.activations import SigmoidCrisp, create_activation, list_activations
from mantis.nn.attention import CATFusion, FracTALAttention, Fusion
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NORMS, norm_layer
from mantis.nn.functional import fractal_tanimoto
from mantis.nn.heads import ConditionedMultitaskHead, ResUNetAHead
from mantis.nn.pooling import PSPPooling
from mantis.nn.resample import Combine, DownSample, FusionCombine, UpSample
from mantis.nn.units import AtrousUnit, CEECUnitV1, CEECUnitV2, FracTALResNetUnit, ResNetV2Block

DIMS = [1, 2, 3]


def _x(dims: int, c: int = 8, size: int = 8, b: int = 2) -> torch.Tensor:
    return torch.randn(b, c, *([size] * dims), generator=torch.Generator().manual_seed(dims))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("kernel", "dilation"), [(1, 1), (3, 1), (3, 2), (5, 3)])
def test_conv_normed_same_padding(dims: int, norm: str, kernel: int, dilation: int) -> None:
    m = ConvNormed(8, 4, kernel, dilation=dilation, norm=norm, spatial_dims=dims)
    assert m.conv.bias is None
    assert m(_x(dims)).shape == (2, 4, *([8] * dims))


def test_conv_normed_rejects_even_kernel() -> None:
    with pytest.raises(ValueError, match="odd kernel"):
        ConvNormed(4, 4, 2)


def test_norm_layer_kinds() -> None:
    assert isinstance(norm_layer("group", 32, 2, 4), nn.GroupNorm)
    assert norm_layer("group", 2, 2, 4).num_groups == 2  # narrow layers use the largest divisor
    assert isinstance(norm_layer("batch", 8, 3), nn.BatchNorm3d)
    assert isinstance(norm_layer("none", 8, 1), nn.Identity)
    with pytest.raises(ValueError, match="unknown norm"):
        norm_layer("weird", 8, 2)
    with pytest.raises(ValueError, match="spatial_dims"):
        norm_layer("batch", 8, 4)


def test_activation_registry() -> None:
    assert {
        "relu",
        "leaky_relu",
        "elu",
        "sigmoid",
        "tanh",
        "softmax",
        "swish",
        "maxout",
        "sigmoid_crisp",
    } <= set(list_activations())
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(create_activation("swish")(x), x * torch.sigmoid(x))
    torch.testing.assert_close(
        create_activation("maxout")(x),
        torch.maximum(x[:, 0::2], x[:, 1::2]),
    )
    with pytest.raises(ValueError, match="unknown activation"):
        create_activation("nope")


def test_sigmoid_crisp_formula() -> None:
    m = SigmoidCrisp()
    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(m(x), torch.sigmoid(x / (0.01 + torch.sigmoid(torch.tensor(1.0)))))


def test_resnet_v2_block_order() -> None:
    # Pre-activation: norm -> ReLU -> conv(no bias) -> norm -> ReLU -> conv(bias).
    m = ResNetV2Block(8, norm="batch").eval()
    x = _x(2)
    want = m.conv2(torch.relu(m.norm2(m.conv1(torch.relu(m.norm1(x))))))
    torch.testing.assert_close(m(x), want)
    assert m.conv1.bias is None and m.conv2.bias is not None


def test_atrous_unit_sums_branches() -> None:
    m = AtrousUnit(8, (1, 3, 5), norm="group")
    x = _x(2, size=16)
    want = x + sum(b(x) for b in m.blocks)
    torch.testing.assert_close(m(x), want)


def direct_attention(
    m: FracTALAttention, q_src: torch.Tensor, k_src: torch.Tensor, v_src: torch.Tensor
) -> torch.Tensor:
    """The spec, transcribed directly (complements materialised)."""
    q, k, v = (torch.sigmoid(f(s)) for f, s in ((m.query, q_src), (m.key, k_src), (m.value, v_src)))
    spatial = fractal_tanimoto(q, k, m.depth, 1)
    channel = fractal_tanimoto(q, k, m.depth, tuple(range(2, q.dim())))
    return m.norm(0.5 * (channel * v + spatial * v))


@pytest.mark.parametrize("dims", DIMS)
def test_attention_equals_direct_form(dims: int) -> None:
    m = FracTALAttention(8, 8, nheads=2, spatial_dims=dims).double()
    a, b, c = (_x(dims).double() + i for i in range(3))
    torch.testing.assert_close(m(a, b, c), direct_attention(m, a, b, c))
    torch.testing.assert_close(m(a), direct_attention(m, a, a, a))


def test_attention_grouped_projections() -> None:
    m = FracTALAttention(16, 16, nheads=4)
    assert m.query.conv.groups == 4 and m.query.conv.weight.shape == (16, 4, 3, 3)


def test_attention_gradcheck() -> None:
    m = FracTALAttention(4, 4, nheads=2, norm="group", norm_groups=2).double()
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


@pytest.mark.parametrize("dims", DIMS)
def test_units_start_attention_free(dims: int) -> None:
    """gamma starts at 0, so each unit equals its counterpart without attention."""
    x = _x(dims, c=16)
    unit = FracTALResNetUnit(16, nheads=4, groups=4, spatial_dims=dims)
    torch.testing.assert_close(unit(x), x + unit.block(x))
    fusion = Fusion(16, nheads=4, spatial_dims=dims)
    y = _x(dims, c=16) * 2
    torch.testing.assert_close(fusion(x, y), torch.relu(fusion.fuse(torch.cat([x, y], 1))))
    cat = CATFusion(16, 8, nheads=1, spatial_dims=dims)
    torch.testing.assert_close(cat(x, y), torch.relu(cat.fuse(torch.cat([x, y], 1))))
    for cls in (CEECUnitV1, CEECUnitV2):
        ceec = cls(16, nheads=2, spatial_dims=dims)
        out = ceec(x)
        ceec.gamma1.data.fill_(0.5)
        assert not torch.allclose(ceec(x), out)  # the gate does switch the attention on


@pytest.mark.parametrize("dims", DIMS)
def test_units_shapes_all_dims(dims: int) -> None:
    x = _x(dims, c=16)
    for m in (
        FracTALResNetUnit(16, nheads=4, spatial_dims=dims),
        CEECUnitV1(16, nheads=2, spatial_dims=dims),
        CEECUnitV2(16, nheads=2, spatial_dims=dims),
        AtrousUnit(16, (1, 3), spatial_dims=dims, norm="batch"),
    ):
        assert m(x).shape == x.shape


@pytest.mark.parametrize("dims", DIMS)
def test_psp_pooling_branches(dims: int) -> None:
    m = PSPPooling(8, 6, depth=3, spatial_dims=dims, norm="none")
    x = _x(dims, size=8)
    # Direct form: broadcast each pooled grid back to full size, then conv.
    outs = [x]
    for k, conv in enumerate(m.convs):
        cells = 2**k
        pooled = nn.functional.adaptive_max_pool3d(
            x.reshape(2, 8, *([8] * dims), *([1] * (3 - dims))), (cells,) * dims + (1,) * (3 - dims)
        )
        pooled = pooled.reshape(2, 8, *([cells] * dims))
        full = pooled
        for axis in range(2, 2 + dims):
            full = full.repeat_interleave(8 // cells, dim=axis)
        outs.append(conv(full))
    torch.testing.assert_close(m(x), m.conv_final(torch.cat(outs, 1)))


def test_psp_batchnorm_sees_full_map() -> None:
    m = PSPPooling(8, 8, depth=2, norm="batch")
    assert m(torch.randn(1, 8, 4, 4)).shape == (1, 8, 4, 4)  # batch 1 trains without a 1x1 BatchNorm error


def test_psp_size_error_names_size() -> None:
    with pytest.raises(ValueError, match=r"divisible by 8, got \(12, 16\)"):
        PSPPooling(4, 4, depth=4)(torch.randn(1, 4, 12, 16))


@pytest.mark.parametrize("dims", DIMS)
def test_resampling_shapes(dims: int) -> None:
    x = _x(dims, c=8, size=8)
    assert DownSample(8, spatial_dims=dims)(x).shape == (2, 16, *([4] * dims))
    assert UpSample(8, 4, spatial_dims=dims)(x).shape == (2, 4, *([16] * dims))
    low, skip = _x(dims, c=16, size=4), _x(dims, c=8, size=8)
    combine = Combine(16, 8, spatial_dims=dims)
    assert combine.up.conv.conv.out_channels == 4  # the upsampled branch has skip/2 channels
    assert combine(low, skip).shape == skip.shape
    assert FusionCombine(16, 8, nheads=2, spatial_dims=dims)(low, skip).shape == skip.shape


@pytest.mark.parametrize("dims", DIMS)
def test_heads(dims: int) -> None:
    dec, stem = _x(dims, c=8), _x(dims, c=8)
    out = ConditionedMultitaskHead(8, 3, psp_depth=2, spatial_dims=dims)(dec, stem)
    assert out._fields == ("segmentation", "boundary", "distance")
    for t in out:
        assert t.shape == (2, 3, *([8] * dims))
    torch.testing.assert_close(out.segmentation.sum(1), torch.ones(2, *([8] * dims)))
    single = ConditionedMultitaskHead(8, 1, psp_depth=2, spatial_dims=dims)(dec, stem)
    assert single.segmentation.shape[1] == 1 and bool(((single.segmentation > 0) & (single.segmentation < 1)).all())
    ra = ResUNetAHead(8, 2, psp_depth=2, spatial_dims=dims)(dec, stem)
    assert ra.color.shape == (2, 3, *([8] * dims))


def test_fused_attention_equals_autograd_form_values_and_gradients() -> None:
    from mantis.nn.attention import attend, fractal_similarity_maps

    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.rand(2, 6, 5, 7, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: attend(a, b, c, 5), (q, k, v))
    fused = attend(q, k, v, 7)
    sp, ch = fractal_similarity_maps(q, k, 7)
    plain = 0.5 * v * (sp + ch)
    torch.testing.assert_close(fused, plain)
    w = torch.randn_like(fused)
    grads_fused = torch.autograd.grad((fused * w).sum(), (q, k, v))
    grads_plain = torch.autograd.grad((plain * w).sum(), (q, k, v))
    for a, b in zip(grads_fused, grads_plain):
        torch.testing.assert_close(a, b)


def test_fused_attention_bf16_close_to_fp32() -> None:
    from mantis.nn.attention import attend

    q, k, v = (torch.rand(2, 16, 32, 32) for _ in range(3))
    want = attend(q, k, v, 5)
    got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), 5)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("dims", DIMS)
def test_attention_cannot_change_a_new_unit(dims: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every gate at 0 the attention maps, whatever they are, leave each unit's output unchanged."""
    x = _x(dims, c=16)
    units = [
        FracTALResNetUnit(16, nheads=4, spatial_dims=dims),
        CEECUnitV1(16, nheads=2, spatial_dims=dims),
        CEECUnitV2(16, nheads=2, spatial_dims=dims),
        Fusion(16, nheads=2, spatial_dims=dims),
    ]
    before = [u(x) if not isinstance(u, Fusion) else u(x, 2 * x) for u in units]
    monkeypatch.setattr(FracTALAttention, "forward", lambda self, q, k=None, v=None: torch.randn_like(q) * 100)
    after = [u(x) if not isinstance(u, Fusion) else u(x, 2 * x) for u in units]
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)


def test_attention_depth_is_one_name_and_the_former_depth_still_works() -> None:
    assert FracTALAttention(8, attention_depth=3).depth == 3
    with pytest.warns(DeprecationWarning, match="use attention_depth="):
        old = FracTALAttention(8, depth=2)
    assert old.depth == 2
    with pytest.warns(DeprecationWarning):
        fusion = Fusion(8, depth=4)
    assert fusion.relatt12.depth == fusion.relatt21.depth == 4
    assert CATFusion(8, 4, attention_depth=1).relatt12.depth == 1


@pytest.mark.parametrize("activation", list_activations())
def test_every_activation_works_in_every_model_that_takes_one(activation: str) -> None:
    """maxout halves the channels it gets: the layer before it is made twice as wide, the output keeps its size."""
    from mantis import create_model

    mlp = create_model("mlp", in_channels=5, num_classes=3, hidden=(6, 4), activation=activation)
    assert mlp(torch.randn(2, 5)).shape == (2, 3)
    for dims in (1, 2, 3):
        cnn = create_model("cnn", in_channels=2, num_classes=4, spatial_dims=dims, widths=(4, 8), activation=activation)
        assert cnn(torch.randn(2, 2, *[8] * dims)).shape == (2, 4)
    if activation == "maxout":
        first, act = mlp[0], mlp[1]
        assert first.out_features == 12  # 2 x 6 values, the larger of each pair kept
        x = torch.randn(2, 5)
        torch.testing.assert_close(act(first(x)), first(x).reshape(2, 6, 2).amax(-1))
