"""Convolution arithmetic: output sizes, "same" padding, transposed inverses, receptive field and jump.

For one axis of size ``n``, kernel ``k``, padding ``p`` (each side), stride ``s`` and dilation ``d``:

- the dilated kernel spans ``e = d (k - 1) + 1`` cells;
- a convolution gives ``floor((n + 2p - e) / s) + 1`` cells (PyTorch's formula), if ``n + 2p >= e``;
- "same" size (stride 1) needs ``2p = e - 1`` in all: ``p = (e - 1) / 2`` each side when ``e`` is odd,
  else one more cell on one side than on the other;
- the transposed convolution with the same ``k, p, s, d`` maps ``m`` cells back to
  ``(m - 1) s - 2p + e + output_padding`` cells, and ``output_padding = (n + 2p - e) mod s`` recovers ``n``;
- through a stack of layers the receptive field ``r`` and the jump ``j`` (distance in input cells between
  neighbouring output cells) grow as ``r += (e - 1) j`` then ``j *= s``, from ``r = j = 1``.

Invalid combinations raise :class:`ConvError` with the reason in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["ConvError", "ConvLayer", "Stack", "parse_layer", "same_padding"]


class ConvError(ValueError):
    """A combination of size and layer settings that does not make a convolution, explained in words."""


@dataclass(frozen=True)
class ConvLayer:
    """One convolution (or pooling window) along one axis; ``transposed`` for a transposed convolution."""

    kernel: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    transposed: bool = False
    output_padding: int = 0

    def __post_init__(self) -> None:
        if self.kernel < 1:
            raise ConvError(f"kernel {self.kernel}: a kernel covers at least one cell")
        if self.stride < 1:
            raise ConvError(f"stride {self.stride}: the window must move by at least one cell")
        if self.dilation < 1:
            raise ConvError(f"dilation {self.dilation}: must be 1 (no gaps) or more")
        if self.padding < 0:
            raise ConvError(f"padding {self.padding}: cannot be negative")
        if self.output_padding < 0 or (self.output_padding and not self.transposed):
            raise ConvError("output_padding only exists for transposed convolutions, and is not negative")
        if self.transposed and self.output_padding >= max(self.stride, self.dilation):
            raise ConvError(
                f"output_padding {self.output_padding} must be smaller than the stride ({self.stride}) or the "
                f"dilation ({self.dilation}), else it adds cells no input reaches"
            )

    @property
    def span(self) -> int:
        """Cells the dilated kernel spans: ``d (k - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1

    def output_size(self, n: int) -> int:
        """Cells out of ``n`` cells in."""
        if n < 1:
            raise ConvError(f"size {n}: an input has at least one cell")
        if self.transposed:
            return (n - 1) * self.stride - 2 * self.padding + self.span + self.output_padding
        padded = n + 2 * self.padding
        if padded < self.span:
            raise ConvError(
                f"the kernel spans {self.span} cells (kernel {self.kernel}, dilation {self.dilation}) but the "
                f"input has only {padded} ({n} + 2 x padding {self.padding}): no output cell fits"
            )
        return (padded - self.span) // self.stride + 1

    def cells_lost(self, n: int) -> int:
        """Input cells that no kernel tap reaches: at the far end when the stride does not divide what remains,
        and between windows when the stride (or the dilation) skips cells."""
        if self.transposed:
            return 0
        taps = np.arange(self.output_size(n))[:, None] * self.stride + np.arange(self.kernel) * self.dilation
        covered = np.zeros(n + 2 * self.padding, dtype=bool)
        covered[taps.ravel()] = True
        return int(n - covered[self.padding : self.padding + n].sum())

    def inverse(self, n: int) -> ConvLayer:
        """The transposed convolution that maps this layer's output back to exactly ``n`` cells."""
        if self.transposed:
            raise ConvError("the inverse of a transposed convolution is a plain one: use the same settings")
        extra = (n + 2 * self.padding - self.span) % self.stride  # what the forward floor dropped
        return ConvLayer(self.kernel, self.stride, self.padding, self.dilation, True, extra)

    def describe(self) -> str:
        """``k3 s2 p1 d1`` (``t`` for transposed, ``o`` for output padding)."""
        text = f"k{self.kernel} s{self.stride} p{self.padding} d{self.dilation}"
        return ("t " + text + (f" o{self.output_padding}" if self.output_padding else "")) if self.transposed else text


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Cells to pad before and after so that a stride-1 convolution keeps the size (PyTorch's ``"same"``:
    the extra cell of an even span goes after)."""
    span = dilation * (kernel - 1) + 1
    total = span - 1
    return total // 2, total - total // 2


_LAYER = re.compile(r"(?P<t>t)?(?P<body>(?:[kspdo]\d+)+)")


def parse_layer(text: str) -> ConvLayer:
    """A layer from its short form: ``k3s2p1`` (kernel 3, stride 2, padding 1), ``k3d2p2``, ``k2s2`` (pooling),
    ``tk4s2p1`` (transposed), ``tk3s2p1o1`` (transposed, output padding 1). ``p=same`` is ``psame``."""
    raw = text.strip().lower().replace(" ", "")
    same = "psame" in raw
    raw = raw.replace("psame", "")
    match = _LAYER.fullmatch(raw)
    if not match and not (same and re.fullmatch(r"t?(?:[ksdo]\d+)*", raw)):
        raise ConvError(f"{text!r}: write a layer as k3s1p1 (k kernel, s stride, p padding or psame, d dilation)")
    values = {key: int(value) for key, value in re.findall(r"([kspdo])(\d+)", raw)}
    kernel, dilation, stride = values.get("k", 3), values.get("d", 1), values.get("s", 1)
    padding = values.get("p", 0)
    if same:
        if stride != 1:
            raise ConvError(f"{text!r}: 'same' padding keeps the size only with stride 1 (PyTorch refuses it too)")
        before, after = same_padding(kernel, dilation)
        if before != after:
            raise ConvError(
                f"{text!r}: kernel {kernel} with dilation {dilation} spans an even number of cells, so 'same' needs "
                f"{before} cell(s) before and {after} after; one padding per side cannot do it (pad the input by hand)"
            )
        padding = before
    try:
        return ConvLayer(kernel, stride, padding, dilation, raw.startswith("t"), values.get("o", 0))
    except ConvError as error:
        raise ConvError(f"{text!r}: {error}") from None


@dataclass(frozen=True)
class StackRow:
    """One layer of a stack: what comes out and what one output cell sees (``None`` after a transposed layer)."""

    layer: ConvLayer
    size_in: int
    size_out: int
    receptive_field: int | None
    jump: int | None
    start: float | None  # centre of the first output cell's receptive field, in input cells (0: the first cell)


class Stack:
    """Layers applied in turn along one axis: sizes, receptive field, jump and where the first output cell
    looks, computed layer by layer (the formulas of the module docstring). Receptive fields are given for
    plain convolutions and pooling; after a transposed layer only sizes are."""

    def __init__(self, layers: list[ConvLayer]) -> None:
        if not layers:
            raise ConvError("give at least one layer")
        self.layers = layers

    def rows(self, size: int) -> list[StackRow]:
        """One :class:`StackRow` per layer for an input of ``size`` cells."""
        rows: list[StackRow] = []
        n, field, jump, start = size, 1, 1, 0.0
        plain = True
        for index, layer in enumerate(self.layers, 1):
            try:
                out = layer.output_size(n)
            except ConvError as error:
                raise ConvError(f"layer {index} ({layer.describe()}), input of {n} cells: {error}") from None
            if out < 1:
                raise ConvError(f"layer {index} ({layer.describe()}): {n} cells in give {out} out")
            plain = plain and not layer.transposed
            if plain:
                start += ((layer.span - 1) / 2 - layer.padding) * jump
                field += (layer.span - 1) * jump
                jump *= layer.stride
            rows.append(
                StackRow(layer, n, out, field if plain else None, jump if plain else None, start if plain else None)
            )
            n = out
        return rows
