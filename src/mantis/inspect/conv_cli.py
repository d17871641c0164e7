"""``mantis conv``: convolution arithmetic on the command line (see :mod:`mantis.inspect.conv_arithmetic`).

mantis conv 256 k3s2p1                      # one layer: output size, lost cells, inverse, same padding
mantis conv 256x256 k7s2p3 k3s2p1 k3p1 k3p1  # a stack: sizes, receptive field and jump per layer
mantis conv 64 k3d2psame tk4s2p1            # 'same' padding; a transposed layer
mantis conv 32x32 k3p1 k2s2 k3p1 --png rf.png --cell 7,7   # which input cells feed output cell (7, 7)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mantis.commands import command_parser
from mantis.inspect.conv_arithmetic import ConvError, ConvLayer, Stack, StackRow, parse_layer, same_padding

PROG = "mantis conv"


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        __doc__.split("\n\n")[0] if __doc__ else None,
        "Layers: k kernel, s stride, p padding ('psame' keeps the size), d dilation; a leading t makes "
        "the layer a transposed convolution, o its output padding. Defaults: k3 s1 p0 d1.",
    )
    parser.add_argument("size", help="input size per axis: 256, 256x256 or 32x64x64")
    parser.add_argument("layers", nargs="+", help="layers in order, e.g. k3s2p1 k3d2p2 tk4s2p1")
    parser.add_argument("--png", type=Path, help="draw which input cells feed one output cell (1D and 2D inputs)")
    parser.add_argument("--cell", help="the output cell of --png, e.g. 7 or 7,7 (default: the centre)")
    return parser


def parse_size(text: str) -> list[int]:
    """``"256"`` / ``"32x64"`` / ``"8x32x32"`` as a list of positive sizes (1 to 3 axes)."""
    parts = text.lower().replace("×", "x").split("x")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConvError(f"size {text!r}: give 1 to 3 positive whole numbers, e.g. 256 or 256x256")
    return [int(p) for p in parts]


def report(size: list[int], layers: list[ConvLayer]) -> str:
    """The text ``mantis conv`` prints: per axis, one row per layer; then what one layer alone implies."""
    stack = Stack(layers)
    lines = []
    for axis, n in enumerate(size):
        rows = stack.rows(n)
        title = f"axis {axis} ({n} cells)" if len(size) > 1 else f"input of {n} cells"
        lines += [title, _table(rows)]
    lines += _notes(size, layers)
    return "\n".join(lines)


def _table(rows: list[StackRow]) -> str:
    header = ("layer", "in", "out", "lost", "receptive field", "jump", "first centre")
    body = [
        (
            f"{i}: {r.layer.describe()}",
            str(r.size_in),
            str(r.size_out),
            str(r.layer.cells_lost(r.size_in)),
            "-" if r.receptive_field is None else str(r.receptive_field),
            "-" if r.jump is None else str(r.jump),
            "-" if r.start is None else f"{r.start:g}",
        )
        for i, r in enumerate(rows, 1)
    ]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    return "\n".join("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header, *body])


def _notes(size: list[int], layers: list[ConvLayer]) -> list[str]:
    notes = []
    rows = Stack(layers).rows(size[0])
    for index, row in enumerate(rows, 1):
        layer = row.layer
        if layer.transposed:
            continue
        before, after = same_padding(layer.kernel, layer.dilation)
        keep = f"p{before}" if before == after else f"{before} before and {after} after (uneven: pad by hand)"
        notes.append(
            f"layer {index} ({layer.describe()}): padding that keeps the size at stride 1: {keep}; "
            f"transposed inverse back to its {row.size_in} cells: {layer.inverse(row.size_in).describe()}"
        )
    lost = [str(i) for i, r in enumerate(rows, 1) if r.layer.cells_lost(r.size_in)]
    if lost:
        notes.append(
            f"layer(s) {', '.join(lost)} leave input cells that no kernel tap reaches (column 'lost': the stride "
            "does not divide what remains, or skips cells): pad the input, or change the size or the stride"
        )
    return ["", *notes] if notes else []


def contributions(size: list[int], layers: list[ConvLayer], cell: Sequence[int]) -> np.ndarray:
    """How many paths lead from each input cell to output ``cell`` through the stack with all weights 1: the
    gradient of that output cell, measured with torch (an independent check of the receptive field)."""
    import torch
    import torch.nn.functional as F

    dims = len(size)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    transposed = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[dims]
    x = torch.ones(1, 1, *size, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        weight = torch.ones(1, 1, *[layer.kernel] * dims, dtype=torch.float64)
        if layer.transposed:
            y = transposed(y, weight, None, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation)
        else:
            y = conv(y, weight, None, layer.stride, layer.padding, layer.dilation)
    y[(0, 0, *cell)].backward()
    assert x.grad is not None
    return x.grad[0, 0].numpy()


def draw(path: Path, size: list[int], layers: list[ConvLayer], cell: Sequence[int]) -> None:
    """PNG of :func:`contributions` (1D: bars; 2D: a grid), the receptive field outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mantis.plots import save_figure

    paths = contributions(size, layers, cell)
    stack = " -> ".join(layer.describe() for layer in layers)
    fig, ax = plt.subplots(figsize=(7, 6) if len(size) == 2 else (8, 3))
    if len(size) == 1:
        ax.bar(np.arange(size[0]), paths, width=1.0, color="tab:blue")
        ax.set_xlabel("input cell")
        ax.set_ylabel("paths to the output cell")
    else:
        shown = np.ma.masked_equal(paths, 0)
        image = ax.imshow(shown, cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="paths to the output cell (all weights 1)")
        rows, cols = np.nonzero(paths)
        if rows.size:
            ax.add_patch(
                plt.Rectangle(
                    (cols.min() - 0.5, rows.min() - 0.5),
                    cols.max() - cols.min() + 1,
                    rows.max() - rows.min() + 1,
                    fill=False,
                    edgecolor="red",
                    linewidth=1.5,
                )
            )
        ax.set_xlabel("input column")
        ax.set_ylabel("input row")
    where = ", ".join(map(str, cell))
    ax.set_title(f"input cells feeding output cell ({where})\n{stack}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)  # atomic, and no temporary file left if writing fails


def _cell(text: str | None, out_size: list[int]) -> list[int]:
    if text is None:
        return [n // 2 for n in out_size]
    try:
        cell = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConvError(f"--cell {text!r}: give whole numbers separated by commas") from None
    if len(cell) != len(out_size) or not all(0 <= c < n for c, n in zip(cell, out_size)):
        raise ConvError(f"--cell {text!r}: the output is {'x'.join(map(str, out_size))} cells")
    return cell


def run(args: argparse.Namespace) -> int:
    """Print the report; draw the PNG if asked."""
    if args.cell is not None and args.png is None:
        raise ConvError(f"--cell {args.cell!r}: names the output cell of --png; give --png FILE too")
    size = parse_size(args.size)
    layers = [parse_layer(text) for text in args.layers]
    print(report(size, layers))
    if args.png is not None:
        if len(size) > 2:
            raise ConvError("--png draws 1D and 2D inputs")
        out_size = [Stack(layers).rows(n)[-1].size_out for n in size]
        cell = _cell(args.cell, out_size)
        draw(args.png, size, layers, cell)
        print(f"wrote {args.png}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis conv``."""
    from mantis.commands import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: run(_parser().parse_args(args)))
