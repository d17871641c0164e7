"""sliding_window_predict: tiled equals whole for per-pixel models, TTA inverts exactly, shapes and kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mantis.inference import InputError, d4_transforms, sliding_window_predict
from mantis.inference.tiling import blend_weights, reflect_indices, window_starts

from .conftest import Multitask, PixelChange, PixelSeg

BLENDS = ["mean", "gaussian", "linear"]


@pytest.mark.parametrize("blend", BLENDS)
def test_tiled_equals_whole_2d_every_blend(blend: str, seg_model: PixelSeg) -> None:
    x = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        whole = seg_model(x)
    out = sliding_window_predict(seg_model, x, window=16, stride=6, blend=blend, batch_size=5)
    assert isinstance(out, Multitask)
    for got, want in zip(out, whole):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("spatial_dims, size, window", [(1, (101,), 24), (3, (7, 19, 12), (4, 8, 8))])
def test_tiled_equals_whole_1d_3d(blend: str, spatial_dims: int, size: tuple[int, ...], window: object) -> None:
    torch.manual_seed(1)
    model = PixelSeg(2, 4, spatial_dims).eval()
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        whole = model(x).segmentation
    out = sliding_window_predict(model, x, window, overlap=0.5, blend=blend, outputs=["segmentation"], tta=True)
    assert list(out) == ["segmentation"]
    torch.testing.assert_close(out["segmentation"], whole, rtol=0, atol=2e-6)


def test_change_pair_tensor_output_and_window_larger_than_image(change_model: PixelChange) -> None:
    x1, x2 = torch.rand(1, 3, 11, 9), torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        whole = change_model(x1, x2)
    out = sliding_window_predict(change_model, (x1, x2), window=32, blend="gaussian")
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, whole, rtol=0, atol=2e-6)


def test_dict_outputs_and_uint8_input() -> None:
    class DictModel(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"segmentation": x[:, :2] * 2, "extra": x[:, 2:] + 1}

    x = torch.randint(0, 255, (1, 3, 20, 20), dtype=torch.uint8)
    out = sliding_window_predict(DictModel(), x, window=8, stride=3)
    assert isinstance(out, dict) and set(out) == {"segmentation", "extra"}
    torch.testing.assert_close(out["extra"], x[:, 2:].float() + 1)


def test_d4_transforms_are_the_group_and_invert() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    ts = d4_transforms(2)
    assert len(ts) == 8
    images = {tuple(t.apply(x[:, :, :4, :4]).flatten().tolist()) for t in ts}
    assert len(images) == 8  # eight distinct images of a square: all of D4
    for t in ts:
        torch.testing.assert_close(t.invert(t.apply(x)), x, rtol=0, atol=0)
    assert len(d4_transforms(1)) == 2 and len(d4_transforms(3)) == 8


def test_tta_with_non_invariant_pixel_model_is_exact(seg_model: PixelSeg) -> None:
    # A per-pixel model commutes with flips and rotations: a correctly inverted TTA changes nothing,
    # while applying a transform instead of its inverse would misplace the pixels.
    x = torch.rand(1, 3, 30, 41)
    with torch.no_grad():
        whole = seg_model(x)
    for window in (30, (16, 24)):
        out = sliding_window_predict(seg_model, x, window=window, stride=8, tta=True)
        for got, want in zip(out, whole):
            torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


class RowIndex(nn.Module):
    """Output depends on position only: each pixel's row index within its window."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(x.shape[-2], dtype=torch.float32).view(1, 1, -1, 1)
        return rows.expand(x.shape[0], 1, x.shape[-2], x.shape[-1]).clone()


@pytest.mark.parametrize("h, w", [(12, 12), (8, 14)])
def test_tta_averages_position_dependent_model(h: int, w: int) -> None:
    # Over D4 each pixel sees the row index, its mirror, the column index and its mirror, twice each.
    x = torch.zeros(1, 1, h, w)
    out = sliding_window_predict(RowIndex(), x, window=(h, w), stride=(h, w), pad=0, tta=True)
    torch.testing.assert_close(out, torch.full_like(out, (h - 1 + w - 1) / 4), rtol=0, atol=1e-6)
    plain = sliding_window_predict(RowIndex(), x, window=(h, w), stride=(h, w), pad=0)
    torch.testing.assert_close(plain[0, 0, :, 0], torch.arange(h, dtype=torch.float32))


def test_mean_blending_averages_every_covering_window() -> None:
    # Each window outputs how many windows ran before it: with mean blending a pixel's value is the mean
    # of the indices of the windows covering it.
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return torch.full((x.shape[0], 1, *x.shape[2:]), float(self.calls - 1))

    out = sliding_window_predict(Counter(), torch.zeros(1, 1, 12), window=4, stride=2, pad=0, batch_size=1)
    starts = window_starts(12, 4, 2)
    want = [np.mean([i for i, s in enumerate(starts) if s <= p < s + 4]) for p in range(12)]
    torch.testing.assert_close(out[0, 0], torch.tensor(want, dtype=torch.float32))


def test_blend_weights_shapes_and_positivity() -> None:
    for mode in BLENDS:
        w = blend_weights((16, 10), (8, 10), mode)
        assert w.shape == (16, 10) and float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0)
    lin = blend_weights((8,), (4,), "linear")
    assert lin.tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25])
    assert torch.equal(blend_weights((5,), (2,), "mean"), torch.ones(5))
    with pytest.raises(ValueError, match="unknown blend"):
        blend_weights((4,), (2,), "median")


def test_reflect_indices_match_numpy_and_repeat() -> None:
    a = np.arange(5)
    np.testing.assert_array_equal(a[reflect_indices(-3, 8, 5)], np.pad(a, 3, mode="reflect"))
    assert reflect_indices(-4, 6, 3).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert reflect_indices(-2, 2, 1).tolist() == [0, 0, 0, 0]


def test_window_starts_cover_and_end_flush() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(3, 4, 2) == [0]


def test_bad_arguments() -> None:
    model = PixelSeg(3, 2).eval()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="stride or overlap"):
        sliding_window_predict(model, x, 4, stride=2, overlap=0.5)
    with pytest.raises(ValueError, match="stride must be"):
        sliding_window_predict(model, x, 4, stride=5)
    with pytest.raises(InputError, match="no output 'color'"):
        sliding_window_predict(model, x, 4, outputs=["color"])
    with pytest.raises(ValueError, match="share one shape"):
        sliding_window_predict(PixelChange(), (x, torch.rand(1, 3, 8, 9)), 4)
    with pytest.raises(ValueError, match="input's size"):
        sliding_window_predict(nn.Conv2d(3, 2, 3).eval(), x, 4)


def test_bf16_precision_runs_close_to_fp32(seg_model: PixelSeg) -> None:
    x = torch.rand(1, 3, 20, 20)
    out = sliding_window_predict(seg_model, x, 8, precision="bf16")  # float32 with a warning if unsupported
    assert out.segmentation.dtype == torch.float32
    with torch.no_grad():
        want = seg_model(x).segmentation
    torch.testing.assert_close(out.segmentation, want, rtol=0, atol=3e-2)


def test_cpu_windows_run_channels_last_with_the_same_values() -> None:
    from mantis.inference.sliding import WindowForward

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).eval()
    reference = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).eval()
    reference.load_state_dict(net.state_dict())
    seen: list[torch.Tensor] = []
    net[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    windows = torch.rand(2, 3, 16, 16)
    got = WindowForward(net, spatial_dims=2, tta=True)((windows,))
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
    with torch.no_grad():
        want = torch.stack([t.invert(reference(t.apply(windows))) for t in d4_transforms(2)]).mean(0)
    torch.testing.assert_close(next(iter(got.values())), want, atol=1e-5, rtol=1e-5)
