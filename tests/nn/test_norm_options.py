"""The blocks' normalisation options: one bundle with its defaults in one place."""

from __future__ import annotations

import pytest
import torch.nn as nn

from mantis.nn.conv import ConvNormed
from mantis.nn.heads import ConditionedMultitaskHead, ResUNetAHead
from mantis.nn.norm import GroupNorm
from mantis.nn.resample import Combine
from mantis.nn.units import AtrousUnit, FracTALResNetUnit


def test_defaults_are_groupnorm_with_four_groups_in_2d() -> None:
    block = ConvNormed(8, 16, 3)
    assert isinstance(block.conv, nn.Conv2d)
    assert isinstance(block.norm, GroupNorm) and block.norm.num_groups == 4


def test_options_reach_every_sub_block() -> None:
    unit = FracTALResNetUnit(8, nheads=2, norm="batch", spatial_dims=3)
    norms = [m for m in unit.modules() if isinstance(m, (nn.BatchNorm3d, nn.GroupNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, nn.BatchNorm3d) for m in norms)
    convs = [m for m in unit.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert convs and all(isinstance(m, nn.Conv3d) for m in convs)
    combine = Combine(16, 8, norm="group", norm_groups=2)
    assert {m.num_groups for m in combine.modules() if isinstance(m, nn.GroupNorm)} == {2}


def test_resunet_a_blocks_default_to_batchnorm() -> None:
    assert isinstance(AtrousUnit(8).blocks[0].norm1, nn.BatchNorm2d)
    assert isinstance(ResUNetAHead(8, 2).psp.conv_final.norm, nn.BatchNorm2d)
    assert isinstance(AtrousUnit(8, norm="group").blocks[0].norm1, GroupNorm)
    assert isinstance(ConditionedMultitaskHead(8, 2).psp.conv_final.norm, GroupNorm)


def test_a_misspelt_option_is_refused() -> None:
    with pytest.raises(TypeError, match="norm_group"):
        Combine(16, 8, norm_group=2)  # type: ignore[call-arg]
