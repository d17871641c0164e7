"""Every registered model builds, runs forward and backward in every dimension it supports."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import mantis
from mantis.models.common import check_input

BUILT_IN = {
    "mlp",
    "cnn",
    "fractal_resunet",
    "resunet_a_d6",
    "resunet_a_d7",
    "ceecnet_v1",
    "ceecnet_v2",
    "fractal_resnet_cd",
    "fractal_resnet",
}


def test_registry_lists_every_model() -> None:
    assert set(mantis.list_models()) == BUILT_IN
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        mantis.create_model("nope")


def _cases() -> list[Any]:
    cases = []
    for name in mantis.list_models():
        dims = mantis.model_info(name).spatial_dims or (0,)
        cases += [pytest.param(name, d, id=f"{name}-{d}d") for d in dims]
    return cases


@pytest.mark.parametrize(("name", "dims"), _cases())
def test_forward_backward(name: str, dims: int) -> None:
    info = mantis.model_info(name)
    kwargs, size = dict(info.tiny), info.tiny_size
    torch.manual_seed(0)
    if dims == 0:
        model = mantis.create_model(name, **kwargs)
        x = torch.randn(4, kwargs["in_channels"])
        out = model(x)
        assert info.outputs == ("logits",) and out.shape == (4, kwargs["num_classes"])
        out.sum().backward()
        return
    bands = 4
    model = mantis.create_model(name, in_channels=bands, spatial_dims=dims, **kwargs)
    shape = (2, bands, *([size] * dims))
    inputs = tuple(torch.randn(shape) for _ in range(info.inputs))
    out = model(*inputs)
    if not info.multitask:
        assert out.shape == (2, kwargs["num_classes"])
        loss = out.sum()
    else:
        k = kwargs.get("num_classes", 2)
        assert out._fields[:3] == ("segmentation", "boundary", "distance")
        for field in out[:3]:
            assert field.shape == (2, k, *([size] * dims))
        torch.testing.assert_close(out.segmentation.sum(1), torch.ones(2, *([size] * dims)))
        assert out._fields == info.outputs
        if info.colour:
            assert out.color.shape == (2, 3, *([size] * dims))
        loss = sum(t.square().mean() for t in out)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_defaults_follow_the_paper() -> None:
    m = mantis.create_model("fractal_resunet")
    widths = [u.block.conv1.in_channels for u in m.encoder.units]
    assert widths == [32, 64, 128, 256, 512, 1024]
    assert [u.attention.query.conv.groups for u in m.encoder.units] == [4, 8, 16, 32, 64, 128]
    assert [u.attention.depth for u in m.encoder.units] == [5] * 6
    assert isinstance(m.stem.norm, torch.nn.GroupNorm) and m.stem.norm.num_groups == 4
    assert m.bridge.depth == 4
    cd = mantis.create_model("ceecnet_v1")
    assert cd.decoder.combines[0].up.conv.conv.weight.shape[:2] == (256, 1024)  # first decoder step
    assert cd.bridge.conv_final.conv.in_channels == 2048 + 4 * 1024


def test_siamese_encoder_is_shared() -> None:
    m = mantis.create_model("ceecnet_v1", nf=8, depth=2, psp_depth=2)
    calls: list[int] = []
    m.encoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    m.stem.register_forward_hook(lambda mod, inp, out: calls.append(-1))
    m(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))
    assert calls.count(-1) == 2 and calls.count(1) == 2  # one stem and one encoder, each run on both dates
    top = {name.split(".")[0] for name, _ in m.named_parameters()}
    assert top == {"stem", "stem_fusion", "encoder", "skip_fusions", "bridge", "decoder", "head"}


def test_size_error_names_size_and_nearest() -> None:
    m = mantis.create_model("fractal_resunet", nf=8, depth=3, psp_depth=2)
    assert m.size_multiple == 8
    with pytest.raises(ValueError, match=r"input size 12 is not divisible by 8.*nearest valid sizes: 8 or 16"):
        m(torch.randn(1, 3, 12, 16))
    with pytest.raises(ValueError, match="expected 3 input channels"):
        m(torch.randn(1, 5, 16, 16))
    default = mantis.create_model("fractal_resunet")
    assert default.size_multiple == 256
    with pytest.raises(ValueError, match="nearest valid sizes: 256 or 512"):
        check_input(torch.randn(1, 3, 300, 256), 3, 2, default.size_multiple, "FracTALResUNet")


def test_change_detector_rejects_mismatched_dates() -> None:
    m = mantis.create_model("fractal_resnet_cd", nf=8, depth=2, psp_depth=2)
    with pytest.raises(ValueError, match="two dates differ"):
        m(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 32))


def test_any_band_count_and_single_class() -> None:
    m = mantis.create_model("fractal_resunet", in_channels=13, num_classes=1, nf=8, depth=2, psp_depth=2)
    out = m(torch.randn(1, 13, 8, 8))
    assert out.segmentation.shape == (1, 1, 8, 8)
    assert bool(((out.segmentation > 0) & (out.segmentation < 1)).all())


def _rates(unit: torch.nn.Module) -> tuple[int, ...]:
    return tuple(int(block.conv1.dilation[0]) for block in unit.blocks)


@pytest.mark.parametrize(
    ("name", "encoder", "decoder"),
    [
        (
            "resunet_a_d6",
            [(1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15), (1, 3, 5), (1,), (1,)],
            [(1, 3, 5), (1, 3, 15), (1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15, 31)],
        ),
        (
            "resunet_a_d7",
            [(1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15), (1, 3, 5), (1,), (1,), (1,)],
            [(1,), (1, 3, 15), (1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15, 31)],
        ),
    ],
)
def test_resunet_a_topology_follows_the_spec(name: str, encoder: list[tuple], decoder: list[tuple]) -> None:
    # FRACTAL_SPEC §5: the decoder (listed from the widest level down) does not mirror the encoder, and
    # the downsampling is a bare 3x3 stride-2 convolution.
    with torch.device("meta"):
        m = mantis.create_model(name)
    assert [_rates(u) for u in m.encoder_units] == encoder
    assert [_rates(u) for u in m.decoder_units] == decoder
    for down in m.downs:
        assert isinstance(down, torch.nn.Conv2d)
        assert (down.kernel_size, down.stride, down.padding, down.bias) == ((3, 3), (2, 2), (1, 1), None)


def test_resunet_a_stem_and_bridge_are_followed_by_relu() -> None:
    torch.manual_seed(0)
    m = mantis.create_model("resunet_a_d6", nf=8, depth=3, psp_depth=2).eval()
    seen: dict[str, torch.Tensor] = {}
    m.stem.register_forward_hook(lambda mod, i, o: seen.__setitem__("stem", o))
    m.bridge.register_forward_hook(lambda mod, i, o: seen.__setitem__("bridge", o))
    m.encoder_units[0].register_forward_pre_hook(lambda mod, i: seen.__setitem__("unit0", i[0]))
    m.combines[0].register_forward_pre_hook(lambda mod, i: seen.__setitem__("low", i[0]))
    m.head.register_forward_pre_hook(lambda mod, i: seen.__setitem__("head_stem", i[1]))
    with torch.no_grad():
        m(torch.randn(1, 3, 16, 16))
    assert (seen["stem"] < 0).any() and (seen["bridge"] < 0).any()  # so the checks below can fail
    torch.testing.assert_close(seen["unit0"], torch.relu(seen["stem"]))
    torch.testing.assert_close(seen["head_stem"], torch.relu(seen["stem"]))
    torch.testing.assert_close(seen["low"], torch.relu(seen["bridge"]))


def test_models_describe_themselves() -> None:
    pairs = {n for n in mantis.list_models() if mantis.model_info(n).pair}
    assert pairs == {"ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"}
    assert {n for n in mantis.list_models() if mantis.model_info(n).colour} == {"resunet_a_d6", "resunet_a_d7"}
    assert not mantis.model_info("mlp").spatial_dims and not mantis.model_info("cnn").multitask
    with pytest.raises(ValueError, match="unknown model 'nope'; choose one of"):
        mantis.model_info("nope")


def test_a_registered_model_is_described_by_its_decorator() -> None:
    from mantis.models.registry import register_model, unregister_model

    @register_model("test_two_dates", inputs=2, outputs=("logits",), spatial_dims=(2,), tiny={"width": 3})
    def build(width: int = 1) -> torch.nn.Module:
        return torch.nn.Conv2d(width, width, 1)

    try:
        info = mantis.model_info("test_two_dates")
        assert info.pair and not info.multitask and info.spatial_dims == (2,) and dict(info.tiny) == {"width": 3}
        assert isinstance(mantis.create_model("test_two_dates", **info.tiny), torch.nn.Conv2d)
    finally:
        unregister_model("test_two_dates")
    assert "test_two_dates" not in mantis.list_models()


def test_fusion_attention_depth_is_its_own_setting() -> None:
    default = mantis.create_model("fractal_resnet_cd", nf=8, depth=2, psp_depth=2, attention_depth=3)
    assert [u.attention.depth for u in default.encoder.units] == [3, 3]
    assert default.stem_fusion.relatt12.depth == 5 and default.skip_fusions[0].relatt21.depth == 5  # the paper
    set_ = mantis.create_model("fractal_resnet_cd", nf=8, depth=2, psp_depth=2, fusion_attention_depth=2)
    assert set_.stem_fusion.relatt12.depth == 2 and set_.skip_fusions[0].relatt12.depth == 2


@pytest.mark.parametrize("name", ["fractal_resunet", "ceecnet_v2", "resunet_a_d6", "cnn", "mlp"])
def test_a_misspelt_argument_is_named_before_building(name: str) -> None:
    with pytest.raises(ValueError, match=rf"model '{name}' has no argument 'nff'; its arguments: in_channels, "):
        mantis.create_model(name, nff=8)
    assert "unit" not in (mantis.model_info("ceecnet_v1").arguments or ())  # fixed by the constructor
