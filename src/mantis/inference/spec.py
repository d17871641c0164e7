"""How windows are cut, blended and run: one frozen option object for every prediction entry point."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mantis.inference.errors import InputError
from mantis.inference.tiling import BLEND_MODES, as_tuple, resolve_pad, resolve_stride

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

Size = int | tuple[int, ...]


@dataclass(frozen=True)
class WindowSpec:
    """Settings of sliding-window prediction, shared by ``sliding_window_predict``, ``predict_raster``,
    ``predict_folder`` and ``mantis predict``.

    Args:
        window: window size, an int for every spatial axis or one per axis (a multiple of the model's
            size multiple, e.g. 2^(depth-1)).
        stride: step between windows (int or per axis); excludes ``overlap``.
        overlap: fraction of a window shared with its neighbour, in [0, 1); default 0.5 when neither is given.
        pad: reflect padding of the borders per side; default ``(window - stride) // 2``.
        blend: weights of overlapping windows: ``mean`` (the paper's), ``gaussian`` or ``linear``.
        sigma_scale: Gaussian standard deviation as a fraction of the window.
        batch_size: windows per model call.
        tta: average over the 8 D4 flips/rotations (flips only in 1D), each inverted.
        precision: ``fp32``, or ``bf16`` autocast where the device supports it.
        cuda_graphs: on a CUDA device, record the model's forward once per batch shape as a CUDA graph and
            replay it (one launch per batch instead of one per kernel); refused on other devices.
    """

    window: Size = 256
    stride: Size | None = None
    overlap: float | None = None
    pad: Size | None = None
    blend: str = "mean"
    sigma_scale: float = 0.125
    batch_size: int = 8
    tta: bool = False
    precision: Precision = "fp32"
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        for name in ("window", "stride", "pad"):  # lists from configs become tuples (hashable, frozen)
            value = getattr(self, name)
            if isinstance(value, Sequence):
                object.__setattr__(self, name, value[0] if len(value) == 1 else tuple(int(v) for v in value))
        if self.blend not in BLEND_MODES:
            raise ValueError(f"unknown blend mode {self.blend!r}; choose one of {', '.join(BLEND_MODES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.sigma_scale <= 0:
            raise ValueError(f"sigma_scale must be positive, got {self.sigma_scale}")
        ndim = next((len(v) for v in (self.window, self.stride, self.pad) if isinstance(v, tuple)), 1)
        self.geometry(ndim)  # window, stride, overlap and pad checked now, not at the first window

    def geometry(self, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Window, stride and padding per axis for ``ndim`` spatial axes."""
        window = as_tuple(self.window, ndim, "window")
        stride = resolve_stride(window, self.stride, self.overlap)
        return window, stride, resolve_pad(window, stride, self.pad)

    @classmethod
    def build(cls, spec: WindowSpec | None = None, **changes: Any) -> WindowSpec:
        """``spec`` (default: the defaults) with the fields given as keywords replaced.

        Raises:
            TypeError: a keyword that is not a field, named in the message.
        """
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise TypeError(f"unknown window option {unknown[0]!r}; choose from {', '.join(sorted(FIELDS))}")
        base = spec if spec is not None else cls()
        return dataclasses.replace(base, **changes) if changes else base

    def fitted(self, shape: Sequence[int], multiple: int) -> WindowSpec:
        """This spec for an input of spatial ``shape``: each window side checked against the network's
        ``multiple`` and cut to the input's side rounded up to it (a small input is one window, not a 256-long
        one); strides are cut with the window.

        Raises:
            InputError: a window side that is not a multiple of ``multiple``.
        """
        window, stride, _ = self.geometry(len(shape))
        check_sides(window, multiple)
        cut = tuple(min(w, math.ceil(n / multiple) * multiple) for w, n in zip(window, shape))
        if cut == window:
            return self
        steps = None if self.stride is None else tuple(min(s, w) for s, w in zip(stride, cut))
        return WindowSpec.build(self, window=cut, stride=steps)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> WindowSpec:
        """The spec from a mapping (a config section or parsed arguments); keys that are not fields are ignored."""
        return cls(**{k: v for k, v in values.items() if k in FIELDS and v is not None})


FIELDS = frozenset(f.name for f in dataclasses.fields(WindowSpec))


def size_multiple(model: Any) -> int:
    """The multiple every window side must be for ``model`` (an ensemble: the largest of its members')."""
    members = getattr(model, "members", None)
    if members is not None:
        return max((size_multiple(m) for m in members), default=1)
    multiple = getattr(model, "size_multiple", 1)
    return multiple if isinstance(multiple, int) and multiple > 0 else 1


def check_sides(window: Sequence[int], multiple: int) -> None:
    """Refuse, before any file is read, a window whose sides the network cannot take.

    Raises:
        InputError: naming the window, the multiple it needs and the nearest valid sizes.
    """
    from mantis.models.common import nearest_sizes  # the models package is heavy; needed only on refusal

    for side in window:
        if side % multiple:
            raise InputError(
                f"window {side} does not suit the network: its sides must be multiples of {multiple} "
                f"(nearest: {nearest_sizes(side, multiple)}; --window)"
            )
