"""``mantis predict`` on series and tables: whole-sample classifiers and regressors, one CSV row per input.

A checkpoint of ``ClassificationTask`` or ``RegressionTask`` keeps, besides the network, what its data module
saved (``datamodule_hyper_parameters``): for series (``SeriesDataModule``) the training length and the
unequal-length policy, for tables (``TabularDataModule``) the feature columns in their order. New inputs are
prepared by the training rules (:mod:`mantis.inference.series_inputs`, :mod:`mantis.inference.table_inputs`) and
standardised with the checkpoint's ``band_mean``/``band_std``. Every input is read and checked before the first
prediction; each CSV appears only once complete (a temporary name, then a rename).

Output: ``<output>/<input stem>_predictions.csv`` holding ``id`` (a table's ``id`` column when it has one that is
not a feature, else the row's or series' position, from 0), then ``class`` and one ``prob_<class>`` column per
class (classification), or one column per output named as the target, in its units (regression).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import torch
from torch import nn

from mantis.inference.checkpoint import ModelMeta, _build, _load_state, _model_state, read_checkpoint
from mantis.inference.errors import InputError
from mantis.inference.options import PredictArgs, PredictOptions
from mantis.inference.raster import AtomicFiles
from mantis.inference.series_inputs import SERIES_SUFFIXES, read_series_inputs
from mantis.inference.sliding import _progress, autocast_context
from mantis.inference.table_inputs import TABLE_SUFFIXES, read_table_inputs

__all__ = ["RecordModel", "is_record_input", "load_record_model", "predict_records", "predict_records_cli"]

RECORD_TASKS = ("classification", "regression")
RECORD_SUFFIXES = tuple(dict.fromkeys((*SERIES_SUFFIXES, *TABLE_SUFFIXES)))
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class RecordModel:
    """A whole-sample network with what prediction needs to prepare its inputs and read its outputs.

    Attributes:
        network: the model in eval mode (B x C x T series or B x F rows -> B x K).
        source: the checkpoint it came from (named in messages).
        task: ``classification`` (K logits) or ``regression`` (K values, standardised).
        kind: ``series`` or ``table``.
        names: the K class names, or the names of the regression outputs.
        in_channels: channels per series, or features per row.
        band_mean: per-channel (per-feature) means of the training data, or ``None``.
        band_std: the matching standard deviations.
        target_mean: regression: the training target's mean per output (``None``: the network's own units).
        target_std: the matching standard deviations.
        data: the data module's settings kept in the checkpoint.
    """

    network: nn.Module
    source: Path
    task: str
    kind: str
    names: list[str]
    in_channels: int | None
    band_mean: list[float] | None
    band_std: list[float] | None
    target_mean: list[float] | None
    target_std: list[float] | None
    data: Mapping[str, Any]


def _floats(value: Any) -> list[float] | None:
    return None if value is None else [float(v) for v in value]


def load_record_model(path: PathLike, device: torch.device | str = "cpu") -> RecordModel:
    """The network of a series or table checkpoint and its settings; one-line :class:`InputError` otherwise."""
    from mantis.models.registry import model_info

    source = Path(path)
    if source.is_dir():
        raise InputError(f"{source}: export folders keep no data settings; give the .ckpt of a series or table model")
    ckpt = read_checkpoint(source)
    hp = ckpt["hyper_parameters"]
    task = hp.get("task")
    if task not in RECORD_TASKS:
        raise InputError(f"{source}: a {task} checkpoint; series and tables need a classification or regression model")
    kwargs = hp.get("model_kwargs") or {}
    if not isinstance(hp.get("model"), str) or not isinstance(kwargs, Mapping):
        raise InputError(f"{source}: hyper-parameters lack the model name ('model') or its 'model_kwargs'")
    network = _build(ModelMeta(model=hp["model"], model_kwargs=dict(kwargs)), source)
    _load_state(network, _model_state(ckpt["state_dict"]), source)
    data = ckpt.get("datamodule_hyper_parameters") or {}
    table = model_info(hp["model"]).spatial_dims == ()  # feature vectors, as the registry says
    needed = ("feature_names",) if table else ("series_length", "unequal_length")
    if any(key not in data for key in needed):
        what = "feature columns" if table else "series length and unequal_length policy"
        raise InputError(
            f"{source}: keeps no {what} (a checkpoint of another data module, or from before mantis kept them); "
            "train it again to predict with it"
        )
    k = int(kwargs.get("num_classes", 2))
    names = [str(n) for n in hp.get("class_names") or []]
    if len(names) != k:
        names = [str(i) for i in range(k)] if task == "classification" else [f"output_{i}" for i in range(k)]
    return RecordModel(
        network=network.to(device).eval(),
        source=source,
        task=str(task),
        kind="table" if table else "series",
        names=names,
        in_channels=None if kwargs.get("in_channels") is None else int(kwargs["in_channels"]),
        band_mean=_floats(hp.get("band_mean")),
        band_std=_floats(hp.get("band_std")),
        target_mean=_floats(hp.get("target_mean")),
        target_std=_floats(hp.get("target_std")),
        data=dict(data),
    )


def _record_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in RECORD_SUFFIXES and not p.name.startswith(".")
    )


def is_record_input(path: Path) -> bool:
    """Whether ``mantis predict`` should treat ``path`` as series or table rows: a ``.ts``, ``.csv``, ``.parquet``
    or ``.pq`` file, or a folder holding such files and no images or volumes."""
    if not path.is_dir():
        return path.suffix.lower() in RECORD_SUFFIXES
    from mantis.data.volumes_io import list_volumes
    from mantis.io.folders import list_images

    return bool(_record_files(path)) and not list_images(path) and not list_volumes(path)


def _inputs(model: RecordModel, path: Path) -> tuple[list[str], np.ndarray]:
    """Ids and prepared inputs (N x C x T series or N x F rows) of one file, checked against the model."""
    suffixes = SERIES_SUFFIXES if model.kind == "series" else TABLE_SUFFIXES
    if path.suffix.lower() not in suffixes:
        wanted = " or ".join(suffixes)
        raise InputError(f"{path}: {model.source} is a {model.kind} model, which reads {wanted} files")
    if model.kind == "series":
        return read_series_inputs(path, model.data, model.in_channels, model.band_mean, model.band_std)
    return read_table_inputs(path, [str(f) for f in model.data["feature_names"]], model.band_mean, model.band_std)


def _outputs(model: RecordModel, x: np.ndarray, batch_size: int, precision: str, bar: Any) -> np.ndarray:
    """N x K class probabilities, or values in the target's units, of prepared inputs ``x``."""
    device = next(iter(model.network.parameters())).device
    scale = shift = None
    if model.task == "regression" and model.target_mean is not None and model.target_std is not None:
        scale, shift = torch.tensor(model.target_std, device=device), torch.tensor(model.target_mean, device=device)
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[start : start + batch_size]).to(device)
        with torch.inference_mode(), autocast_context(device, precision):
            y = model.network(batch).float()
        if model.task == "classification":
            y = torch.softmax(y, dim=1)
        elif scale is not None and shift is not None:
            y = y * scale + shift  # as RegressionTask.predict_values
        out.append(y.cpu().numpy())
        if bar is not None:
            bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros((0, len(model.names)), np.float32)


def _text(value: np.floating[Any]) -> str:
    return str(np.float32(value))  # the shortest text that reads back as the same float32


def _write_csv(path: Path, model: RecordModel, ids: Sequence[str], values: np.ndarray) -> None:
    """The predictions CSV, under a temporary name renamed when complete."""
    if model.task == "classification":
        header = ["id", "class", *(f"prob_{n}" for n in model.names)]
        rows = ([i, model.names[int(v.argmax())], *map(_text, v)] for i, v in zip(ids, values))
    else:
        header = ["id", *model.names]
        rows = ([i, *map(_text, v)] for i, v in zip(ids, values))
    with AtomicFiles([path]) as (temp,), open(temp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _plan(inputs: Sequence[Path], output_dir: Path, overwrite: bool, skip_existing: bool) -> list[tuple[Path, Path]]:
    """``(input, output)`` of every file to predict; inputs whose output exists are refused or skipped."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = _record_files(path)
            if not found:
                raise InputError(f"{path}: holds no .ts, .csv, .parquet or .pq file")
            files += found
        else:
            files.append(path)
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"{output_dir}: exists and is not a folder")
    jobs: list[tuple[Path, Path]] = []
    taken: dict[Path, Path] = {}
    for path in files:
        out = output_dir / f"{path.stem}_predictions.csv"
        if out in taken:
            raise InputError(f"{path}: has the stem of {taken[out]}; both would write {out.name}")
        taken[out] = path
        if out.exists() and skip_existing:
            continue
        if out.exists() and not overwrite:
            raise InputError(f"{out}: already exists (pass --overwrite to replace it)")
        jobs.append((path, out))
    return jobs


def _agree(models: Sequence[RecordModel]) -> None:
    """Refuse an ensemble whose members would average different things, naming the first that differs."""
    first = models[0]
    for other in models[1:]:
        for what, a, b in (
            ("task", first.task, other.task),
            ("data kind", first.kind, other.kind),
            ("class or output names", first.names, other.names),
        ):
            if a != b:
                raise InputError(
                    f"{other.source}: its {what} ({b}) differs from {first.source}'s ({a}); cannot average"
                )


def predict_records(
    checkpoint: PathLike | RecordModel | Sequence[PathLike | RecordModel],
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    **options: Unpack[PredictArgs],
) -> list[dict[str, Path]]:
    """Predict every series or table row of ``inputs`` with a whole-sample checkpoint; one CSV per input file.

    Args:
        checkpoint: a ``.ckpt`` of ``ClassificationTask``/``RegressionTask`` trained on ``SeriesDataModule`` or
            ``TabularDataModule`` data, or a :class:`RecordModel`; several: an ensemble, whose class
            probabilities (or regression values) are averaged, each member preparing the inputs its own way.
        inputs: files (``.ts``/``.csv`` series, ``.csv``/``.parquet``/``.pq`` tables) or folders of them.
        output_dir: where ``<input stem>_predictions.csv`` go (created if needed).
        options: the keywords of the other prediction functions (:class:`~mantis.inference.options.PredictArgs`);
            those that apply to whole samples: ``device`` (default CPU), ``batch_size`` (series or rows per
            network call), ``precision`` (``fp32``, or ``bf16`` autocast where supported), ``overwrite``,
            ``skip_existing`` (leave out inputs whose output exists) and ``progress`` (a bar per file).

    Returns:
        For each file predicted, ``{"predictions": path written}``.

    Raises:
        InputError: before any file is written, one line naming the file and the problem.
    """
    opts = PredictOptions.build(**options)
    device = opts.device or "cpu"
    sources = [checkpoint] if isinstance(checkpoint, (str, os.PathLike, RecordModel)) else list(checkpoint)
    if not sources:
        raise InputError("no checkpoint given")
    models = [s if isinstance(s, RecordModel) else load_record_model(s, device) for s in sources]
    _agree(models)
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    jobs = _plan(paths, Path(output_dir), opts.output.overwrite, opts.output.skip_existing)
    # every file checked by every member before the first prediction
    prepared = [[_inputs(model, path) for model in models] for path, _ in jobs]
    written = []
    unit = "series" if models[0].kind == "series" else "rows"
    batch, precision = opts.window.batch_size, opts.window.precision
    for (path, out), inputs_of in zip(jobs, prepared):
        ids = inputs_of[0][0]
        bar = _progress(len(ids) * len(models), opts.progress, unit, desc=path.name)
        try:
            values = np.mean([_outputs(m, x, batch, precision, bar) for m, (_, x) in zip(models, inputs_of)], 0)
        finally:
            if bar is not None:
                bar.close()
        _write_csv(out, models[0], ids, values.astype(np.float32))
        written.append({"predictions": out})
    return written


def predict_records_cli(inputs: Sequence[Path], args: Any, options: PredictOptions) -> list[dict[str, Path]]:
    """``mantis predict`` on series or table files (or a folder of them): the options that apply to them."""
    refused = [
        ("--vector", bool(getattr(args, "vector", None))),
        ("--tta", bool(args.tta)),
        ("--compile", bool(getattr(args, "compile", False))),
        ("--cuda-graphs", bool(getattr(args, "cuda_graphs", False))),
        ("--format", getattr(args, "format", "auto") != "auto"),
        ("--devices/--num-nodes", args.devices != 1 or args.num_nodes != 1),
        ("--outputs boundary/distance", bool(set(args.outputs) - {"class", "prob"})),
    ]
    for flag, given in refused:
        if given:
            raise InputError(f"{inputs[0]}: {flag} does not apply to series and table rows")
    if len(inputs) != 1:
        raise InputError(f"{inputs[-1]}: series and tables are predicted from one file or folder")
    return predict_records(args.checkpoint, inputs, args.output, **options.keywords())
