"""Prediction on raster files of any size, in bounded memory: strips of windows, blended, written by rows.

The raster is processed one row of windows at a time. An accumulator spans only the rows the current row
of windows covers (window height x padded width); after each row of windows the rows no later window can
reach are final: they are divided by the summed weights, turned into the requested products and handed to
the writers, which write whole tile rows of a tiled, compressed GeoTIFF. Input rows are read from disk with
windowed reads. Memory therefore grows with the raster's width, never with its height.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import torch

from mantis.data.volumes_io import is_volume_file
from mantis.inference.checkpoint import ModelMeta, ModelSource, resolve_model
from mantis.inference.errors import InputError
from mantis.inference.options import DEFAULT_OUTPUT, PRODUCTS, UINT8_SCALE, OutputSpec, PredictArgs, PredictOptions
from mantis.inference.raster import (
    AtomicFiles,
    BandSpec,
    GeoTiffWriter,
    PngWriter,
    RasterHeader,
    RasterReader,
    RowWriter,
    normalise,
    read_header,
)
from mantis.inference.sliding import WindowForward, _progress, accumulate_windows
from mantis.inference.spec import WindowSpec, check_sides, size_multiple
from mantis.inference.tiling import blend_weights, padded_extent, reflect_indices, window_starts
from mantis.inference.vector import (
    VECTOR_SUFFIXES,
    PolygonStream,
    VectorOptions,
    check_crs,
    require_libraries,
    vector_path,
)
from mantis.inference.volume import (
    VolumeJob,
    is_volume_input,
    plan_volume_folder,
    predict_volume_file,
    run_volume_prediction,
)
from mantis.io.folders import files_by_stem, list_images, match_file
from mantis.io.normalize import missing_pixels

PathLike = str | os.PathLike[str]

UINT8_NODATA = 255  # of uint8 probabilities, round(p * UINT8_SCALE)
#: GDAL block cache while predicting (its default, 5% of RAM, would grow with the raster).
GDAL_CACHE_MB = 32


@dataclass(frozen=True)
class PredictJob:
    """One prediction checked and ready to run: its inputs, their header and the files it will write."""

    inputs: tuple[Path, ...]
    header: RasterHeader
    nodata: tuple[float | None, ...]
    outputs: dict[str, Path]
    vector: Path | None = None
    vector_options: VectorOptions | None = None

    @property
    def files(self) -> list[Path]:
        """Every file the job writes: the rasters, then the polygons."""
        return [*self.outputs.values(), *([self.vector] if self.vector is not None else [])]

    @property
    def done(self) -> bool:
        """Every file of the job exists already (``skip_existing`` leaves the job out)."""
        return all(p.exists() for p in self.files)


def _as_paths(inputs: PathLike | Sequence[PathLike]) -> tuple[Path, ...]:
    if isinstance(inputs, (str, os.PathLike)):
        return (Path(inputs),)
    return tuple(Path(p) for p in inputs)


def _crs_text(crs: Any) -> str:
    if crs is None:
        return "none"
    with contextlib.suppress(Exception):
        return str(crs.to_string())
    return str(crs)


def check_pair(first: RasterHeader, second: RasterHeader) -> None:
    """Refuse two dates that are not the same grid: size, bands, CRS and transform must agree.

    Raises:
        InputError: naming the second file and what differs from the first.
    """
    a, b = first, second
    if (a.height, a.width) != (b.height, b.width):
        raise InputError(f"{b.path}: size {b.width}x{b.height} differs from {a.path}'s {a.width}x{a.height}")
    if a.count != b.count:
        raise InputError(f"{b.path}: has {b.count} bands, {a.path} has {a.count}")
    if a.crs != b.crs:
        raise InputError(f"{b.path}: CRS {_crs_text(b.crs)} differs from {a.path}'s {_crs_text(a.crs)}")
    same = (a.transform is None and b.transform is None) or (
        a.transform is not None and b.transform is not None and a.transform.almost_equals(b.transform, 1e-9)
    )
    if not same:
        raise InputError(
            f"{b.path}: transform {tuple(b.transform or ())} differs from {a.path}'s "
            f"{tuple(a.transform or ())}; the two dates must share one pixel grid"
        )


def _check_bands(header: RasterHeader, meta: ModelMeta, n_inputs: int) -> None:
    if meta.in_channels is not None and header.count != meta.in_channels:
        raise InputError(f"{header.path}: has {header.count} bands, the model takes {meta.in_channels}")
    if meta.band_mean is not None:
        n = len(meta.band_mean)
        if n not in (header.count, header.count * n_inputs) or meta.band_std is None or len(meta.band_std) != n:
            raise InputError(
                f"{header.path}: has {header.count} bands but the checkpoint's band_mean/band_std have "
                f"{n}/{len(meta.band_std or [])} values"
            )


def _check_inputs(paths: Sequence[Path], meta: ModelMeta) -> list[RasterHeader]:
    """The inputs' headers, once the pair is one grid and the bands suit the model."""
    headers = [read_header(p) for p in paths]
    for other in headers[1:]:
        check_pair(headers[0], other)
    _check_bands(headers[0], meta, len(paths))
    return headers


def plan_inputs(inputs: PathLike | Sequence[PathLike], meta: ModelMeta) -> PredictJob:
    """A prediction that writes no file (for :func:`predict_class_map`): its inputs checked as in
    :func:`plan_prediction`.

    Raises:
        InputError: one line naming the file and the problem.
    """
    paths = _as_paths(inputs)
    if len(paths) != (2 if meta.pair else 1):
        raise InputError(f"{paths[0]}: the {meta.task} model takes {2 if meta.pair else 1} image(s), got {len(paths)}")
    headers = _check_inputs(paths, meta)
    return PredictJob(paths, headers[0], tuple(h.nodata for h in headers), {})


def plan_prediction(
    inputs: PathLike | Sequence[PathLike], output_dir: PathLike, meta: ModelMeta, output: OutputSpec = DEFAULT_OUTPUT
) -> PredictJob:
    """Check one prediction before any work: the inputs' headers, the pair's grid, bands, output names.

    Returns:
        The :class:`PredictJob`; outputs are ``<output_dir>/<stem of the first input>_<product>.<tif|png>``,
        polygons (with ``vector``) ``<output_dir>/<stem>_polygons.<gpkg|geojson>``. With ``overwrite`` or
        ``skip_existing`` existing outputs are not refused (:attr:`PredictJob.done` says whether all exist).

    Raises:
        InputError: one line naming the file and the problem.
    """
    paths = _as_paths(inputs)
    if meta.pair and len(paths) != 2:
        raise InputError(f"{paths[0]}: the change-detection model needs two images (a pair), got {len(paths)}")
    if not meta.pair and len(paths) != 1:
        raise InputError(f"{paths[-1]}: the segmentation model takes one image, got {len(paths)}")
    output.check()
    outputs, prob_dtype, output_format, vector = output.outputs, output.prob_dtype, output.output_format, output.vector
    if vector is not None:
        _check_vector(vector, meta)
    headers = _check_inputs(paths, meta)
    if vector is not None:
        check_crs(vector, headers[0].crs, paths[0])
    png = output_format == "png" or (output_format == "auto" and not headers[0].is_gdal)
    if png and prob_dtype == "float32" and any(o != "class" for o in outputs):
        raise InputError(f"{paths[0]}: PNG output cannot hold float32 values; use --format tif or uint8")
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    ext = ".png" if png else ".tif"
    files = {o: out_dir / f"{paths[0].stem}_{o}{ext}" for o in dict.fromkeys(outputs)}
    polygons = None if vector is None else vector_path(out_dir, paths[0].stem, vector)
    job = PredictJob(paths, headers[0], tuple(h.nodata for h in headers), files, polygons, vector)
    if not (output.overwrite or output.skip_existing):
        for f in job.files:
            if f.exists():
                raise InputError(f"{f}: already exists (pass --overwrite to replace it)")
    return job


def _check_vector(vector: VectorOptions, meta: ModelMeta) -> None:
    """The vector libraries are installed and the classes to polygonise exist in the model."""
    require_libraries()
    k = meta.model_kwargs.get("num_classes")
    if k is not None and vector.classes is not None:
        wrong = [c for c in vector.classes if c >= max(int(k), 2)]
        if wrong:
            raise InputError(f"--vector-classes {wrong[0]}: the model predicts classes 0 to {max(int(k), 2) - 1}")


def _spec(product: str, k: int, prob_dtype: str) -> BandSpec:
    if product == "class":
        return BandSpec(1, "uint8", UINT8_NODATA, descriptions=("class",), tags=(("mantis_product", "class"),))
    names = tuple(f"{product} class {i}" for i in range(k))
    tags = (("mantis_product", product),)
    if prob_dtype == "float32":
        return BandSpec(k, "float32", float("nan"), descriptions=names, tags=tags)
    return BandSpec(k, "uint8", UINT8_NODATA, scale=1.0 / UINT8_SCALE, descriptions=names, tags=tags)


def _argmax(values: torch.Tensor) -> torch.Tensor:
    """uint8 index of the largest of K x n x W values (the first on ties); > 0.5 when K is 1."""
    if values.shape[0] == 1:
        return (values[0] > 0.5).to(torch.uint8)
    # K passes over n x W planes: much faster on CPUs than a reduction over the outer axis.
    best, index = values[0], torch.zeros(values.shape[1:], dtype=torch.uint8, device=values.device)
    for k in range(1, values.shape[0]):
        better = values[k] > best
        best = torch.where(better, values[k], best)
        index[better] = k
    return index


def _class_map(values: torch.Tensor, invalid: np.ndarray) -> np.ndarray:
    """n x W uint8 class ids of K x n x W blended probabilities, nodata (255) where the input is invalid."""
    out = _argmax(values).cpu().numpy()
    out[invalid] = UINT8_NODATA
    return out


def _product(
    product: str, values: torch.Tensor, invalid: np.ndarray, prob_dtype: str, classes: np.ndarray | None = None
) -> np.ndarray:
    """K x n x W blended values -> the product's bands, nodata where the input is invalid."""
    if product == "class":
        return (_class_map(values, invalid) if classes is None else classes)[None]
    v = values.cpu().numpy()
    if prob_dtype == "float32":
        out = v.astype(np.float32, copy=True)
        out[:, invalid] = np.nan
        return out
    out = np.rint(np.clip(v, 0.0, 1.0) * UINT8_SCALE).astype(np.uint8)
    out[:, invalid] = UINT8_NODATA
    return out


def _gdal_env(job: PredictJob) -> contextlib.AbstractContextManager[Any]:
    # GDAL's block cache defaults to 5% of RAM; a small one keeps memory flat on large rasters.
    if not job.header.is_gdal and all(p.suffix.lower() not in (".tif", ".tiff") for p in job.outputs.values()):
        return contextlib.nullcontext()
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


@dataclass(frozen=True)
class FinishedRows:
    """Rows of a raster whose blending is complete: every window that covers them has been added.

    Attributes:
        top: the first raster row they hold.
        fields: blended model outputs per field, K x n x W (float32, on the model's device).
        invalid: n x W, pixels without a measurement in an input (nodata, NaN).
        classes: n x W uint8 class map (argmax, nodata 255 where invalid), or ``None`` when not asked for.
    """

    top: int
    fields: dict[str, torch.Tensor]
    invalid: np.ndarray
    classes: np.ndarray | None


def blended_rows(
    job: PredictJob,
    model: Callable[..., Any],
    meta: ModelMeta,
    spec: WindowSpec,
    fields: Sequence[str] = ("segmentation",),
    classes: bool = True,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Generator[FinishedRows, None, None]:
    """Predict ``job``'s inputs strip by strip and yield each band of rows as soon as it is final.

    The one tiled predictor behind ``mantis predict`` (which writes the rows) and ``mantis test`` with
    ``--test_window`` (which scores them): reads, padding, windows, batches and blending are the same.

    Args:
        job: the inputs and their header (:func:`plan_prediction`, or :func:`plan_inputs` for no files).
        model, meta, spec, device, progress: as in :func:`predict_raster`.
        fields: the model output fields to blend.
        classes: also make the class map of ``segmentation`` (which must then be among ``fields``).
    """
    win, step, before = spec.geometry(2)
    h, w = job.header.height, job.header.width
    extents = (padded_extent(h, win[0], before[0]), padded_extent(w, win[1], before[1]))
    col_starts = window_starts(extents[1], win[1], step[1])
    groups = row_groups(window_starts(extents[0], win[0], step[0]), len(col_starts), spec.batch_size)
    col_index = reflect_indices(-before[1], extents[1] - before[1], w)
    forward = WindowForward(
        model,
        2,
        tta=spec.tta,
        precision=spec.precision,
        device=device,
        fields=list(fields),
        cuda_graphs=spec.cuda_graphs,
    )
    # Accumulate where the model runs: on a GPU only the finished rows travel back.
    acc_device = forward.device
    weights = blend_weights(win, step, spec.blend, spec.sigma_scale).to(acc_device)
    sums: dict[str, torch.Tensor] = {}
    acc_rows = max(g[-1] - g[0] + win[0] for g in groups)
    weight_sum = torch.zeros((acc_rows, extents[1]), dtype=torch.float32, device=acc_device)
    n_in = len(job.inputs)
    stats: list[tuple[Any, Any]] = []
    for i in range(n_in):
        if meta.band_mean is None or meta.band_std is None:
            stats.append((None, None))
        else:
            c = job.header.count
            off = c * i if len(meta.band_mean) == c * n_in and n_in > 1 else 0
            stats.append((meta.band_mean[off : off + c], meta.band_std[off : off + c]))

    def load(readers: Sequence[RasterReader], group: Sequence[int]) -> tuple[list[torch.Tensor], np.ndarray]:
        """Normalised 1 x C x rows x padded-width strips of every input, and their nodata mask."""
        top = group[0] - before[0]
        row_index = reflect_indices(top, top + group[-1] - group[0] + win[0], h)
        tensors, invalid = [], np.zeros((row_index.size, extents[1]), dtype=bool)
        for reader, nodata, (mean, std) in zip(readers, job.nodata, stats):
            raw = reader.read(row_index, col_index)
            bad = missing_pixels(raw, nodata)
            x = normalise(raw, mean, std)
            x[:, bad] = 0.0  # nodata must not leak NaN or sentinels into neighbouring pixels
            invalid |= bad
            strip = torch.from_numpy(np.ascontiguousarray(x))[None]
            # Page-locked on the reading thread, so that the copy to a GPU does not hold up the model.
            tensors.append(strip.pin_memory() if acc_device.type == "cuda" else strip)
        return tensors, invalid

    bar = _progress(sum(len(g) for g in groups) * len(col_starts), progress, "win", desc=job.inputs[0].name)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_gdal_env(job))
        readers = [stack.enter_context(RasterReader(p)) for p in job.inputs]
        # One thread reads and normalises the next strip while the model runs on this one.
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        if bar is not None:
            stack.callback(bar.close)
        ahead = pool.submit(load, readers, groups[0])
        for k, group in enumerate(groups):
            strips, invalid = ahead.result()
            if k + 1 < len(groups):
                ahead = pool.submit(load, readers, groups[k + 1])
            r = group[0]
            accumulate_windows(
                forward,
                tuple(t.to(acc_device, non_blocking=True) for t in strips),
                [(g - r, c) for g in group for c in col_starts],
                win,
                weights,
                sums,
                weight_sum,
                spec.batch_size,
                bar.update if bar is not None else None,
            )
            done = (groups[k + 1][0] if k + 1 < len(groups) else group[-1] + win[0]) - r
            lo, hi = max(r, before[0]), min(r + done, before[0] + h)
            if hi > lo:
                band = slice(lo - r, hi - r)
                cut = slice(before[1], before[1] + w)
                ws = weight_sum[band, cut]
                blended = {f: sums[f][0, :, band, cut] / ws for f in fields}
                mask = invalid[band, cut]
                class_map = _class_map(blended["segmentation"], mask) if classes else None
                yield FinishedRows(lo - before[0], blended, mask, class_map)
            _shift(sums, weight_sum, done)


class InOrder:
    """Calls run on an executor one at a time, in order, with at most one waiting: work that overlaps the
    caller's next step (writing a band of rows while the model runs on the next strip) in bounded memory."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.pending: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Wait for the previous call (raising its error), then start ``fn(*args)``."""
        self.wait()
        self.pending = self.pool.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the call in flight; its error is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def drain(self) -> None:
        """Wait for the call in flight, ignoring its error (the caller is failing already)."""
        with contextlib.suppress(BaseException):
            self.wait()


def run_prediction(
    job: PredictJob, model: Callable[..., Any], meta: ModelMeta, options: PredictOptions
) -> dict[str, Path]:
    """Run a planned prediction strip by strip; the outputs appear only once complete.

    Arguments are those of :func:`predict_raster` (``options`` built from its keywords).
    """
    prob_dtype = options.output.prob_dtype
    fields = list(dict.fromkeys([PRODUCTS[p] for p in job.outputs] + (["segmentation"] if job.vector else [])))
    need_classes = job.vector is not None or "class" in job.outputs
    products = list(job.outputs)
    with contextlib.ExitStack() as stack:
        temps = stack.enter_context(AtomicFiles(job.files, keep_suffix=VECTOR_SUFFIXES))
        writers: list[RowWriter] = []
        polygons = _polygon_writer(job, meta, temps[-1]) if job.vector is not None else None

        def write(done: FinishedRows) -> None:
            for p, writer in zip(products, writers):
                values = done.fields[PRODUCTS[p]]
                writer.write(done.top, _product(p, values, done.invalid, prob_dtype, done.classes))
            if polygons is not None and done.classes is not None:
                polygons.add(done.classes, done.fields["segmentation"].cpu().numpy())

        rows = blended_rows(job, model, meta, options.window, fields, need_classes, options.device, options.progress)
        stack.callback(rows.close)  # readers and the progress bar close even when a writer fails
        # One thread writes a band of rows while the model runs on the next strip.
        background = InOrder(stack.enter_context(ThreadPoolExecutor(max_workers=1)))
        try:
            for done in rows:
                if not writers:
                    writers = [
                        _writer(temp, final, job.header, _spec(p, done.fields[PRODUCTS[p]].shape[0], prob_dtype))
                        for (p, final), temp in zip(job.outputs.items(), temps)
                    ]
                # Copied here, where the device holds this band's work only; the next strip's is not queued yet.
                background.submit(write, dataclasses.replace(done, fields={k: v.cpu() for k, v in done.fields.items()}))
            background.wait()
            for writer in writers:
                writer.close()
            if polygons is not None:
                polygons.close()
        except BaseException:
            background.drain()  # no write may still run while the files are removed
            for writer in writers:
                writer.abort()
            if polygons is not None:
                polygons.abort()
            raise
    return {**job.outputs, **({"polygons": job.vector} if job.vector is not None else {})}


def predict_class_map(
    job: PredictJob,
    model: Callable[..., Any],
    meta: ModelMeta,
    spec: WindowSpec,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The H x W uint8 class map ``mantis predict`` would write for ``job`` (nodata 255), in memory."""
    out = np.empty((job.header.height, job.header.width), dtype=np.uint8)
    for done in blended_rows(job, model, meta, spec, ("segmentation",), True, device):
        assert done.classes is not None
        out[done.top : done.top + done.classes.shape[0]] = done.classes
    return out


def _polygon_writer(job: PredictJob, meta: ModelMeta, temp: Path) -> PolygonStream:
    """The streaming polygoniser of ``job``, writing to ``temp``."""
    assert job.vector is not None and job.vector_options is not None
    return PolygonStream(temp, job.vector.stem, job.vector_options, job.header, meta.class_names, meta.pair)


def row_groups(rows: Sequence[int], n_cols: int, batch_size: int) -> list[list[int]]:
    """Consecutive rows of windows processed together so that model batches come out nearly full.

    With ``n_cols`` windows a row, groups of m rows give ``m * n_cols`` windows; m (at most enough rows for two
    batches) is the smallest with the fullest batches. Wide rasters keep one row a group.
    """
    best, best_fill = 1, 0.0
    for m in range(1, max(1, math.ceil(2 * batch_size / max(n_cols, 1))) + 1):
        n = m * n_cols
        fill = n / (math.ceil(n / batch_size) * batch_size)
        if fill > best_fill + 1e-9:
            best, best_fill = m, fill
    return [list(rows[i : i + best]) for i in range(0, len(rows), best)]


def _writer(temp: Path, final: Path, header: RasterHeader, spec: BandSpec) -> RowWriter:
    if final.suffix == ".png":
        return PngWriter(temp, header, spec)
    return GeoTiffWriter(temp, header, spec)


def _shift(sums: dict[str, torch.Tensor], weight_sum: torch.Tensor, n: int) -> None:
    """Move the accumulator up by ``n`` finished rows and clear the rows that open below, in place."""
    for acc in (*sums.values(), weight_sum):
        axis = acc.ndim - 2
        height = acc.shape[axis]
        # Copies of at most n rows never overlap their source: no temporary buffer needed.
        for top in range(0, height - n, n):
            rows = min(n, height - n - top)
            acc.narrow(axis, top, rows).copy_(acc.narrow(axis, top + n, rows))
        acc.narrow(axis, max(height - n, 0), min(n, height)).zero_()


def check_window(model: Any, spec: WindowSpec) -> None:
    """Refuse, before any file is read, a window whose sides the network cannot take.

    Raises:
        InputError: naming the window, the multiple it needs and the nearest valid sizes.
    """
    check_sides(spec.geometry(2)[0], size_multiple(model))


def predict_raster(
    model: ModelSource,
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    meta: ModelMeta | None = None,
    **options: Unpack[PredictArgs],
) -> dict[str, Path]:
    """Predict one raster (segmentation), one pair (change detection) or one volume of any size, in bounded memory.

    Args:
        model: a model (``model(x)`` / ``model(x1, x2)``, eval mode), or one or more checkpoint paths
            (``.ckpt`` or export folders; several are averaged as an ensemble).
        inputs: one image path, or two for change detection; PNG, JPEG, TIFF or GeoTIFF, any size/bands. Or one
            volume file (``.nii``, ``.nii.gz`` or ``.npy``, channels on a 4th axis) for a 3D network
            (:mod:`mantis.inference.volume`): ``window`` is then one side or three, each cut to the volume's
            size; outputs follow the input's format (NIfTI with its affine and spacing, or ``.npy``; uint8
            probabilities in NIfTI files carry the slope 1/254); ``output_format`` and ``vector`` are refused.
        output_dir: folder for the outputs (created if needed).
        meta: task, bands and normalisation of ``model`` (read from checkpoints; default: task from the
            number of inputs, no band check, uint8 images divided by 255).
        **options: the keywords of :class:`~mantis.inference.options.PredictArgs`:
            ``spec`` (:class:`~mantis.inference.spec.WindowSpec`: window (default 256; must suit the model),
            stride or overlap (default overlap 0.5; the paper: 256 windows, stride 64), pad, blend,
            sigma_scale, batch_size, tta, precision) or any of its fields, e.g. ``window=512, stride=64``;
            ``output`` (:class:`~mantis.inference.options.OutputSpec`: outputs (default ``("class",)``),
            prob_dtype, output_format, overwrite, skip_existing, vector) or any of its fields, e.g.
            ``outputs=("class", "prob")``; ``device`` (default: the model's); ``progress`` (default True).

    Returns:
        Product name -> path of the written file (with ``skip_existing``, of the existing files when all exist).

    Raises:
        InputError: before any work, if the inputs disagree (size, bands, CRS, transform), do not fit the
            model, or the outputs exist.
        TypeError: an unknown keyword.
    """
    settings = PredictOptions.build(**options)
    paths = _as_paths(inputs)
    fn, meta = resolve_model(model, meta, settings.device, len(paths))
    if is_volume_file(paths[0]):
        return predict_volume_file(fn, paths, output_dir, meta, settings)
    check_window(fn, settings.window)
    job = plan_prediction(paths, output_dir, meta, settings.output)
    if settings.output.skip_existing and job.done:
        return {**job.outputs, **({"polygons": job.vector} if job.vector is not None else {})}
    return run_prediction(job, fn, meta, settings)


def pair_folders(folders: Sequence[Path]) -> list[tuple[Path, ...]]:
    """Inputs for each file name of the first folder: ``(path,)`` or ``(date1, date2)`` by equal names.

    Files pair by the same name, else the same stem, as in training (:mod:`mantis.io.folders`).

    Raises:
        DataError: a folder is missing or empty, a file has no counterpart in the other folder, or two files
            of one folder share a stem.
    """
    first = list_images(folders[0])
    if not first:
        raise InputError(f"{folders[0]}: no PNG, JPEG or TIFF files")
    if len(folders) == 1:
        files_by_stem(first)  # a.tif and a.png would both write a_class.*: refused, as in training
        return [(p,) for p in first]
    # The training rule (mantis.io.folders): the same name, else the same stem.
    others = list_images(folders[1])
    second, back = files_by_stem(others), files_by_stem(first)
    pairs = [(p, match_file(p.name, second, folders[1])) for p in first]
    for p, match in pairs:
        if match is None:
            raise InputError(f"{p}: has no counterpart {p.name} in {folders[1]}")
    for q in others:
        if match_file(q.name, back, folders[0]) is None:
            raise InputError(f"{q}: has no counterpart {q.name} in {folders[0]}")
    return [(p, q) for p, q in pairs if q is not None]


def predict_folder(
    model: ModelSource,
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    meta: ModelMeta | None = None,
    **options: Unpack[PredictArgs],
) -> list[dict[str, Path]]:
    """Predict every image of a folder, every same-named pair of two folders (change detection), or every
    volume of a folder (a 3D network; e.g. a Decathlon task's ``imagesTs``).

    Every file is checked (headers, pairs, bands, outputs) before the first prediction starts.

    Args:
        model, meta, **options: as in :func:`predict_raster` (``skip_existing`` leaves out inputs whose
            outputs all exist already: resume an interrupted run).
        inputs: one folder, or two folders (date 1, date 2) holding files of the same names.
        output_dir: folder for all outputs.

    Returns:
        For each input predicted, product name -> path written.
    """
    settings = PredictOptions.build(**options)
    folders = _as_paths(inputs)
    fn, meta = resolve_model(model, meta, settings.device, len(folders))
    return [run_job(job, fn, meta, settings) for job in plan_jobs(fn, folders, output_dir, meta, settings)]


Job = PredictJob | tuple[VolumeJob, WindowSpec]  # a raster (or pair), or a volume with its fitted windows


def plan_jobs(
    model: Any, folders: Sequence[Path], output_dir: PathLike, meta: ModelMeta, options: PredictOptions
) -> list[Job]:
    """Every input of :func:`predict_folder`'s folders checked and planned: rasters or pairs, or volumes with
    their windows cut to each.

    Raises:
        InputError: one line naming the first file at fault.
    """
    if is_volume_input(folders[0]):  # NIfTI/.npy volumes for a 3D network: mantis.inference.volume
        if len(folders) != 1:
            raise InputError(f"{folders[-1]}: volumes are predicted from one folder (change detection takes images)")
        return list(plan_volume_folder(folders[0], output_dir, meta, options, size_multiple(model)))
    check_window(model, options.window)
    return list(plan_folder(folders, output_dir, meta, options.output))


def run_job(job: Job, model: Any, meta: ModelMeta, options: PredictOptions) -> dict[str, Path]:
    """Run one job of :func:`plan_jobs`; returns product name -> path written."""
    if isinstance(job, PredictJob):
        return run_prediction(job, model, meta, options)
    volume, windows = job
    return run_volume_prediction(volume, model, meta, options.replace(window=windows))


def plan_folder(
    inputs: PathLike | Sequence[PathLike], output_dir: PathLike, meta: ModelMeta, output: OutputSpec = DEFAULT_OUTPUT
) -> list[PredictJob]:
    """Check every file of one folder (or a pair of folders) and plan its predictions, in name order.

    Arguments are those of :func:`predict_folder`; with ``skip_existing`` inputs whose outputs all exist are
    left out.

    Raises:
        InputError: one line naming the first file at fault.
    """
    jobs = [plan_prediction(group, output_dir, meta, output) for group in pair_folders(_as_paths(inputs))]
    return [job for job in jobs if not (output.skip_existing and job.done)]
