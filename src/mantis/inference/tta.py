"""Test-time augmentation: the dihedral group D4 on the last two spatial axes, each with its exact inverse."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpatialTransform:
    """A flip and/or rotation by ``quarter_turns`` x 90 degrees over the last two axes of B x C x S tensors.

    In 1D only the flip applies (``quarter_turns`` is 0). The flip (of the last axis) comes first, then
    the rotation; :meth:`invert` undoes both in the reverse order.
    """

    flip: bool
    quarter_turns: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform ``x`` (B x C x S, S with one or more axes)."""
        if self.flip:
            x = torch.flip(x, dims=(-1,))
        if self.quarter_turns:
            x = torch.rot90(x, self.quarter_turns, dims=(-2, -1))
        return x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply` on an output ``y`` (B x K x S) computed from transformed input."""
        if self.quarter_turns:
            y = torch.rot90(y, -self.quarter_turns, dims=(-2, -1))
        if self.flip:
            y = torch.flip(y, dims=(-1,))
        return y


def d4_transforms(spatial_dims: int) -> list[SpatialTransform]:
    """The test-time transforms for ``spatial_dims``: identity and flip in 1D, the 8 of D4 otherwise.

    In 3D the group acts on the last two axes (H, W); the depth axis is left as it is.
    The identity is always first.
    """
    if spatial_dims < 1:
        raise ValueError(f"spatial_dims must be >= 1, got {spatial_dims}")
    if spatial_dims == 1:
        return [SpatialTransform(False, 0), SpatialTransform(True, 0)]
    return [SpatialTransform(flip, k) for flip in (False, True) for k in range(4)]
