"""``mantis predict`` on series with a class per step: a 1D segmentation network (``SeriesSegmentationDataModule``)
on ``.npy`` files of N x C x T (or N x T) values.

Series are standardised with the checkpoint's statistics, as in training, and predicted with the one
dimension-generic sliding window (:func:`~mantis.inference.sliding.sliding_window_predict`); the window is cut to
the series' length rounded up to the network's size multiple, so a series that fits is predicted whole.
Outputs: ``<output>/<input stem>_classes.npy`` (N x T uint8 class ids) and, with ``--outputs prob``,
``<stem>_prob.npy`` (N x K x T float32 class probabilities), written under temporary names renamed when complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mantis.inference.checkpoint import ModelMeta
from mantis.inference.errors import InputError
from mantis.inference.outputs import TENSOR_FIELD, output_fields
from mantis.inference.raster import AtomicFiles
from mantis.inference.sliding import _progress, sliding_window_predict
from mantis.inference.spec import WindowSpec
from mantis.inference.volume import _size_multiple
from mantis.models.common import nearest_sizes

__all__ = ["is_series_steps_input", "predict_series_steps", "predict_series_steps_cli"]

OUTPUT_NAMES = {"class": "classes", "prob": "prob"}


def is_series_steps_input(path: Path, meta: ModelMeta) -> bool:
    """Whether ``mantis predict`` should treat ``path`` as per-step series: a ``.npy`` file, or a folder of them,
    for a network built with ``spatial_dims=1``."""
    dims = meta.model_kwargs.get("spatial_dims")
    if dims is None or int(dims) != 1:
        return False
    return bool(_npy_files(path)) if path.is_dir() else path.suffix.lower() == ".npy"


def _npy_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".npy" and not p.name.startswith(".")
    )


def _read(path: Path, meta: ModelMeta) -> np.ndarray:
    """N x C x T float32 series, standardised as training did; one-line :class:`InputError` if they do not fit."""
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputError(f"{path}: cannot read as .npy ({error})") from None
    if values.ndim == 2:
        values = values[:, None]
    if values.ndim != 3 or not np.issubdtype(values.dtype, np.number) or values.shape[0] == 0:
        raise InputError(f"{path}: needs N x C x T (or N x T) numbers, got shape {values.shape} {values.dtype}")
    if meta.in_channels is not None and values.shape[1] != meta.in_channels:
        raise InputError(f"{path}: series of {values.shape[1]} channels, but the model takes {meta.in_channels}")
    if not np.isfinite(values).all():
        raise InputError(f"{path}: holds NaN or infinite values")
    x = values.astype(np.float32)
    if meta.band_mean is not None and meta.band_std is not None:
        mean, std = np.asarray(meta.band_mean, np.float32), np.asarray(meta.band_std, np.float32)
        x = ((x - mean[:, None]) / std[:, None]).astype(np.float32)
    return x


def _series_spec(spec: WindowSpec, length: int, multiple: int) -> WindowSpec:
    """``spec`` with its window cut to ``length`` rounded up to ``multiple`` (a short series is one window)."""
    (window,), (stride,), _ = spec.geometry(1)
    if window % multiple:
        sizes = nearest_sizes(window, multiple)
        raise InputError(f"window {window} does not suit the network: use a multiple of {multiple} ({sizes}; --window)")
    cut = min(window, math.ceil(length / multiple) * multiple)
    if cut == window:
        return spec
    return WindowSpec.build(spec, window=cut, stride=None if spec.stride is None else min(stride, cut), pad=None)


def predict_series_steps(
    model: Callable[..., Any],
    path: Path,
    output_dir: Path,
    meta: ModelMeta,
    *,
    spec: WindowSpec | None = None,
    outputs: Sequence[str] = ("class",),
    device: torch.device | str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Predict a class for every step of every series of a ``.npy`` file.

    Args:
        model: a 1D segmentation network in eval mode (N x C x T -> class probabilities N x K x T, or its
            multitask output), or an ensemble of them.
        path: the ``.npy`` file of N x C x T (or N x T) values.
        output_dir: where the outputs go (created if needed).
        meta: channels, statistics and task of ``model`` (read from its checkpoint).
        spec: window settings (window cut to the series' length); default ``WindowSpec()``.
        outputs: ``class`` (``<stem>_classes.npy``) and/or ``prob`` (``<stem>_prob.npy``).
        device: where the model runs (default: the model's device).
        overwrite: replace existing outputs instead of refusing.
        progress: show a progress bar (series done).

    Returns:
        Product name -> path written.

    Raises:
        InputError: before anything is written, one line naming the file and the problem.
    """
    return _run(_plan(path, output_dir, meta, outputs, overwrite), model, spec or WindowSpec(), device, progress)


def _plan(
    path: Path, output_dir: Path, meta: ModelMeta, outputs: Sequence[str], overwrite: bool
) -> tuple[Path, np.ndarray, dict[str, Path]]:
    if meta.pair:
        raise InputError(f"{path}: the change-detection model takes two images, not series")
    unknown = [o for o in outputs if o not in OUTPUT_NAMES]
    if unknown or not outputs:
        raise InputError(f"{path}: per-step series give the outputs {', '.join(OUTPUT_NAMES)}, not {unknown!r}")
    files = {o: Path(output_dir) / f"{path.stem}_{OUTPUT_NAMES[o]}.npy" for o in dict.fromkeys(outputs)}
    for file in files.values():
        if file.exists() and not overwrite:
            raise InputError(f"{file}: already exists (pass --overwrite to replace it)")
    return path, _read(path, meta), files


def _run(
    job: tuple[Path, np.ndarray, dict[str, Path]],
    model: Callable[..., Any],
    spec: WindowSpec,
    device: torch.device | str | None,
    progress: bool,
) -> dict[str, Path]:
    path, x, files = job
    spec = _series_spec(spec, x.shape[-1], _size_multiple(model))
    chunks = []
    bar = _progress(len(x), progress, "series", desc=path.name)
    try:
        for start in range(0, len(x), spec.batch_size):
            batch = torch.from_numpy(x[start : start + spec.batch_size])
            out = sliding_window_predict(model, batch, spec=spec, outputs=[TENSOR_FIELD], device=device)
            chunks.append(output_fields(out)[TENSOR_FIELD].cpu())
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    prob = torch.cat(chunks).numpy()
    classes = (prob[:, 0] > 0.5) if prob.shape[1] == 1 else prob.argmax(1)
    arrays = {"class": classes.astype(np.uint8), "prob": prob.astype(np.float32)}
    with AtomicFiles(list(files.values())) as temps:
        for (product, _), temp in zip(files.items(), temps):
            with open(temp, "wb") as handle:
                np.save(handle, arrays[product])
    return dict(files)


def predict_series_steps_cli(
    model: Callable[..., Any], inputs: Sequence[Path], args: Any, meta: ModelMeta, spec: WindowSpec, device: str
) -> list[dict[str, Path]]:
    """``mantis predict`` on a ``.npy`` file of series, or a folder of them, for a 1D network."""
    if getattr(args, "vector", None):
        raise InputError(f"{inputs[0]}: --vector draws polygons of 2D class maps, not of series")
    if getattr(args, "format", "auto") != "auto":
        raise InputError(f"{inputs[0]}: --format {args.format} is for rasters; per-step series are written as .npy")
    if len(inputs) != 1:
        raise InputError(f"{inputs[-1]}: series are predicted from one file or folder (change detection takes images)")
    paths = _npy_files(inputs[0]) if inputs[0].is_dir() else [inputs[0]]
    out = Path(args.output)
    jobs = []
    for path in paths:
        names = [out / f"{path.stem}_{OUTPUT_NAMES.get(o, o)}.npy" for o in args.outputs]
        if args.skip_existing and all(n.exists() for n in names):
            continue
        jobs.append(_plan(path, out, meta, args.outputs, args.overwrite or args.skip_existing))
    return [_run(job, model, spec, device, not args.no_progress) for job in jobs]
