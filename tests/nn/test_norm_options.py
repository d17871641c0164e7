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


@pytest.mark.parametrize("name", ["fractal_resunet", "ceecnet_v1", "fractal_resnet_cd"])
def test_head_norm_changes_the_head_only_and_defaults_to_norm(name: str) -> None:
    import torch

    import mantis

    tiny = {"nf": 8, "depth": 2, "psp_depth": 2}
    head_bn = mantis.create_model(name, head_norm="batch", **tiny)
    head_norms = {type(m) for m in head_bn.head.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))}
    body_norms = {
        type(m)
        for n, m in head_bn.named_modules()
        if not n.startswith("head") and isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))
    }
    assert head_norms == {nn.BatchNorm2d} and body_norms == {GroupNorm}
    torch.manual_seed(0)
    default = mantis.create_model(name, **tiny)
    torch.manual_seed(0)
    same = mantis.create_model(name, head_norm="group", **tiny)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), same.state_dict().values()))
    assert list(default.state_dict()) == list(same.state_dict())  # the spec's default: the same network
