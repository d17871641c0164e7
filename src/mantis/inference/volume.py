"""Prediction on volume files of any size: slabs of overlapping 3D windows, blended, written as NIfTI or .npy.

The volume is read whole (a NIfTI file cannot be read in parts once compressed) and normalised as in training.
Windows are run one slab at a time: a slab is one window deep along the first spatial axis and spans the
others, and its blending accumulators are all the float memory prediction needs besides the input and the
outputs. Once every window that reaches a plane has run, the plane is final: it is divided by the summed
weights, turned into the products and stored; the accumulator then moves on. Outputs follow the input's
format: a NIfTI input gives NIfTI outputs with its affine and voxel spacing (and the rest of its header),
a ``.npy`` input gives ``.npy`` outputs. Files appear only once complete (temporary names, then a rename).
"""

from __future__ import annotations

import gzip
import itertools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mantis.data.volumes_io import (
    VolumeHeader,
    is_volume_file,
    list_volumes,
    read_header,
    read_volume,
    volume_stem,
    volume_suffix,
)
from mantis.inference.checkpoint import ModelMeta
from mantis.inference.errors import InputError
from mantis.inference.options import DEFAULT_OUTPUT, PRODUCTS, UINT8_SCALE, OutputSpec, PredictOptions
from mantis.inference.raster import AtomicFiles
from mantis.inference.sliding import WindowForward, _progress, accumulate_windows
from mantis.inference.spec import WindowSpec, size_multiple
from mantis.inference.tiling import blend_weights, padded_extent, reflect_indices, window_starts

__all__ = [
    "VolumeJob",
    "is_volume_input",
    "plan_volume",
    "plan_volume_folder",
    "predict_volume_file",
]

_FORMER = {"predict_volume": "predict_raster", "predict_volume_folder": "predict_folder"}

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class VolumeJob:
    """One volume prediction checked and ready to run: the input, its header and the files it will write."""

    input: Path
    header: VolumeHeader
    outputs: dict[str, Path]
    prob_dtype: str = "uint8"

    @property
    def done(self) -> bool:
        """Every output exists already (``skip_existing`` leaves the job out)."""
        return all(p.exists() for p in self.outputs.values())


def plan_volume(
    inputs: PathLike | Sequence[PathLike], output_dir: PathLike, meta: ModelMeta, output: OutputSpec = DEFAULT_OUTPUT
) -> VolumeJob:
    """Check a volume prediction before any work: one input, its header, channels, output names.

    Outputs are ``<output_dir>/<input stem>_<product><input's ending>`` (``.nii`` inputs give ``.nii``,
    ``.nii.gz`` ones ``.nii.gz``, ``.npy`` ones ``.npy``).

    Raises:
        InputError: one line naming the file and the problem.
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if len(paths) != 1:
        raise InputError(f"{paths[-1]}: volumes are predicted one at a time (change detection takes images)")
    path = paths[0]
    if meta.pair:
        raise InputError(f"{path}: the change-detection model takes two images, not a volume")
    dims = meta.model_kwargs.get("spatial_dims", 2 if meta.model is not None else None)  # the registry's default
    if dims is not None and int(dims) != 3:
        raise InputError(f"{path}: is a volume, but the model was built for spatial_dims={dims} (3D needs 3)")
    output.check()
    if output.vector is not None:
        raise InputError(f"{path}: --vector draws polygons of 2D class maps, not of volumes")
    if output.output_format != "auto":
        raise InputError(f"{path}: --format {output.output_format} is for rasters; volumes are written as their input")
    try:
        header = read_header(path)
    except ValueError as error:
        raise InputError(str(error)) from None
    if meta.in_channels is not None and header.channels != meta.in_channels:
        raise InputError(f"{path}: has {header.channels} channels, the model takes {meta.in_channels}")
    if meta.band_mean is not None and len(meta.band_mean) != header.channels:
        raise InputError(
            f"{path}: has {header.channels} channels but the checkpoint's band_mean has {len(meta.band_mean)} values"
        )
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    ending = volume_suffix(path)
    files = {o: out_dir / f"{volume_stem(path)}_{o}{ending}" for o in dict.fromkeys(output.outputs)}
    if not (output.overwrite or output.skip_existing):
        for f in files.values():
            if f.exists():
                raise InputError(f"{f}: already exists (pass --overwrite to replace it)")
    return VolumeJob(path, header, files, output.prob_dtype)


def predict_volume_file(
    model: Callable[..., Any], inputs: Sequence[Path], output_dir: PathLike, meta: ModelMeta, options: PredictOptions
) -> dict[str, Path]:
    """:func:`~mantis.inference.predict.predict_raster` on a volume file (its model resolved, its options built).

    Raises:
        InputError: before any work, if the input does not fit the model or the outputs exist.
    """
    job = plan_volume(inputs, output_dir, meta, options.output)
    if options.output.skip_existing and job.done:
        return dict(job.outputs)
    spec = options.window.fitted(job.header.shape, size_multiple(model))
    return run_volume_prediction(job, model, meta, options.replace(window=spec))


def _normalised(job: VolumeJob, meta: ModelMeta) -> torch.Tensor:
    """C x X x Y x Z float32 voxels of the input, clipped and standardised as the checkpoint's training data."""
    try:
        volume = read_volume(job.input)
    except ValueError as error:
        raise InputError(str(error)) from None
    if meta.intensity_range is not None:  # as in training: clipped before the statistics apply
        low, high = meta.intensity_range
        np.clip(volume, low, high, out=volume)
    if meta.band_mean is not None and meta.band_std is not None:
        mean = np.asarray(meta.band_mean, np.float32).reshape(-1, 1, 1, 1)
        std = np.asarray(meta.band_std, np.float32).reshape(-1, 1, 1, 1)
        volume -= mean
        volume /= std
    return torch.from_numpy(volume)


def run_volume_prediction(
    job: VolumeJob, model: Callable[..., Any], meta: ModelMeta, options: PredictOptions
) -> dict[str, Path]:
    """Run a planned volume prediction slab by slab, then write its outputs atomically.

    Arguments are those of :func:`predict_volume_file` (its window already cut to the volume by
    :meth:`WindowSpec.fitted`).
    """
    spec, device, prob_dtype = options.window, options.device, job.prob_dtype
    volume = _normalised(job, meta)
    size = job.header.shape
    win, step, before = spec.geometry(3)
    extents = tuple(padded_extent(n, w, p) for n, w, p in zip(size, win, before))
    depth_starts = window_starts(extents[0], win[0], step[0])
    plane_starts = list(itertools.product(*(window_starts(extents[a], win[a], step[a]) for a in (1, 2))))
    across = [torch.from_numpy(reflect_indices(-before[a], extents[a] - before[a], size[a])) for a in (1, 2)]
    fields = list(dict.fromkeys(PRODUCTS[p] for p in job.outputs))
    forward = WindowForward(
        model, 3, tta=spec.tta, precision=spec.precision, device=device, fields=fields, cuda_graphs=spec.cuda_graphs
    )
    acc_device = forward.device  # on a GPU only the finished planes travel back
    weights = blend_weights(win, step, spec.blend, spec.sigma_scale).to(acc_device)
    sums: dict[str, torch.Tensor] = {}
    weight_sum = torch.zeros((win[0], extents[1], extents[2]), dtype=torch.float32, device=acc_device)
    finished: dict[str, np.ndarray] = {}
    bar = _progress(len(depth_starts) * len(plane_starts), options.progress, "win", desc=job.input.name)
    try:
        for i, top in enumerate(depth_starts):
            rows = torch.from_numpy(reflect_indices(top - before[0], top - before[0] + win[0], size[0]))
            slab = volume.index_select(1, rows).index_select(2, across[0]).index_select(3, across[1])
            starts = [(0, a, b) for a, b in plane_starts]
            update = bar.update if bar is not None else None
            accumulate_windows(
                forward, (slab[None].to(acc_device),), starts, win, weights, sums, weight_sum, spec.batch_size, update
            )
            done = (depth_starts[i + 1] if i + 1 < len(depth_starts) else top + win[0]) - top
            lo, hi = max(top, before[0]), min(top + done, before[0] + size[0])
            if hi > lo:
                band = (
                    slice(lo - top, hi - top),
                    slice(before[1], before[1] + size[1]),
                    slice(before[2], before[2] + size[2]),
                )
                planes = {f: (sums[f][0][(slice(None), *band)] / weight_sum[band]).cpu() for f in fields}
                _store(finished, job, planes, slice(lo - before[0], hi - before[0]), size, prob_dtype)
            _advance(sums, weight_sum, done)
    finally:
        if bar is not None:
            bar.close()
    _write(job, finished, prob_dtype)
    return dict(job.outputs)


def _store(
    finished: dict[str, np.ndarray],
    job: VolumeJob,
    planes: dict[str, torch.Tensor],
    where: slice,
    size: tuple[int, int, int],
    prob_dtype: str,
) -> None:
    """Put finished planes (K x n x Y x Z per field) into the output arrays (created on first use)."""
    for product in job.outputs:
        values = planes[PRODUCTS[product]]
        if product == "class":
            ids = (values[0] > 0.5) if values.shape[0] == 1 else values.argmax(0)
            if "class" not in finished:
                finished["class"] = np.empty(size, dtype=np.uint8)
            finished["class"][where] = ids.to(torch.uint8).numpy()
            continue
        dtype = np.float32 if prob_dtype == "float32" else np.uint8
        if product not in finished:
            finished[product] = np.empty((*size, values.shape[0]), dtype=dtype)  # K on the 4th axis
        v = values.numpy()
        if dtype == np.uint8:
            v = np.rint(np.clip(v, 0.0, 1.0) * UINT8_SCALE)
        finished[product][where] = np.moveaxis(v, 0, -1).astype(dtype)


def _advance(sums: dict[str, torch.Tensor], weight_sum: torch.Tensor, n: int) -> None:
    """Move the accumulators ``n`` planes along the first spatial axis; the planes that open are zero."""
    for axis, acc in [*((2, a) for a in sums.values()), (0, weight_sum)]:
        depth = acc.shape[axis]
        if n < depth:
            acc.narrow(axis, 0, depth - n).copy_(acc.narrow(axis, n, depth - n).clone())
        acc.narrow(axis, max(depth - n, 0), min(n, depth)).zero_()


def _write(job: VolumeJob, finished: dict[str, np.ndarray], prob_dtype: str) -> None:
    """Every product to its file, under temporary names renamed into place once all are written."""
    with AtomicFiles(list(job.outputs.values())) as temps:
        for (product, final), temp in zip(job.outputs.items(), temps):
            data = finished[product]
            if volume_suffix(final) == ".npy":
                with open(temp, "wb") as handle:
                    np.save(handle, data)
                continue
            scaled = product != "class" and prob_dtype == "uint8"
            content = _nifti_bytes(job.input, data, 1.0 / UINT8_SCALE if scaled else None)
            opener: Any = gzip.open if final.name.lower().endswith(".gz") else open
            with opener(temp, "wb") as handle:
                handle.write(content)


def _nifti_bytes(source: Path, data: np.ndarray, slope: float | None) -> bytes:
    """``data`` as a NIfTI-1 file with ``source``'s affine, voxel spacing, units and orientation codes."""
    import nibabel as nib

    original: Any = nib.load(source)
    header = original.header if isinstance(original.header, nib.Nifti1Header) else None
    image = nib.Nifti1Image(data, original.affine, header=header)
    image.set_data_dtype(data.dtype)
    zooms = tuple(float(z) for z in original.header.get_zooms()[:3])
    image.header.set_zooms(zooms + (1.0,) * (data.ndim - 3))
    image.header.set_slope_inter(slope if slope is not None else 1.0, 0.0)
    image.header["intent_code"] = 0
    return bytes(image.to_bytes())


def is_volume_input(path: Path) -> bool:
    """Whether ``mantis predict`` should treat ``path`` as volumes: a volume file, or a folder holding volume
    files and no images."""
    if path.is_dir():
        from mantis.io.folders import list_images

        return bool(list_volumes(path)) and not list_images(path)
    return is_volume_file(path)


def plan_volume_folder(
    folder: PathLike, output_dir: PathLike, meta: ModelMeta, options: PredictOptions, multiple: int
) -> list[tuple[VolumeJob, WindowSpec]]:
    """Every volume of ``folder`` checked and planned, each with the windows cut to it (``multiple``: the
    network's size multiple); volumes whose outputs all exist are left out with ``skip_existing``."""
    jobs = [plan_volume(path, output_dir, meta, options.output) for path in list_volumes(folder)]
    jobs = [job for job in jobs if not (options.output.skip_existing and job.done)]
    return [(job, options.window.fitted(job.header.shape, multiple)) for job in jobs]


def __getattr__(name: str) -> Any:
    """The former volume entry points, now :func:`~mantis.inference.predict.predict_raster` and
    :func:`~mantis.inference.predict.predict_folder`, which take volumes as they take rasters."""
    if name in _FORMER:
        from mantis.inference import predict  # here: predict imports this module

        new = _FORMER[name]
        warnings.warn(f"{__name__}.{name} is deprecated; use mantis.inference.{new}", DeprecationWarning, stacklevel=2)
        return getattr(predict, new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
