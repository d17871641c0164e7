"""Samples of a run folder without a prediction folder: its checkpoint on the first samples of its test split.

The data module is rebuilt from the run's ``config.yaml`` (the same class and arguments), the checkpoint
named in ``test_metrics.json`` (else ``checkpoints/last.ckpt``) is loaded, and each chosen test sample (a
tile, as ``mantis test`` sees it) is predicted whole. Samples are named ``test_<index>``. Only 2D images
are drawn; anything that cannot be rebuilt here is reported as a note, never as a failed page.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mantis.io.errors import DataError
from mantis.report_images import display_images, display_shape
from mantis.report_metrics import read_json
from mantis.report_samples import SampleView, compose_view, pixel_counts

__all__ = ["run_checkpoint", "run_test_samples"]

PREFIX = "test_"


def run_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``mantis test`` scored (``test_metrics.json``), else ``checkpoints/last.ckpt``."""
    metrics = run_dir / "test_metrics.json"
    if metrics.is_file():
        named = read_json(metrics).get("checkpoint")
        # this folder's copy first: a run folder copied or moved elsewhere still names the old path
        for candidate in (run_dir / "checkpoints" / Path(named).name, Path(named)) if named else ():
            if candidate.is_file():
                return candidate
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def _test_dataset(run_dir: Path) -> tuple[Any, Any]:
    """The data module of the run's ``config.yaml`` and its test dataset."""
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    config_path = run_dir / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise DataError(config_path, f"cannot read it ({' '.join(str(error).split())})") from None
    data = (config or {}).get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise DataError(config_path, "has no data module (data.class_path)")
    # the same parser type as `mantis fit`'s, so nested classes (augmentation ...) are rebuilt too
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    module = parser.instantiate(parser.parse_object({"data": data})).data
    module.setup("test")
    datasets = getattr(module, "datasets", None)
    if not isinstance(datasets, dict):  # series and tables: nothing to draw as a picture
        raise DataError(config_path, f"its data module {type(module).__name__} holds no image datasets to draw")
    dataset = datasets.get("test")
    if dataset is None or len(dataset) == 0:
        raise DataError(config_path, "its data module has no test split")
    return module, dataset


def _indices(chosen: int | Sequence[str], available: int) -> list[int]:
    if isinstance(chosen, int):
        return list(range(min(chosen, available)))
    picked = []
    for name in chosen:
        text = name.removeprefix(PREFIX)
        if not text.isdigit() or int(text) >= available:
            raise ValueError(f"--samples {name!r}: a run's samples are {PREFIX}0 .. {PREFIX}{available - 1}")
        picked.append(int(text))
    return list(dict.fromkeys(picked))


def _reduce(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour reduction of the last two axes to ``shape``."""
    rows = np.linspace(0, array.shape[-2] - 1, shape[0]).round().astype(np.int64)
    cols = np.linspace(0, array.shape[-1] - 1, shape[1]).round().astype(np.int64)
    return array[..., rows, :][..., cols]


def run_test_samples(
    run_dir: Path, chosen: int | Sequence[str], *, max_side: int = 768
) -> tuple[list[SampleView], list[str], list[str]]:
    """The run's checkpoint on its first test samples.

    Returns:
        ``(samples, class names, notes)``; no samples and a note saying why when they cannot be made.
    """
    import torch

    from mantis.inference.checkpoint import load_model
    from mantis.inference.outputs import output_fields

    checkpoint = run_checkpoint(run_dir)
    if checkpoint is None or not (run_dir / "config.yaml").is_file():
        return [], [], [f"no samples: {run_dir} has no checkpoint or config.yaml; pass --predictions"]
    try:
        module, dataset = _test_dataset(run_dir)
        model, _ = load_model(checkpoint)
    # a moved dataset, a missing extra, a config this version no longer accepts (jsonargparse's ArgumentError)
    except (ValueError, OSError, ImportError, TypeError, argparse.ArgumentError) as error:
        return [], [], [f"no samples from the run's test split ({' '.join(str(error).split())}); pass --predictions"]
    names = list(getattr(module, "class_names", None) or [])
    num_classes = int(getattr(module, "num_classes", len(names) or 2))
    ignore_index = int(getattr(module, "ignore_index", 255))
    views = []
    for index in _indices(chosen, len(dataset)):
        sample = dataset[index]
        inputs = [sample[k] for k in ("image1", "image2") if k in sample] or [sample["image"]]
        if inputs[0].ndim != 3:
            return [], names, ["no samples: they are drawn for 2D images only"]
        with torch.no_grad():
            out = output_fields(model(*(x[None].float() for x in inputs)))["segmentation"][0]
        probabilities = out.float().numpy()
        predicted = probabilities.argmax(0) if probabilities.shape[0] > 1 else (probabilities[0] > 0.5).astype(np.int64)
        truth = sample["mask"].numpy().astype(np.int64)
        counts = pixel_counts(predicted, truth, truth == ignore_index)
        shape = display_shape(predicted.shape[0], predicted.shape[1], max_side)
        views.append(
            compose_view(
                f"{PREFIX}{index}",
                predicted=_reduce(predicted, shape),
                num_classes=num_classes,
                truth=_reduce(truth, shape),
                ignore_index=ignore_index,
                pictures=display_images([_reduce(x.numpy(), shape) for x in inputs]),
                probability=_reduce(probabilities[-1], shape) if num_classes == 2 else None,  # one channel: sigmoid
                counts=counts,
                files={"checkpoint": str(checkpoint), "sample": f"test split #{index} of {run_dir / 'config.yaml'}"},
            )
        )
    return views, names, []
