"""Figures of a run: training curves from ``metrics.csv`` and a grid of inputs, truth and predictions."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike[str]

__all__ = ["plot_prediction_grid", "plot_training_curves", "read_metrics_csv"]


def _figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[object, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    return fig, axes


def read_metrics_csv(path: PathLike) -> dict[str, list[tuple[int, float]]]:
    """Read Lightning's CSV log into ``{metric: [(epoch, value), ...]}`` (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = int(float(row.get("epoch") or 0))
            for key, text in row.items():
                if key in ("epoch", "step") or not text:
                    continue
                value = float(text)
                if math.isfinite(value):
                    series.setdefault(key, []).append((epoch, value))
    return series


def plot_training_curves(csv_path: PathLike, png_path: PathLike, scores: Sequence[str] | None = None) -> Path:
    """Plot losses, validation scores and the learning-rate / loss-depth schedule of a run.

    Args:
        csv_path: the run's ``metrics.csv`` (Lightning CSVLogger).
        png_path: the PNG to write.
        scores: metric names (without ``val/``) for the middle panel; default: F1, IoU and MCC of the change
            class when logged, else their macro means.

    Returns:
        The PNG path.
    """
    series = read_metrics_csv(csv_path)
    if scores is None:
        suffix = "change" if "val/f1_change" in series else "macro"
        scores = [f"{name}_{suffix}" for name in ("f1", "iou", "mcc", "precision", "recall")]
    fig, axes = _figure(1, 3, (15, 4))
    panels = (
        ("loss", [("train/loss_epoch", "train"), ("val/loss", "validation")]),
        ("validation scores", [(f"val/{s}", s) for s in scores] + [("val/accuracy", "accuracy")]),
        ("schedule", [("train/lr", "learning rate"), ("train/loss_depth", "loss depth")]),
    )
    for ax, (title, curves) in zip(axes[0], panels):
        for key, label in curves:
            points = series.get(key)
            if not points:
                continue
            x, y = zip(*points)
            if key == "train/loss_depth":
                twin = ax.twinx()
                twin.step(x, y, where="post", color="tab:red", label=label)
                twin.set_ylim(-1, max(31, *y) + 1)
                twin.set_ylabel(label)
                twin.legend(loc="upper right")
            else:
                ax.plot(x, y, marker="o", markersize=3, label=label)
        if title == "schedule" and series.get("train/lr"):
            ax.set_yscale("log")
            ax.set_ylabel("learning rate")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left" if title == "schedule" else "best", fontsize=8)
    return _save(fig, png_path, dpi=100)


def _save(fig: object, png_path: PathLike, dpi: int) -> Path:
    """Lay out ``fig``, then :func:`save_figure` it."""
    fig.tight_layout()  # type: ignore[attr-defined]
    return save_figure(fig, Path(png_path), dpi)


def save_figure(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file in the same folder, renamed; its folder created),
    then close it: a reader never finds half a PNG."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(temporary, dpi=dpi)
        os.replace(temporary, path)
    finally:
        plt.close(fig)
        temporary.unlink(missing_ok=True)
    return path


def display_image(image: Any) -> np.ndarray:
    """C x H x W image (array or CPU tensor) -> H x W x 3 (three or more bands: the first three) or H x W, in
    [0, 1], stretched per band to its 2-98 % range (so that any normalisation displays)."""
    img = np.asarray(image, dtype=np.float64)
    img = img[:3] if img.shape[0] >= 3 else img[:1]
    lo = np.percentile(img, 2, axis=(1, 2), keepdims=True)
    hi = np.percentile(img, 98, axis=(1, 2), keepdims=True)
    img = np.clip((img - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    return img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]


def plot_prediction_grid(
    images: Sequence[Sequence[np.ndarray]],
    truth: Sequence[np.ndarray],
    prediction: Sequence[np.ndarray],
    png_path: PathLike,
    image_titles: Sequence[str] = ("date 1", "date 2"),
    label: str = "change",
) -> Path:
    """One row per sample: its input image(s), the true mask and the predicted mask.

    Args:
        images: per sample, the C x H x W inputs (two for change detection).
        truth: per sample, the H x W true class ids (ignored values, above the largest predicted class,
            are left blank).
        prediction: per sample, the H x W predicted class ids.
        png_path: the PNG to write.
        image_titles: column titles of the inputs.
        label: what the masks show, for the column titles.

    Returns:
        The PNG path.
    """
    n = len(truth)
    if not (len(images) == len(prediction) == n) or n == 0:
        raise ValueError("images, truth and prediction need the same, non-zero number of samples")
    n_inputs = len(images[0])
    fig, axes = _figure(n, n_inputs + 2, (2.6 * (n_inputs + 2), 2.6 * n))
    titles = [*image_titles[:n_inputs], f"true {label}", f"predicted {label}"]
    vmax = max(1, *(int(np.max(p)) for p in prediction))
    for row in range(n):
        panels = [display_image(img) for img in images[row]]
        true = np.ma.masked_where(truth[row] > vmax, truth[row])
        panels += [true, prediction[row]]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            if col < n_inputs:
                ax.imshow(panel, cmap=None if panel.ndim == 3 else "gray")
            else:
                cmap = "gray" if vmax == 1 else "tab10"  # binary change in black and white
                ax.imshow(panel, cmap=cmap, vmin=0, vmax=vmax if vmax == 1 else 9, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col])
    return _save(fig, png_path, dpi=80)
