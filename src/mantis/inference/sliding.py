"""Sliding-window prediction on tensors of any spatial rank, with blending, D4 TTA and bf16 autocast."""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from mantis.inference.cuda_graphs import GraphedForward
from mantis.inference.outputs import ModelOutput, output_fields, rebuild_output, select_fields
from mantis.inference.spec import Precision, Size, WindowSpec
from mantis.inference.tiling import blend_weights, padded_extent, reflect_indices, window_starts
from mantis.inference.tta import SpatialTransform, d4_transforms
from mantis.nn.layout import channels_last
from mantis.runtime import cpu_has_native_bf16

Inputs = tuple[torch.Tensor, ...]


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 autocast natively (CUDA with bf16, CPUs with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def autocast_context(
    device: torch.device, precision: str, cache: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when asked and supported (else a warning and float32).

    ``cache=False`` casts the weights on every call (needed inside a CUDA graph, which owns its memory).
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if not bf16_supported(device):
        warnings.warn(f"bf16 is not supported on {device}; predicting in float32", stacklevel=3)
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)


def model_device(model: Callable[..., Any]) -> torch.device:
    """The device of the model's first parameter or buffer; CPU for parameter-free callables."""
    if isinstance(model, nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return torch.device("cpu")


class WindowForward:
    """Runs the model on a batch of windows, averaging over test-time transforms, returning float32 fields.

    Args:
        model: called as ``model(x)`` or ``model(x1, x2)`` on N x C x S windows.
        spatial_dims: number of spatial axes S.
        tta: average over :func:`d4_transforms` (each output inverted back).
        precision: ``"fp32"`` or ``"bf16"`` (autocast; outputs are returned as float32).
        device: where the model runs; ``None`` for the model's own device.
        fields: output fields to keep; ``None`` for all.
        cuda_graphs: replay the model from CUDA graphs, one captured per batch shape
            (:class:`~mantis.inference.cuda_graphs.GraphedForward`); CUDA devices only.

    Raises:
        ValueError: ``cuda_graphs`` on a device that is not CUDA.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        spatial_dims: int,
        tta: bool = False,
        precision: Precision = "fp32",
        device: torch.device | str | None = None,
        fields: Sequence[str] | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else model_device(model)
        self.graphed: GraphedForward | None = None
        if cuda_graphs:
            if self.device.type != "cuda":
                raise ValueError(f"CUDA graphs need a CUDA device; the model runs on {self.device}")
            self.graphed = GraphedForward(model, partial(self._context, cache=False))
        self.transforms: list[SpatialTransform] = d4_transforms(spatial_dims) if tta else [SpatialTransform(False, 0)]
        self.precision = precision
        self.wanted = None if fields is None else list(fields)
        self.template: Any = None
        if isinstance(model, nn.Module) and model.training:
            warnings.warn("the model is in training mode; call model.eval() before predicting", stacklevel=3)
        # Channels-last 2D windows run 1.3-1.5x faster on CPUs (same values; docs/benchmarks.md).
        self.channels_last = False
        if isinstance(model, nn.Module) and spatial_dims == 2 and self.device.type == "cpu":
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.channels_last = True

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(x) if self.channels_last else x

    @contextlib.contextmanager
    def _context(self, cache: bool = True) -> Iterator[None]:
        with torch.inference_mode(), autocast_context(self.device, self.precision, cache):
            yield

    def _model(self, inputs: Inputs) -> Any:
        if self.graphed is not None:
            return self.graphed(*inputs)
        with self._context():
            return self.model(*inputs)

    def __call__(self, windows: Inputs) -> dict[str, torch.Tensor]:
        """Fields of the (TTA-averaged) output for ``windows`` (each N x C x S), float32, on ``device``."""
        windows = tuple(w.to(self.device, non_blocking=True) for w in windows)
        total: dict[str, torch.Tensor] = {}
        for t in self.transforms:
            out = self._model(tuple(self._layout(t.apply(w)) for w in windows))
            fields = output_fields(out)
            if self.template is None:
                self.template = _template(out)
                self.wanted = select_fields(list(fields), self.wanted)
            for name in self.wanted or ():
                y = t.invert(fields[name]).float()
                if y.shape[2:] != windows[0].shape[2:] or y.shape[0] != windows[0].shape[0]:
                    raise ValueError(
                        f"model output {name!r} has shape {tuple(y.shape)} for windows of shape "
                        f"{tuple(windows[0].shape)}; sliding windows need outputs of the input's size"
                    )
                total[name] = y if name not in total else total[name] + y
        if len(self.transforms) > 1:
            total = {k: v / len(self.transforms) for k, v in total.items()}
        return total


def _template(out: Any) -> Any:
    # A tensor-free stand-in that remembers only the output's kind (and NamedTuple class).
    if isinstance(out, torch.Tensor):
        return torch.empty(0)
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        fields: list[Any] = [None] * len(out._fields)
        return type(out)(*fields)
    return {}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def accumulate_windows(
    forward: WindowForward,
    inputs: Inputs,
    starts: Sequence[tuple[int, ...]],
    window: tuple[int, ...],
    weights: torch.Tensor,
    sums: dict[str, torch.Tensor],
    weight_sum: torch.Tensor,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Add the weighted outputs of the windows at ``starts`` of ``inputs`` into ``sums`` and ``weight_sum``.

    Args:
        forward: the model on a batch of windows.
        inputs: one or two B x C x R' tensors, their origin that of the accumulators.
        starts: window origins, in region coordinates; every window lies inside the inputs.
        window: window size W per spatial axis.
        weights: blending weights of shape W, on the accumulation device.
        sums: per-field B x K x R running sums, created here on first use (on ``weight_sum``'s device).
        weight_sum: R running sum of weights (R the accumulators' spatial shape, at least R').
        batch_size: windows per model call (at least one window position each call).
        on_batch: called with the number of windows after each model call (progress).
    """
    b = inputs[0].shape[0]
    per_call = max(1, batch_size // max(b, 1))
    uniform = bool((weights == 1).all())  # mean blending: plain sums, no products
    region = tuple(weight_sum.shape)
    for chunk in _chunks(list(starts), per_call):
        slices = [(slice(None), slice(None), *(slice(s, s + w) for s, w in zip(st, window))) for st in chunk]
        batch = tuple(torch.cat([x[sl] for sl in slices], dim=0) for x in inputs)
        fields = forward(batch)
        for name, y in fields.items():
            y = y.to(weight_sum.device)
            if name not in sums:
                sums[name] = torch.zeros((b, y.shape[1], *region), dtype=torch.float32, device=y.device)
            acc = sums[name]
            for i, sl in enumerate(slices):
                if uniform:
                    acc[sl] += y[i * b : (i + 1) * b]
                else:
                    acc[sl].addcmul_(y[i * b : (i + 1) * b], weights)
        for sl in slices:
            weight_sum[sl[2:]] += weights
        if on_batch is not None:
            on_batch(len(chunk) * b)


def reflect_pad(x: torch.Tensor, before: Sequence[int], extents: Sequence[int]) -> torch.Tensor:
    """Pad the spatial axes of ``x`` (B x C x S) by reflection: ``before`` in front, up to ``extents``."""
    for axis, (p, n) in enumerate(zip(before, extents)):
        dim = 2 + axis
        size = x.shape[dim]
        if p == 0 and n == size:
            continue
        idx = torch.from_numpy(reflect_indices(-p, n - p, size)).to(x.device)
        x = torch.index_select(x, dim, idx)
    return x


def sliding_window_predict(
    model: Callable[..., Any],
    x: torch.Tensor | Sequence[torch.Tensor],
    window: Size | None = None,
    *,
    spec: WindowSpec | None = None,
    outputs: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    **window_options: Any,
) -> ModelOutput:
    """Predict a whole tensor by blending the model's outputs on overlapping windows.

    The input is reflect-padded by ``pad`` on every side (and at the end up to one window where it is
    smaller), cut into windows every ``stride`` (the last flush with the padded end), the model runs on
    ``batch_size`` windows at a time, and every output pixel is the weighted mean of the outputs of all
    windows that cover it. Works for any number of spatial axes (1D series, 2D images, 3D volumes).

    Args:
        model: ``model(x)`` or, for change detection, ``model(x1, x2)``, on N x C x W windows, returning
            class probabilities N x K x W, or a NamedTuple / dict of such tensors (``segmentation``,
            ``boundary``, ``distance``, ``color``...). Put it in eval mode first.
        x: B x C x S tensor, or a pair (x1, x2) of them for change detection.
        window: window size W, an int for every axis or one per axis (shorthand for ``spec.window``).
        spec: the window settings (:class:`~mantis.inference.spec.WindowSpec`: window, stride or overlap,
            pad, blend, sigma_scale, batch_size, tta, precision); default ``WindowSpec()``.
        outputs: output fields to blend and return; ``None`` for all.
        device: where the model runs; default the model's device. Blending happens on ``x``'s device.
        progress: show a tqdm progress bar.
        **window_options: fields of ``spec`` to change, e.g. ``stride=64, blend="gaussian", tta=True``.

    Returns:
        A B x K x S tensor when the model returns a tensor and ``outputs`` is ``None``; the model's
        NamedTuple (or dict) with every field blended when ``outputs`` is ``None``; else a dict holding the
        requested fields.
    """
    inputs: Inputs = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    if not inputs or any(t.shape != inputs[0].shape for t in inputs):
        raise ValueError(f"inputs must share one shape, got {[tuple(t.shape) for t in inputs]}")
    if inputs[0].ndim < 3:
        raise ValueError(f"input must be B x C x S with at least one spatial axis, got {tuple(x[0].shape)}")
    ndim = inputs[0].ndim - 2
    if window is not None:
        window_options["window"] = window
    spec = WindowSpec.build(spec, **window_options)
    win, step, before = spec.geometry(ndim)
    size = tuple(inputs[0].shape[2:])
    extents = tuple(padded_extent(n, w, p) for n, w, p in zip(size, win, before))
    padded = tuple(reflect_pad(t.float() if not t.is_floating_point() else t, before, extents) for t in inputs)
    starts = list(itertools.product(*(window_starts(e, w, s) for e, w, s in zip(extents, win, step))))

    acc_device = inputs[0].device
    weights = blend_weights(win, step, spec.blend, spec.sigma_scale).to(acc_device)
    forward = WindowForward(
        model, ndim, tta=spec.tta, precision=spec.precision, device=device, fields=outputs, cuda_graphs=spec.cuda_graphs
    )
    sums: dict[str, torch.Tensor] = {}
    weight_sum = torch.zeros(extents, dtype=torch.float32, device=acc_device)
    bar = _progress(len(starts) * inputs[0].shape[0], progress, "windows")
    try:
        accumulate_windows(
            forward, padded, starts, win, weights, sums, weight_sum, spec.batch_size, bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    crop = (slice(None), slice(None), *(slice(p, p + n) for p, n in zip(before, size)))
    blended = {name: (s / weight_sum)[crop] for name, s in sums.items()}
    if outputs is not None:
        return blended
    return rebuild_output(forward.template, blended)


def _progress(total: int, enabled: bool, unit: str, desc: str | None = None) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, leave=False)
