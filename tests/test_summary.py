"""`mantis summary`: parameters, multiply-adds (against PyTorch's FLOP counter and a hand count), activations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mantis import create_model, list_models
from mantis.cli import main
from mantis.inspect.conv_arithmetic import ConvLayer, Stack
from mantis.inspect.receptive_field import receptive_field
from mantis.inspect.summary import summarize
from mantis.models.registry import count_inputs, model_info
from mantis.nn.pooling import PSPPooling

_CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
_BATCHNORM = {1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d, 3: torch.nn.BatchNorm3d}


def _probe(name: str, spatial_dims: int | None = None) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    info = model_info(name)
    kwargs = dict(info.tiny)
    if spatial_dims is not None:
        kwargs["spatial_dims"] = spatial_dims
    model = create_model(name, **kwargs)
    if info.tiny_size == 0:
        x = torch.zeros(2, int(kwargs.get("in_channels", 16)))
    else:
        dims = spatial_dims or getattr(model, "spatial_dims", 2)
        x = torch.zeros(2, getattr(model, "in_channels", 3), *[info.tiny_size] * dims)
    return model, [x] * count_inputs(model)


@pytest.mark.parametrize("name", list_models())
def test_parameters_and_multiply_adds_of_every_model(name: str) -> None:
    for dims in [None] if not model_info(name).spatial_dims else model_info(name).spatial_dims:
        model, inputs = _probe(name, dims)
        _, _, totals = summarize(model, inputs, measure_receptive_field=False)
        assert totals.params == sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*inputs)
        assert totals.macs == pytest.approx(counter.get_total_flops() / 2, rel=0.01), (name, dims)


def test_hand_count_of_a_small_cnn() -> None:
    model = create_model("cnn", in_channels=3, num_classes=2, widths=(4, 8))
    rows, _, totals = summarize(model, [torch.zeros(1, 3, 16, 16)], depth=1)
    # conv 3->4 at 16x16, conv 4->8 at 8x8 (after a pool), linear 8->2
    expected = 4 * 16 * 16 * 3 * 9 + 8 * 8 * 8 * 4 * 9 + 2 * 8
    assert totals.macs == expected
    assert sum(r.macs for r in rows) == expected  # the top-level rows share it out
    # activations kept: every leaf's output (conv, norm, relu, pool per level, then pool, flatten, linear)
    leaf = 3 * 4 * 16 * 16 + 4 * 8 * 8 + 3 * 8 * 8 * 8 + 8 * 4 * 4 + 8 + 8 + 2
    assert totals.activation_values == leaf


def test_cli_prints_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--model", "cnn", "--size", "16", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "multiply-adds (convolutions and linear layers), batch 2:" in out
    assert "MiB in float32" in out and "MiB in bfloat16" in out


def _plain_stack(layers: list[ConvLayer], dims: int, norm: str = "batch") -> torch.nn.Sequential:
    """Convolutions with the given settings, each followed by a norm and a ReLU (4 channels)."""
    modules: list[torch.nn.Module] = []
    for index, layer in enumerate(layers):
        conv = _CONV[dims](3 if index == 0 else 4, 4, layer.kernel, layer.stride, layer.padding, layer.dilation)
        norm_layer = _BATCHNORM[dims](4) if norm == "batch" else torch.nn.GroupNorm(2, 4)
        modules += [conv, norm_layer, torch.nn.ReLU()]
    return torch.nn.Sequential(*modules)


STACKS = {
    "one 3x3": [ConvLayer(3, 1, 1)],
    "vgg-like": [ConvLayer(3, 1, 1), ConvLayer(3, 1, 1), ConvLayer(2, 2, 0), ConvLayer(3, 1, 1)],
    "strided and dilated": [ConvLayer(5, 2, 2), ConvLayer(3, 1, 2, 2), ConvLayer(3, 2, 1), ConvLayer(3, 1, 2, 2)],
    "unpadded": [ConvLayer(7, 1, 0), ConvLayer(3, 3, 0), ConvLayer(2, 1, 0)],
}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("stack", list(STACKS))
def test_receptive_field_of_plain_stacks_equals_the_analytic_count(stack: str, dims: int) -> None:
    layers = STACKS[stack]
    expected = Stack(layers).rows(64)[-1].receptive_field  # r += (e - 1) j, independent of any gradient
    assert expected is not None
    size = expected + 8  # room around the centre cell's field
    model = _plain_stack(layers, dims)
    field = receptive_field(model, [torch.zeros(1, 3, *[size] * dims)])
    assert field.local == (expected,) * dims
    assert not any(field.clipped)
    assert not field.whole_input and field.describe() == "x".join([str(expected)] * dims) + " cells"


def test_group_norm_makes_the_field_the_whole_input_and_keeps_the_local_one() -> None:
    layers = STACKS["vgg-like"]
    model = _plain_stack(layers, 2, norm="group")
    field = receptive_field(model, [torch.zeros(1, 3, 32, 32)])
    assert field.whole_input and field.reasons == ("group norm statistics",)
    assert field.local == (Stack(layers).rows(32)[-1].receptive_field,) * 2
    assert field.describe() == "whole input (group norm statistics); through its local operations alone 10x10 cells"


def test_a_field_larger_than_the_probe_is_reported_as_at_least_the_probe() -> None:
    model = _plain_stack([ConvLayer(9, 1, 4)] * 3, 1)  # 25 cells
    field = receptive_field(model, [torch.zeros(1, 3, 16)])
    assert field.clipped == (True,) and field.local == (16,)
    assert field.describe().startswith("at least 16 cells (the whole 16 probe")


def _gradient_reaches_every_cell(model: torch.nn.Module, inputs: list[torch.Tensor]) -> bool:
    """An independent measurement: does one centre output value (first field, class 0) change with every
    input cell? The gates at zero are opened first, as an untrained unit would hide its attention."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma1") or name.endswith("gamma2") or name.endswith("gamma"):
                p.fill_(0.5)
    xs = [torch.rand_like(x).requires_grad_(True) for x in inputs]
    out = model.eval()(*xs)
    out = out[0] if isinstance(out, tuple) else out
    cell = out[(0, 0, *[n // 2 for n in out.shape[2:]])] if out.dim() > 2 else out[0, 0]
    grads = torch.autograd.grad(cell, xs)
    return all(bool((g[0] != 0).all()) for g in grads)


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).spatial_dims])
def test_receptive_field_of_every_family_matches_a_gradient_measurement(name: str) -> None:
    for dims in model_info(name).spatial_dims:
        torch.manual_seed(0)
        model, inputs = _probe(name, dims)
        _, _, totals = summarize(model, inputs)
        field = totals.receptive_field
        assert field is not None and field.input_size == tuple(inputs[0].shape[2:])
        assert field.whole_input == _gradient_reaches_every_cell(model, inputs), (name, dims)
        if field.whole_input:
            assert field.reasons, "a whole-input field names what makes it so"
        if "logits" in model_info(name).outputs:  # classifiers pool globally: no spatial output, no local field
            assert field.local is None and "global pooling" in field.reasons
        else:
            assert field.local is not None and all(1 <= n <= s for n, s in zip(field.local, field.input_size))
            if any(isinstance(m, PSPPooling) for m in model.modules()):  # a PSP bridge or head pools globally
                assert "PSP pooling" in field.reasons


def test_cli_prints_the_receptive_field(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["summary", "--model", "cnn", "--model_kwargs", '{"widths": [4]}', "--size", "16"]
    assert main(args) == 0
    assert "receptive field of one centre output cell: whole input (global pooling)" in capsys.readouterr().out
    assert main([*args, "--no-receptive-field"]) == 0
    assert "receptive field" not in capsys.readouterr().out


def test_local_field_of_a_unet_is_the_same_along_every_axis_and_in_1d() -> None:
    # the units are built the same way along every axis, so the 2D field is the 1D one on both axes
    kwargs = dict(model_info("fractal_resunet").tiny)
    fields = [
        receptive_field(create_model("fractal_resunet", **kwargs, spatial_dims=d), [torch.zeros(1, 3, *[64] * d)])
        for d in (1, 2)
    ]
    assert fields[0].local is not None and not any(fields[0].clipped) and 9 < fields[0].local[0] < 64
    assert fields[1].local == fields[0].local * 2


def test_cli_summarises_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mantis.inference.checkpoint import ModelMeta, save_pretrained

    kwargs = {"nf": 8, "depth": 3, "psp_depth": 2}
    model = create_model("fractal_resunet", **kwargs)
    saved = save_pretrained(model, ModelMeta("fractal_resunet", kwargs), tmp_path / "model")
    assert main(["summary", str(saved), "--size", "32", "--no-receptive-field"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('fractal_resunet {"depth": 3, "nf": 8, "psp_depth": 2}; input 1x3x32x32 x 1')
    assert f"total parameters: {sum(p.numel() for p in model.parameters()):,}" in out
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing: no such checkpoint" in err


def test_input_shape_sets_bands_and_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = '{"nf": 8, "depth": 3, "psp_depth": 2}'
    args = ["summary", "--model", "fractal_resunet", "--model_kwargs", tiny, "--no-receptive-field", "--depth", "0"]
    assert main([*args, "--input", "2x32x32x32"]) == 0
    out = capsys.readouterr().out
    assert "input 1x2x32x32x32 x 1" in out and "segmentation 1x2x32x32x32" in out
    assert main([*args, "--input", "1x64", "--spatial-dims", "3"]) == 2
    assert "--input has 1 sizes but --spatial-dims is 3" in capsys.readouterr().err
    assert main(["summary", "--model", "cnn", "--model_kwargs", '{"in_channels": 3}', "--input", "2x64x64"]) == 2
    assert "--model_kwargs sets in_channels=3 but the input asks for 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"), [(["--batch", "0"], "--batch 0"), (["--size", "32", "0"], "--size 32 0")]
)
def test_empty_probe_is_one_line(capsys: pytest.CaptureFixture[str], option: list[str], message: str) -> None:
    tiny = '{"nf": 8, "depth": 3, "psp_depth": 2}'
    args = ["summary", "--model", "fractal_resunet", "--model_kwargs", tiny, "--no-receptive-field", *option]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mantis summary: error: {message}") and err.count("\n") == 1
