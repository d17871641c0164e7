"""Toy models (registered under test-only names) and tiny rasters for the inference tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from mantis.models import registry


class Multitask(NamedTuple):
    segmentation: torch.Tensor
    boundary: torch.Tensor
    distance: torch.Tensor


class PixelSeg(nn.Module):
    """Per-pixel (1x1 convolutions only) multitask model; not invariant to flips or rotations of its input."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        self.hidden = conv(in_channels, 8, 1)
        self.seg = conv(8, num_classes, 1)
        self.aux = conv(8, 2 * num_classes, 1)

    def forward(self, x: torch.Tensor) -> Multitask:
        h = torch.tanh(self.hidden(x))
        b, d = self.aux(h).chunk(2, dim=1)
        return Multitask(torch.softmax(self.seg(h), dim=1), torch.sigmoid(b), torch.sigmoid(d))


class PixelChange(nn.Module):
    """Per-pixel change-detection model: ``model(x1, x2)`` -> class probabilities B x K x S."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * in_channels, num_classes, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv(torch.cat([x1, x2 - x1], dim=1)), dim=1)


TOY_MODELS: dict[str, Callable[..., nn.Module]] = {"test_pixel_seg": PixelSeg, "test_pixel_change": PixelChange}


@pytest.fixture(autouse=True)
def _toy_models_registered() -> Any:
    # Registered for each inference test only: other suites see the registry as the library ships it.
    for name, fn in TOY_MODELS.items():
        registry.register_model(name, inputs=2 if fn is PixelChange else 1)(fn)
    yield
    for name in TOY_MODELS:
        registry.unregister_model(name)


def make_ckpt(path: Path, model: nn.Module, name: str, task: str, **hparams: Any) -> Path:
    """A checkpoint laid out as Mantis' Lightning tasks save it."""
    kwargs = {k: v for k, v in hparams.items() if k not in ("band_mean", "band_std")}
    hp: dict[str, Any] = {"model": name, "model_kwargs": kwargs, "task": task, "lr": 1e-3}
    for key in ("band_mean", "band_std"):
        if key in hparams:
            hp[key] = hparams[key]
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.6.0",
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": hp,
            "optimizer_states": [],
            "lr_schedulers": [],
        },
        path,
    )
    return path


def write_geotiff(
    path: Path,
    data: np.ndarray,
    nodata: float | None = None,
    crs: str = "EPSG:32631",
    origin: tuple[float, float] = (440000.0, 5100000.0),
    res: float = 10.0,
) -> Path:
    """A tiny C x H x W GeoTIFF (striped, uncompressed: the reader must not rely on tiling)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=from_origin(*origin, res, res),
        nodata=nodata,
    ) as ds:
        ds.write(data)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def seg_model() -> PixelSeg:
    torch.manual_seed(0)
    return PixelSeg(3, 3).eval()


@pytest.fixture
def change_model() -> PixelChange:
    torch.manual_seed(0)
    return PixelChange(3, 2).eval()


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Tiny tensors: one thread avoids OpenMP contention on shared 2-core machines; restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
