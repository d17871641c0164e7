"""Whole-raster test batches for ``mantis test --test_window``: each test file is predicted by the tiled
predictor of ``mantis predict`` (:func:`~mantis.inference.predict.blended_rows`) and scored whole.

The training data module still chooses the test files (its split rules, pairing and mask decoding); only the
batches change: one file per batch, its input paths and its decoded mask, instead of windows of
``patch_size``. The task reads and predicts the rasters itself, exactly as ``mantis predict`` would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mantis.data.masks import MaskDecoder
from mantis.inference.checkpoint import ModelMeta
from mantis.inference.predict import UINT8_NODATA, plan_inputs, predict_class_map
from mantis.inference.spec import WindowSpec
from mantis.io.errors import DataError
from mantis.io.raster import read_mask

__all__ = ["TiledTest", "TiledTestData", "WholeRasters", "use_tiled_test", "window_spec"]

#: Key of a tiled test batch that holds the input paths (one, or two for a change pair).
INPUTS_KEY = "raster_paths"


class WholeRasters(Dataset[dict[str, Any]]):
    """One sample per test file: its input paths and its whole mask decoded as in training.

    Args:
        files: ``(input paths, mask path)`` per file.
        decoder: the data's mask decoder (stored values -> class ids, unlabelled -> ``ignore_index``).
    """

    def __init__(self, files: Sequence[tuple[Sequence[Path], Path]], decoder: MaskDecoder) -> None:
        self.files = [(tuple(str(p) for p in inputs), Path(mask)) for inputs, mask in files]
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        inputs, mask = self.files[index]
        truth = self.decoder(read_mask(mask), mask)
        return {INPUTS_KEY: inputs, "mask": torch.from_numpy(np.asarray(truth, dtype=np.int64))}


def one_raster(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate a batch of one file: mask 1 x H x W (rasters of different sizes cannot be stacked)."""
    (item,) = items
    return {INPUTS_KEY: item[INPUTS_KEY], "mask": item["mask"][None]}


class TiledTestData(lightning.LightningDataModule):
    """The data module ``data`` with whole-raster test batches (:class:`WholeRasters`); everything else,
    attributes included, is ``data``'s own.

    Args:
        data: a folder data module whose test dataset lists ``items`` (images, mask) and a ``decoder``.
    """

    def __init__(self, data: lightning.LightningDataModule) -> None:
        super().__init__()
        self.data = data
        self.whole: WholeRasters | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this wrapper lacks: the task reads target, spatial_dims, patch_size...
        if name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def prepare_data(self) -> None:
        """As the wrapped module."""
        self.data.prepare_data()

    def setup(self, stage: str) -> None:
        """Set up (and check the files of) the wrapped module's test split; list its files whole."""
        self.data.setup(stage)
        dataset = getattr(self.data, "datasets", {}).get("test")
        items, decoder = getattr(dataset, "items", None), getattr(dataset, "decoder", None)
        if items is None or not isinstance(decoder, MaskDecoder):
            raise DataError(
                getattr(self.data, "root", None) or type(self.data).__name__,
                "--test_window predicts whole test rasters from a folder; this data has none (synthetic data?)",
            )
        self.whole = WholeRasters([(item.images, item.mask) for item in items], decoder)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        """One whole test raster a batch; under DDP each process takes its own files, none twice."""
        assert self.whole is not None, "setup('test') first"
        sampler = FileShards(self.whole) if dist.is_available() and dist.is_initialized() else None
        return DataLoader(self.whole, batch_size=1, collate_fn=one_raster, num_workers=0, sampler=sampler)


class FileShards(DistributedSampler[int]):
    """Files rank, rank + world, ...: unlike Lightning's default sampler, no file is repeated to even out the
    processes (a repeated file would be scored twice); Lightning keeps a sampler of this kind as given."""

    def __init__(self, dataset: Dataset[dict[str, Any]]) -> None:
        super().__init__(dataset, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TiledTest:
    """Predicts a whole-raster test batch tile by tile, as ``mantis predict`` does with the same ``spec``.

    Called by the task's test step as ``tiled_test(task, batch)``; returns the 1 x H x W class ids and the
    1 x H x W mask to score, the mask set to the task's ``ignore_index`` where the prediction is nodata
    (an input without a value), as ``mantis evaluate`` leaves those pixels out.
    """

    spec: WindowSpec

    def __call__(self, task: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Class ids and mask of ``batch`` (``raster_paths``: the inputs, ``mask``: 1 x H x W)."""
        meta = ModelMeta.from_hparams(task.hparams, "the task's hyper-parameters")
        job = plan_inputs(batch[INPUTS_KEY], meta)
        # The trainer's autocast (bf16-mixed) must not leak in: the spec's precision decides, as in predict.
        with torch.autocast(task.device.type, enabled=False):
            classes = torch.from_numpy(predict_class_map(job, task.model, meta, self.spec, task.device))
        truth = batch["mask"].clone()
        if tuple(truth.shape[1:]) != tuple(classes.shape):
            raise DataError(job.inputs[0], f"is {tuple(classes.shape)} pixels but its mask is {tuple(truth.shape[1:])}")
        nodata = (classes == UINT8_NODATA).to(truth.device)
        if task.ignore_index is None and bool(nodata.any()):  # the scores have no value to leave them out by
            raise DataError(
                job.inputs[0],
                f"has {int(nodata.sum())} pixels without a value (nodata), which the scores must leave out, but "
                "the task's ignore_index is null; set --model.ignore_index (e.g. 255)",
            )
        truth[:, nodata] = task.ignore_index if task.ignore_index is not None else -1
        return classes[None].to(device=truth.device, dtype=torch.long), truth


def window_spec(value: WindowSpec | Mapping[str, Any] | Any | None) -> WindowSpec | None:
    """The :class:`WindowSpec` of a parsed ``--test_window`` (a spec, a mapping or a namespace), or ``None``."""
    if value is None or isinstance(value, WindowSpec):
        return value
    return WindowSpec.from_mapping(value if isinstance(value, Mapping) else vars(value))


def use_tiled_test(task: Any, data: lightning.LightningDataModule | None, spec: WindowSpec | None) -> Any:
    """The data module ``mantis test`` should run ``task`` on: with a ``spec``, ``data`` with whole-raster
    test batches and the task set to predict them tile by tile (:class:`TiledTest`); else ``data`` as is.

    Raises:
        CommandError: ``task`` cannot predict whole rasters (not a 2D dense task).
    """
    if spec is None or data is None:
        return data
    from mantis.commands import CommandError

    if not hasattr(task, "tiled_test") or getattr(task.model, "spatial_dims", 2) != 2:
        raise CommandError(f"--test_window: {type(task).__name__} does not predict 2D rasters tile by tile")
    task.tiled_test = TiledTest(spec)
    return data if isinstance(data, TiledTestData) else TiledTestData(data)
