"""`mantis conv` against PyTorch: output sizes, 'same' padding, transposed inverses, receptive fields."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mantis.cli import main
from mantis.inspect.conv_arithmetic import ConvError, ConvLayer, Stack, parse_layer, same_padding
from mantis.inspect.conv_cli import contributions

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
SWEEP = list(itertools.product([1, 2, 5, 8, 13], [1, 2, 3, 5], [0, 1, 3], [1, 2, 3], [1, 2]))  # n, k, p, s, d


def _torch_size(dims: int, n: int, layer: ConvLayer) -> int | None:
    """PyTorch's own output size, or None where it refuses the combination."""
    x = torch.zeros(1, 1, *[n] * dims)
    w = torch.zeros(1, 1, *[layer.kernel] * dims)
    try:
        if layer.transposed:
            y = TRANSPOSED[dims](x, w, None, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation)
        else:
            y = CONV[dims](x, w, None, layer.stride, layer.padding, layer.dilation)
    except RuntimeError:
        return None
    assert len(set(y.shape[2:])) == 1
    return int(y.shape[2])


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_output_sizes_agree_with_pytorch_on_a_sweep(dims: int) -> None:
    sweep = SWEEP if dims < 3 else SWEEP[::7]  # 3D: a thinner sweep, same kinds of cases
    refused = 0
    for n, k, p, s, d in sweep:
        layer = ConvLayer(k, s, p, d)
        expected = _torch_size(dims, n, layer)
        if expected is None or expected < 1:
            refused += 1
            with pytest.raises(ConvError, match="no output cell fits"):
                layer.output_size(n)
            continue
        assert layer.output_size(n) == expected, (n, k, p, s, d)
        inverse = layer.inverse(n)  # the transposed convolution that restores n cells exactly
        assert _torch_size(dims, expected, inverse) == n, (n, k, p, s, d)
        assert inverse.output_size(expected) == n
    assert refused > 0  # the sweep includes combinations PyTorch refuses


@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 1), (3, 2), (4, 1), (5, 3), (2, 2)])
def test_same_padding_keeps_the_size_as_pytorch_does(k: int, d: int) -> None:
    x = torch.randn(1, 1, 11)
    w = torch.randn(1, 1, k)
    before, after = same_padding(k, d)
    ours = F.conv1d(F.pad(x, (before, after)), w, dilation=d)
    torch.testing.assert_close(ours, F.conv1d(x, w, padding="same", dilation=d))
    if before == after:
        assert parse_layer(f"k{k}d{d}psame").padding == before
    else:
        with pytest.raises(ConvError, match="even number of cells"):
            parse_layer(f"k{k}d{d}psame")


def test_receptive_field_and_centre_equal_a_gradient_measurement() -> None:
    rng = np.random.default_rng(0)
    for _ in range(25):
        layers = [
            ConvLayer(
                int(rng.integers(1, 6)), int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3))
            )
            for _ in range(int(rng.integers(1, 5)))
        ]
        rows = Stack(layers).rows(200)
        out = rows[-1].size_out
        cell = out // 2
        paths = contributions([200], layers, [cell])
        hit = np.nonzero(paths)[0]
        assert hit.size and hit[0] > 0 and hit[-1] < 199  # well inside: no border effect
        assert hit[-1] - hit[0] + 1 == rows[-1].receptive_field, layers
        assert (hit[0] + hit[-1]) / 2 == rows[-1].start + cell * rows[-1].jump, layers


def test_layer_syntax_and_mistakes_in_words() -> None:
    assert parse_layer("k3s2p1") == ConvLayer(3, 2, 1, 1)
    assert parse_layer("tk4s2p1o1") == ConvLayer(4, 2, 1, 1, transposed=True, output_padding=1)
    assert parse_layer("k3d2psame").padding == 2
    with pytest.raises(ConvError, match="'same' padding keeps the size only with stride 1"):
        parse_layer("k3s2psame")
    with pytest.raises(ConvError, match="'k3s0': stride 0: the window must move"):
        parse_layer("k3s0")
    with pytest.raises(ConvError, match="write a layer as k3s1p1"):
        parse_layer("3x3")
    with pytest.raises(ConvError, match="output_padding 2 must be smaller than the stride"):
        parse_layer("tk3s2o2")


def test_cli_prints_the_table_and_draws_the_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conv", "32x32", "k3p1", "k2s2", "k3p1", "--png", str(tmp_path / "rf.png"), "--cell", "7,7"]) == 0
    out = capsys.readouterr().out
    assert "3: k3 s1 p1 d1  16   16     0                8     2           0.5" in out
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / "rf.png").convert("L"))
    assert image.shape[0] > 300 and image.std() > 10  # drawn, not blank
    assert main(["conv", "5", "k7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mantis conv: error: layer 1 (k7 s1 p0 d1), input of 5 cells: the kernel spans 7 cells (kernel 7, "
        "dilation 1) but the input has only 5 (5 + 2 x padding 0): no output cell fits"
    ]


def test_cell_without_png_is_refused_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conv", "32x32", "k3", "--cell", "7,7"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.strip() == "mantis conv: error: --cell '7,7': names the output cell of --png; give --png FILE too"
    )
    assert captured.out == ""


def test_cells_lost_are_real_input_cells_no_window_reaches() -> None:
    for n, k, p, s, d in SWEEP:
        layer = ConvLayer(k, s, p, d)
        try:
            out = layer.output_size(n)
        except ConvError:
            continue
        x = torch.ones(1, 1, n, requires_grad=True)
        F.conv1d(x, torch.ones(1, 1, k), None, s, p, d).sum().backward()
        assert x.grad is not None
        assert layer.cells_lost(n) == int((x.grad[0, 0] == 0).sum()), (n, k, p, s, d, out)


def test_a_failed_drawing_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from matplotlib.figure import Figure

    def half_written(self: Figure, path: Path, **_: object) -> None:
        Path(path).write_bytes(b"\x89PNG")  # a disk that fills up midway
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_written)
    assert main(["conv", "32x32", "k3p1", "--png", str(tmp_path / "rf.png")]) == 2
    assert capsys.readouterr().err.strip() == "mantis conv: error: No space left on device"
    assert list(tmp_path.iterdir()) == []  # neither the picture nor a temporary file
