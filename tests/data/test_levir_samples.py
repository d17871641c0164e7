"""The real LEVIR-CD sample pairs read as expected (skipped where the shared data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mantis.data.datasets import ChangeDetectionFolder

LEVIR = Path("/work/shared/data/levir-cd-samples")
pytestmark = pytest.mark.skipif(not (LEVIR / "A").is_dir(), reason="LEVIR-CD samples not available")


def test_levir_cd_samples_read_with_default_layout() -> None:
    data = ChangeDetectionFolder(LEVIR, patch_size=256, train=False, multitask=True)
    assert len(data) == 9 and data.in_channels == 3
    names = [item.name for item in data.items]
    for index, name in enumerate(names):
        sample = data[index]
        assert sample["image1"].shape == sample["image2"].shape == (3, 256, 256)
        assert float(sample["image1"].min()) >= 0.0 and float(sample["image1"].max()) <= 1.0
        assert set(torch.unique(sample["mask"]).tolist()) <= {0, 1}
        if name == "train_386_0512_0768.png":  # the genuine no-change pair
            assert int(sample["mask"].sum()) == 0
        else:
            assert int(sample["mask"].sum()) > 0
