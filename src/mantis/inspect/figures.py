"""PNG figures of what :mod:`mantis.inspect.visualize` finds (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mantis.inspect.visualize import AttentionMaps, FeatureMap, Maximised
from mantis.nn.activations import create_activation, list_activations
from mantis.plots import display_image, save_figure

__all__ = [
    "display_image",
    "draw_activations",
    "draw_attention",
    "draw_feature_maps",
    "draw_filters",
    "draw_gates",
    "draw_maximised",
    "draw_outputs",
    "draw_saliency",
    "save_figure",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _subplots(rows: int, cols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    """A figure with a rows x cols array of axes, laid out by matplotlib's constrained layout (room for the
    title, labels and colour bars)."""
    return _pyplot().subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")


def _show(ax: Any, image: np.ndarray, title: str) -> None:
    ax.imshow(image, cmap=None if image.ndim == 3 else "gray", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _heat(fig: Any, ax: Any, values: np.ndarray, title: str, label: str, **kw: Any) -> None:
    image = ax.imshow(values, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(image, ax=ax, shrink=0.9).set_label(label, fontsize=8)


def draw_feature_maps(maps: Sequence[FeatureMap], path: Path, channels: int = 6) -> Path:
    """One row per level: the ``channels`` channels of largest variance, on the row's common colour scale."""
    cols = max(min(channels, max(m.values.shape[0] for m in maps)), 1)
    fig, axes = _subplots(len(maps), cols, (1.7 * cols + 1.6, 1.75 * len(maps) + 0.5))
    for row, fmap in zip(axes, maps):
        values = fmap.values.numpy()
        order = np.argsort(-values.reshape(values.shape[0], -1).var(1))[:cols]
        lo, hi = float(values[order].min()), float(values[order].max())
        image = None
        for ax, c in zip(row, order):
            image = ax.imshow(values[c], cmap="magma", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"channel {c}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in row[len(order) :]:
            ax.axis("off")
        size = "x".join(map(str, values.shape[1:]))
        row[0].set_ylabel(f"{fmap.label}\n{values.shape[0]} ch, {size}", fontsize=8)
        if image is not None:
            fig.colorbar(image, ax=list(row), shrink=0.9).set_label("activation", fontsize=8)
    fig.suptitle("feature maps per level (channels of largest variance)", fontsize=11)
    return save_figure(fig, path)


def draw_attention(maps: Sequence[AttentionMaps], images: Sequence[torch.Tensor], path: Path) -> Path:
    """The input(s) on top, then one row per attention call: its spatial similarity map and its channel
    similarities."""
    fig, axes = _subplots(len(maps) + 1, 2, (9, 2.9 * (len(maps) + 1)))
    for index, ax in enumerate(axes[0]):
        if index < len(images):
            _show(ax, display_image(images[index]), "input" if len(images) == 1 else f"input, date {index + 1}")
        else:
            ax.axis("off")
    for row, att in zip(axes[1:], maps):
        _heat(fig, row[0], att.spatial.numpy(), f"{att.label}: spatial", "fractal Tanimoto", cmap="viridis")
        channel = att.channel.numpy()
        row[1].bar(np.arange(channel.size), channel, color="tab:blue", width=0.9)
        row[1].set_ylim(0, max(1.0, float(channel.max()) * 1.05))
        row[1].set_xlabel("channel", fontsize=8)
        row[1].set_ylabel("fractal Tanimoto", fontsize=8)
        row[1].set_title(f"{att.label}: per channel", fontsize=9)
        row[1].xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("FracTAL attention: similarity of query and key (1 = identical)", fontsize=11)
    return save_figure(fig, path)


def draw_gates(values: Sequence[tuple[str, float]], path: Path) -> Path:
    """Horizontal bars: each unit's learned gate (how much of its attention enters the unit's output)."""
    fig, axes = _subplots(1, 1, (8, 0.28 * len(values) + 1.4))
    ax = axes[0][0]
    names = [name for name, _ in values]
    numbers = [value for _, value in values]
    bars = ax.barh(np.arange(len(values)), numbers, color=["tab:blue" if v >= 0 else "tab:red" for v in numbers])
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in numbers], fontsize=7, padding=2)
    ax.set_yticks(np.arange(len(values)), names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.margins(x=0.15)  # room for the value labels
    ax.set_xlabel("gate value (0 at initialisation: the attention is off)")
    ax.set_title("learned attention gates (gamma) of every unit and fusion")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def draw_outputs(
    images: Sequence[torch.Tensor], outputs: Mapping[str, torch.Tensor], path: Path, class_index: int
) -> Path:
    """The input(s), then the predicted classes and, per output field, the map of class ``class_index``."""
    plt = _pyplot()
    panels = len(images) + 1 + len(outputs)
    fig, axes = _subplots(1, panels, (3.3 * panels, 3.2))
    row = list(axes[0])
    for index, image in enumerate(images):
        _show(row.pop(0), display_image(image), "input" if len(images) == 1 else f"input, date {index + 1}")
    first = next(iter(outputs.values()))
    classes = first.shape[0]
    predicted = (first.argmax(0) if classes > 1 else (first[0] > 0.5).long()).numpy()
    kinds = max(classes, 2)
    ax = row.pop(0)
    _heat(
        fig, ax, predicted, "predicted class", "class", cmap=plt.get_cmap("tab10", kinds), vmin=-0.5, vmax=kinds - 0.5
    )
    ax.images[0].colorbar.set_ticks(range(kinds))
    for name, values in outputs.items():
        channel = min(class_index, values.shape[0] - 1)
        _heat(fig, row.pop(0), values[channel].numpy(), f"{name}, class {channel}", "value", cmap="viridis")
    fig.suptitle("model outputs beside the input", fontsize=11)
    return save_figure(fig, path)


def draw_filters(name: str, weight: torch.Tensor, path: Path, limit: int = 64) -> Path:
    """First-layer filters: a grid of kernels (RGB when they read 3 bands), or the C_out x C_in matrix of
    a 1x1 convolution."""
    w = weight.numpy()
    out_channels, in_channels = w.shape[:2]
    kernel = w.shape[2:]
    if all(k == 1 for k in kernel) or len(kernel) != 2:
        matrix = w.reshape(out_channels, in_channels, -1).mean(-1)
        fig, axes = _subplots(1, 1, (min(3 + 0.4 * in_channels, 10), min(2 + 0.25 * out_channels, 12)))
        ax = axes[0][0]
        bound = float(np.abs(matrix).max()) or 1.0
        _heat(
            fig,
            ax,
            matrix,
            f"first layer {name}: kernel {'x'.join(map(str, kernel))}\n(each output channel mixes the bands)",
            "weight",
            cmap="RdBu_r",
            vmin=-bound,
            vmax=bound,
        )
        ax.axis("on")
        ax.set_xlabel("input band")
        ax.set_ylabel("output channel")
        return save_figure(fig, path)
    count = min(out_channels, limit)
    cols = min(8, count)
    rows = math.ceil(count / cols)
    fig, axes = _subplots(rows, cols, (1.4 * cols, 1.4 * rows + 0.6))
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= count:
            continue
        kernel_values = w[index]
        if in_channels == 3:
            shown = kernel_values - kernel_values.min()
            ax.imshow((shown / max(float(shown.max()), 1e-12)).transpose(1, 2, 0), interpolation="nearest")
        else:
            bound = float(np.abs(kernel_values[0]).max()) or 1.0
            ax.imshow(kernel_values[0], cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    what = "RGB, each filter stretched to its range" if in_channels == 3 else "band 0, red > 0 > blue"
    fig.suptitle(f"first-layer filters of {name} ({count} of {out_channels}; {what})", fontsize=10)
    return save_figure(fig, path)


def draw_saliency(
    images: Sequence[torch.Tensor], maps: Sequence[torch.Tensor], path: Path, title: str, pixel: Sequence[int] | None
) -> Path:
    """Each input beside its saliency map (|gradient|, largest over bands); the chosen pixel marked."""
    fig, axes = _subplots(len(images), 2, (8, 3.6 * len(images)))
    for index, (row, image, values) in enumerate(zip(axes, images, maps)):
        which = "" if len(images) == 1 else f", date {index + 1}"
        _show(row[0], display_image(image), f"input{which}")
        _heat(fig, row[1], values.numpy(), f"saliency{which}", "|d output / d input|", cmap="inferno")
        if pixel is not None:
            for ax in row:
                ax.plot(pixel[1], pixel[0], marker="+", color="cyan", markersize=12, markeredgewidth=2)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def draw_maximised(result: Maximised, path: Path, title: str) -> Path:
    """The input(s) found by activation maximisation and the objective over the ascent."""
    panels = len(result.images) + 1
    fig, axes = _subplots(1, panels, (3.6 * panels, 3.6))
    for index, (ax, image) in enumerate(zip(axes[0], result.images)):
        _show(ax, display_image(image), "found input" if len(result.images) == 1 else f"found input, date {index + 1}")
    ax = axes[0][-1]
    ax.plot(np.arange(1, len(result.history) + 1), result.history, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("objective (mean activation)")
    ax.set_title(f"{result.start:.3g} -> {result.end:.3g}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _activation_curve(name: str, x: torch.Tensor) -> torch.Tensor:
    """The activation along ``x``; for those over channels, the inputs are built from ``x``: maxout keeps the
    larger of the pieces x and -x/2, softmax gives the share of x against 0."""
    module = create_activation(name).double()
    if name == "maxout":
        return module(torch.stack([x, -0.5 * x])[None])[0, 0]
    if name == "softmax":
        return module(torch.stack([x, torch.zeros_like(x)])[None])[0, 0]
    return module(x)


def draw_activations(path: Path) -> Path:
    """Every activation of :func:`mantis.nn.activations.list_activations` and its derivative on [-4, 4]."""
    names = list_activations()
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = _subplots(rows, cols, (3.2 * cols, 2.6 * rows))
    x = torch.linspace(-4, 4, 401, dtype=torch.float64, requires_grad=True)
    for ax, name in zip(axes.flat, names):
        y = _activation_curve(name, x)
        (slope,) = torch.autograd.grad(y.sum(), x)
        ax.plot(x.detach(), y.detach(), color="tab:blue", label="f(x)")
        ax.plot(x.detach(), slope, color="tab:orange", linestyle="--", label="f'(x)")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("activations of mantis.nn.activations (maxout: pieces x and -x/2; softmax: x against 0)")
    return save_figure(fig, path)
