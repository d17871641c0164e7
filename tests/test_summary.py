"""`mantis summary`: parameters, multiply-adds (against PyTorch's FLOP counter and a hand count), activations."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mantis import create_model, list_models
from mantis.cli import main
from mantis.inspect.summary import summarize
from mantis.models.registry import count_inputs, model_info


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
        _, _, totals = summarize(model, inputs)
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
