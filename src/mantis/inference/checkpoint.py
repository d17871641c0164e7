"""Loading models from training checkpoints and export directories, without unpickling code.

Two sources are understood:

- a Lightning ``.ckpt`` from Mantis' training tasks, loaded with ``torch.load(weights_only=True)``; its
  ``hyper_parameters`` hold ``model`` (registry name), ``model_kwargs``, ``task`` and optionally
  ``band_mean``/``band_std``; its ``state_dict`` keys are prefixed ``model.``;
- an export directory written by :func:`save_pretrained`: ``model.safetensors`` plus ``config.json``
  holding the same hyper-parameter keys.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mantis.inference.ensemble import ModelEnsemble
from mantis.inference.errors import InputError

TASKS = ("segmentation", "change_detection")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CONFIG_VERSION = 1


@dataclass
class ModelMeta:
    """What prediction needs to know about a model besides its weights.

    Attributes:
        model: registry name for ``mantis.create_model`` (``None`` for a model built by hand).
        model_kwargs: keyword arguments for ``create_model``.
        task: ``"segmentation"`` (``model(x)``) or ``"change_detection"`` (``model(x1, x2)``).
        band_mean: per-band mean subtracted from the images before the model (``None``: see
            :func:`mantis.inference.raster.normalise`).
        band_std: per-band standard deviation the images are divided by after the mean.
        class_names: a name per class, as trained (``None``: not recorded).
        intensity_range: volumes: ``[low, high]`` every voxel was clipped to before the statistics (the data
            module's ``intensity_range``, e.g. a CT window), or ``None``.
    """

    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "segmentation"
    band_mean: list[float] | None = None
    band_std: list[float] | None = None
    class_names: list[str] | None = None
    intensity_range: list[float] | None = None

    @property
    def in_channels(self) -> int | None:
        """Bands the model takes per image (per date for change detection), if known."""
        value = self.model_kwargs.get("in_channels")
        return None if value is None else int(value)

    @property
    def pair(self) -> bool:
        """Whether the model takes two images (change detection)."""
        return self.task == "change_detection"

    def to_config(self) -> dict[str, Any]:
        """The JSON-ready dict stored as ``config.json`` in an export directory."""
        return {"config_version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], source: str | os.PathLike[str]) -> ModelMeta:
        """Read the keys Mantis' tasks save as hyper-parameters; one-line :class:`InputError` if bad."""
        name = hparams.get("model")
        if not isinstance(name, str):
            raise InputError(f"{source}: hyper-parameters lack the model name ('model')")
        kwargs = hparams.get("model_kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise InputError(f"{source}: 'model_kwargs' must be a mapping, got {type(kwargs).__name__}")
        task = str(hparams.get("task", "segmentation"))
        if task not in TASKS:
            raise InputError(f"{source}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
        mean, std = hparams.get("band_mean"), hparams.get("band_std")
        names = hparams.get("class_names")
        if (mean is None) != (std is None):
            raise InputError(f"{source}: 'band_mean' and 'band_std' must be given together")
        window = hparams.get("intensity_range")
        if window is not None and not (
            isinstance(window, (list, tuple)) and len(window) == 2 and window[0] < window[1]
        ):
            raise InputError(f"{source}: 'intensity_range' must be [low, high] with low < high, got {window!r}")
        return cls(
            model=name,
            model_kwargs=dict(kwargs),
            task=task,
            band_mean=None if mean is None else [float(v) for v in mean],
            band_std=None if std is None else [float(v) for v in std],
            class_names=[str(n) for n in names] if isinstance(names, (list, tuple)) else None,
            intensity_range=None if window is None else [float(v) for v in window],
        )


def _build(meta: ModelMeta, source: str | os.PathLike[str]) -> nn.Module:
    from mantis.models.registry import create_model

    assert meta.model is not None
    try:
        return create_model(meta.model, **meta.model_kwargs)
    except (ValueError, TypeError) as error:
        raise InputError(f"{source}: cannot build model {meta.model!r}: {error}") from None


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    try:
        result = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as error:  # shape mismatches raise even when not strict
        lines = [line.strip() for line in str(error).splitlines() if "mismatch" in line]
        raise InputError(f"{source}: weights do not fit the model: {lines[0] if lines else error}") from None
    _report_mismatch(list(result.missing_keys), list(result.unexpected_keys), source)


def _report_mismatch(missing: list[str], unexpected: list[str], source: str | os.PathLike[str]) -> None:
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise InputError(f"{source}: weights do not fit the model: {', '.join(parts)}")


def _model_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    # Lightning prefixes the wrapped model's keys with "model."; other keys (losses, metrics) are not ours.
    prefixed = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return prefixed if prefixed else {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The contents of a Lightning ``.ckpt`` of Mantis, loaded safely (tensors and plain containers only).

    The one reader of checkpoint files (training's ``--ckpt_path`` and prediction both use it).

    Raises:
        InputError: the file is missing, does not load with ``weights_only=True``, or lacks ``state_dict``
            and ``hyper_parameters``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{p}: not a checkpoint that loads safely with weights_only=True ({first})") from None
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise InputError(f"{p}: not a Mantis checkpoint (needs 'state_dict' and 'hyper_parameters')")
    return ckpt


def _load_ckpt(path: Path, device: torch.device) -> tuple[nn.Module, ModelMeta]:
    ckpt = read_checkpoint(path)
    hparams = dict(ckpt["hyper_parameters"])
    data = ckpt.get("datamodule_hyper_parameters") or {}
    if data.get("intensity_range") is not None:  # kept by the volume data module, applied before the statistics
        hparams.setdefault("intensity_range", data["intensity_range"])
    meta = ModelMeta.from_hparams(hparams, path)
    model = _build(meta, path)
    _load_state(model, _model_state(ckpt["state_dict"]), path)
    return model.to(device).eval(), meta


def _load_dir(path: Path, device: torch.device) -> tuple[nn.Module, ModelMeta]:
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise InputError(f"{path}: not an export directory (no {required.name})")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{config_path}: not valid JSON ({error})") from None
    meta = ModelMeta.from_hparams(config, config_path)
    model = _build(meta, config_path)
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    try:
        missing, unexpected = load_safetensors(model, weights_path, strict=False)
    except (SafetensorError, OSError) as error:
        raise InputError(f"{weights_path}: cannot read weights ({error})") from None
    _report_mismatch(sorted(missing), sorted(unexpected), weights_path)
    return model.to(device).eval(), meta


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Load a model and its :class:`ModelMeta` from a ``.ckpt`` or an export directory.

    Nothing is unpickled beyond tensors and plain containers (``weights_only=True``).

    Args:
        path: a Lightning checkpoint file, or a directory written by :func:`save_pretrained`.
        device: where to put the model.

    Returns:
        ``(model, meta)``, the model in eval mode.

    Raises:
        InputError: the file is missing, unsafe, not a Mantis checkpoint, or its weights do not fit.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such checkpoint")
    dev = torch.device(device)
    return _load_dir(p, dev) if p.is_dir() else _load_ckpt(p, dev)


def load_pretrained(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> nn.Module:
    """The model (in eval mode) stored in an export directory or checkpoint, in one line."""
    return load_model(path, device)[0]


def check_compatible(metas: Sequence[ModelMeta], sources: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse to ensemble checkpoints that differ in task, input bands, classes or normalisation."""
    first = metas[0]
    for meta, src in zip(metas[1:], sources[1:]):
        for what, a, b in (
            ("task", first.task, meta.task),
            ("in_channels", first.in_channels, meta.in_channels),
            ("num_classes", first.model_kwargs.get("num_classes"), meta.model_kwargs.get("num_classes")),
            ("band_mean", first.band_mean, meta.band_mean),
            ("band_std", first.band_std, meta.band_std),
            ("intensity_range", first.intensity_range, meta.intensity_range),
        ):
            if a != b:
                raise InputError(f"{src}: {what} {b!r} differs from {sources[0]}'s {a!r}; cannot ensemble them")


def load_models(
    paths: Sequence[str | os.PathLike[str]], device: torch.device | str = "cpu"
) -> tuple[nn.Module, ModelMeta]:
    """Load one checkpoint, or several as a :class:`ModelEnsemble` averaging their outputs.

    Raises:
        InputError: a checkpoint cannot be loaded, or they disagree on task, bands, classes or normalisation.
    """
    if not paths:
        raise InputError("no checkpoint given")
    loaded = [load_model(p, device) for p in paths]
    metas = [m for _, m in loaded]
    check_compatible(metas, paths)
    if len(loaded) == 1:
        return loaded[0]
    return ModelEnsemble([m for m, _ in loaded]).eval(), metas[0]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_pretrained(model: nn.Module, meta: ModelMeta, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    Returns:
        The directory, loadable with :func:`load_pretrained`.
    """
    from safetensors.torch import save_model

    if meta.model is None:
        raise InputError("cannot export a model without its registry name (ModelMeta.model)")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS_FILE), metadata={"format": "pt", "model": meta.model})
    (out / WEIGHTS_FILE).chmod(0o666 & ~_umask())  # safetensors writes 0600; give the usual permissions
    (out / CONFIG_FILE).write_text(json.dumps(meta.to_config(), indent=2, sort_keys=True) + "\n")
    return out


#: A model, or the checkpoint paths to load it from (several: an ensemble).
ModelSource = nn.Module | Callable[..., Any] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def resolve_model(
    model: ModelSource, meta: ModelMeta | None, device: torch.device | str | None, n_inputs: int = 1
) -> tuple[Callable[..., Any], ModelMeta]:
    """``model`` ready to predict with its description: checkpoint paths are loaded (:func:`load_models`) on
    ``device`` (default CPU); a module or callable is taken as it is, with ``meta`` or, without it, the task
    its number of inputs implies (two: change detection).

    Raises:
        TypeError: ``model`` is none of these.
    """
    if isinstance(model, (str, os.PathLike)) or (
        isinstance(model, Sequence) and all(isinstance(m, (str, os.PathLike)) for m in model)
    ):
        paths = [model] if isinstance(model, (str, os.PathLike)) else list(model)
        return load_models(paths, device or "cpu")
    if not callable(model):
        raise TypeError(f"model must be a module, a callable or checkpoint paths, got {type(model).__name__}")
    return model, meta or ModelMeta(task="change_detection" if n_inputs == 2 else "segmentation")
