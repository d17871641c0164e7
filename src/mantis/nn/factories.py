"""Dimension-generic layer factories: one code path serves 1D, 2D and 3D."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

import torch.nn as nn

from mantis.nn.grouped import Conv2d
from mantis.nn.norm import GroupNorm

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11

NormName = Literal["batch", "group", "instance", "layer", "none"]
NORMS: tuple[str, ...] = ("batch", "group", "instance", "layer", "none")

_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: Conv2d, 3: nn.Conv3d}
_BATCHNORM: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCENORM: dict[int, type[nn.Module]] = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_INTERP_MODE: dict[int, str] = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 1, 2 or 3, else raise a ValueError."""
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
    return spatial_dims


def conv_type(spatial_dims: int) -> type[nn.Module]:
    """The ``nn.ConvNd`` class for ``spatial_dims``."""
    return _CONV[check_spatial_dims(spatial_dims)]


def interp_mode(spatial_dims: int) -> str:
    """The (multi)linear interpolation mode name for ``spatial_dims``."""
    return _INTERP_MODE[check_spatial_dims(spatial_dims)]


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the size for an odd kernel at stride 1: ``dilation * (k - 1) / 2``."""
    if kernel_size % 2 != 1:
        raise ValueError(f"'same' padding needs an odd kernel size, got {kernel_size}")
    return dilation * (kernel_size - 1) // 2


def norm_layer(norm: str, channels: int, spatial_dims: int, groups: int = 4) -> nn.Module:
    """Build a normalisation layer by name.

    Args:
        norm: one of ``batch``, ``group``, ``instance``, ``layer``, ``none``.
        channels: number of channels C of the B x C x S input.
        spatial_dims: 1, 2 or 3.
        groups: number of groups for ``group`` norm (reduced to a divisor of ``channels`` if needed).
    """
    check_spatial_dims(spatial_dims)
    if norm == "batch":
        return _BATCHNORM[spatial_dims](channels)
    if norm == "group":
        return GroupNorm(_divisor_at_most(channels, groups), channels)
    if norm == "instance":
        return _INSTANCENORM[spatial_dims](channels, affine=True)
    if norm == "layer":
        # Layer norm over (C, S) of each sample, with per-channel affine: GroupNorm with one group.
        return GroupNorm(1, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def _divisor_at_most(channels: int, groups: int) -> int:
    # Narrow layers (e.g. 2 channels) cannot hold 4 groups: use the largest divisor that fits.
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


class NormArgs(TypedDict, total=False):
    """The keyword options every block takes for its normalisation and dimensionality (``**norm``).

    Blocks accept any of them and fill the rest from :func:`norm_args`'s defaults, so the defaults live here
    once instead of in every block's signature.
    """

    norm: str  # batch, group, instance, layer or none
    norm_groups: int  # groups of GroupNorm
    spatial_dims: int  # 1, 2 or 3


def norm_args(norm: str = "group", norm_groups: int = 4, spatial_dims: int = 2) -> NormArgs:
    """The three options with every default filled in (GroupNorm with 4 groups, 2D), for ``**`` passing."""
    return NormArgs(norm=norm, norm_groups=norm_groups, spatial_dims=spatial_dims)


def norm_layer_of(channels: int, **norm: Unpack[NormArgs]) -> nn.Module:
    """:func:`norm_layer` for ``channels`` from a block's ``**norm`` options (defaults filled in)."""
    kw = norm_args(**norm)
    return norm_layer(kw["norm"], channels, kw["spatial_dims"], kw["norm_groups"])
