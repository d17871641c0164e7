"""``mantis predict`` on series with a class per step: a 1D segmentation network (``SeriesSegmentationDataModule``)
on ``.npy`` files of N x C x T (or N x T) values.

Series are standardised with the checkpoint's statistics, as in training, and predicted with the one
dimension-generic sliding window (:func:`~mantis.inference.sliding.sliding_window_predict`); the window is cut to
the series' length rounded up to the network's size multiple, so a series that fits is predicted whole.
Outputs: ``<output>/<input stem>_classes.npy`` (N x T uint8 class ids) and, with ``--outputs prob``,
``<stem>_prob.npy`` (N x K x T float32 class probabilities), written under temporary names renamed when complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import torch

from mantis.inference.checkpoint import ModelMeta
from mantis.inference.errors import InputError
from mantis.inference.options import OutputSpec, PredictArgs, PredictOptions
from mantis.inference.outputs import TENSOR_FIELD, output_fields
from mantis.inference.raster import AtomicFiles
from mantis.inference.sliding import _progress, sliding_window_predict
from mantis.inference.spec import size_multiple

__all__ = ["is_series_steps_input", "predict_series_steps", "predict_series_steps_cli"]

OUTPUT_NAMES = {"class": "classes", "prob": "prob"}
#: One file planned: its path, its standardised series and the files it will write.
SeriesJob = tuple[Path, np.ndarray, dict[str, Path]]


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


def predict_series_steps(
    model: Callable[..., Any], path: Path, output_dir: Path, meta: ModelMeta, **options: Unpack[PredictArgs]
) -> dict[str, Path]:
    """Predict a class for every step of every series of a ``.npy`` file.

    Args:
        model: a 1D segmentation network in eval mode (N x C x T -> class probabilities N x K x T, or its
            multitask output), or an ensemble of them.
        path: the ``.npy`` file of N x C x T (or N x T) values.
        output_dir: where the outputs go (created if needed).
        meta: channels, statistics and task of ``model`` (read from its checkpoint).
        **options: as in :func:`~mantis.inference.predict.predict_raster`, but the window is cut to the series'
            length, ``outputs`` are ``class`` (``<stem>_classes.npy``) and/or ``prob`` (``<stem>_prob.npy``,
            float32 whatever ``prob_dtype``), ``output_format`` and ``vector`` are for rasters (refused), and
            the progress bar counts series.

    Returns:
        Product name -> path written (with ``skip_existing``, of the existing files when all exist).

    Raises:
        InputError: before anything is written, one line naming the file and the problem.
    """
    settings = PredictOptions.build(**options)
    job = _plan(path, output_dir, meta, settings.output)
    files = job[2]
    if settings.output.skip_existing and all(f.exists() for f in files.values()):
        return dict(files)
    return _run(job, model, settings)


def _plan(path: Path, output_dir: Path, meta: ModelMeta, output: OutputSpec) -> SeriesJob:
    if meta.pair:
        raise InputError(f"{path}: the change-detection model takes two images, not series")
    if output.vector is not None:
        raise InputError(f"{path}: --vector draws polygons of 2D class maps, not of series")
    if output.output_format != "auto":
        raise InputError(f"{path}: --format {output.output_format} is for rasters; per-step series are written as .npy")
    outputs = output.outputs
    unknown = [o for o in outputs if o not in OUTPUT_NAMES]
    if unknown or not outputs:
        raise InputError(f"{path}: per-step series give the outputs {', '.join(OUTPUT_NAMES)}, not {unknown!r}")
    files = {o: Path(output_dir) / f"{path.stem}_{OUTPUT_NAMES[o]}.npy" for o in dict.fromkeys(outputs)}
    for file in files.values():
        if file.exists() and not (output.overwrite or output.skip_existing):
            raise InputError(f"{file}: already exists (pass --overwrite to replace it)")
    return path, _read(path, meta), files


def _run(job: SeriesJob, model: Callable[..., Any], options: PredictOptions) -> dict[str, Path]:
    path, x, files = job
    spec = options.window.fitted((x.shape[-1],), size_multiple(model))
    device, progress = options.device, options.progress
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
    model: Callable[..., Any], inputs: Sequence[Path], meta: ModelMeta, options: PredictOptions, output_dir: Path
) -> list[dict[str, Path]]:
    """``mantis predict`` on a ``.npy`` file of series, or a folder of them, for a 1D network."""
    if len(inputs) != 1:
        raise InputError(f"{inputs[-1]}: series are predicted from one file or folder (change detection takes images)")
    paths = _npy_files(inputs[0]) if inputs[0].is_dir() else [inputs[0]]
    jobs = [_plan(path, output_dir, meta, options.output) for path in paths]  # every file checked first
    skip = options.output.skip_existing
    jobs = [job for job in jobs if not (skip and all(f.exists() for f in job[2].values()))]
    return [_run(job, model, options) for job in jobs]
