"""``head_prior``: the segmentation output starts at the class shares of the training masks, the boundary output
at their boundary shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mantis import create_model
from mantis.data import ChangeDetectionDataModule
from mantis.data.datasets import ChangeDetectionFolder, SegmentationFolder
from mantis.data.io import read_mask
from mantis.data.labels import boundary_shares
from mantis.data.series_segmentation import SeriesSegmentationDataModule
from mantis.data.volumes import VolumeSegmentationDataModule
from mantis.tasks import ChangeDetectionTask
from tests.data.helpers import make_cd_folder, make_seg_folder
from tests.tasks.folders import TINY_CD_MODEL, TINY_SEG_MODEL


def _output_at_silent_pixels(model: torch.nn.Module) -> torch.Tensor:
    """What the segmentation output is where every last hidden channel is zero: the 1x1 conv of zeros."""
    last = model.get_submodule("head.segm_logits.logits")[-1]
    zeros = torch.zeros(1, last.in_channels, 1, 1)
    with torch.no_grad():
        logits = last(zeros)[0, :, 0, 0]
    return torch.softmax(logits, 0) if logits.numel() > 1 else torch.sigmoid(logits)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("fractal_resunet", TINY_SEG_MODEL), ("ceecnet_v2", TINY_CD_MODEL), ("fractal_resnet_cd", TINY_CD_MODEL)],
)
def test_the_segmentation_output_starts_at_the_shares(name: str, kwargs: dict[str, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs, num_classes=3)
    weight = model.get_submodule("head.segm_logits.logits")[-1].weight.detach().clone()
    model.start_at_class_prior([0.7, 0.2, 0.1])
    assert torch.allclose(_output_at_silent_pixels(model), torch.tensor([0.7, 0.2, 0.1]), atol=1e-6)
    assert torch.equal(model.get_submodule("head.segm_logits.logits")[-1].weight, weight)  # weights untouched


def test_one_output_takes_the_foreground_share_and_absent_classes_stay_finite() -> None:
    model = create_model("fractal_resunet", **TINY_SEG_MODEL, num_classes=1)
    model.start_at_class_prior([0.05])
    assert torch.allclose(_output_at_silent_pixels(model), torch.tensor([0.05]), atol=1e-6)
    two = create_model("fractal_resunet", **TINY_SEG_MODEL, num_classes=2)
    two.start_at_class_prior([1.0, 0.0])  # a class absent from the training masks
    out = _output_at_silent_pixels(two)
    assert torch.isfinite(out).all() and float(out[1]) == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(ValueError, match="2 outputs need 2, got 3"):
        two.start_at_class_prior([0.5, 0.3, 0.2])


def _boundary_at_silent_pixels(model: torch.nn.Module) -> torch.Tensor:
    """What the boundary output is where every last hidden channel of its branch is zero."""
    head: Any = model.get_submodule("head")
    branch = head.bound_logits
    last = branch.logits[-1] if hasattr(branch, "logits") else branch[-1]
    with torch.no_grad():
        logits = last(torch.zeros(1, last.in_channels, 1, 1))
        crisp = getattr(head, "crisp", torch.sigmoid)  # FracTAL/CEECNet: the crisp sigmoid; ResUNet-a: sigmoid
        return crisp(logits)[0, :, 0, 0]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("fractal_resunet", TINY_SEG_MODEL), ("ceecnet_v1", TINY_CD_MODEL), ("resunet_a_d6", {"depth": 2})],
)
def test_the_boundary_output_starts_at_the_boundary_shares(name: str, kwargs: dict[str, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs, num_classes=3)
    head: Any = model.get_submodule("head")
    head.start_boundary_at([0.05, 0.02, 0.001])
    assert torch.allclose(_boundary_at_silent_pixels(model), torch.tensor([0.05, 0.02, 0.001]), atol=1e-6)
    with pytest.raises(ValueError, match="3 outputs need 3, got 2"):
        head.start_boundary_at([0.05, 0.02])


def test_boundary_shares_count_the_boundary_targets_of_the_labelled_pixels() -> None:
    # By hand: in 0 0 0 1 1 1 0 0 the inner edges are pixels 2, 6 (class 0) and 3, 5 (class 1); each edge is
    # widened by one pixel to either side, the chip's ends are no edge: class 0 covers 1-3 and 5-7 (6 pixels),
    # class 1 covers 2-6 (5 pixels) of the 8.
    mask = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    assert boundary_shares([mask], 2, None) == pytest.approx([6 / 8, 5 / 8])
    assert boundary_shares([mask], 1, None) == pytest.approx([5 / 8])  # one output: class 1's
    # A mask of one class has no boundary; unlabelled pixels count neither as labelled nor as another class.
    flat = np.zeros(8, np.int64)
    assert boundary_shares([mask, flat], 2, None) == pytest.approx([6 / 16, 5 / 16])
    unlabelled = np.array([0, 0, 0, 1, 1, 1, 255, 255])  # class 1 has no edge toward the unlabelled pixels
    assert boundary_shares([unlabelled], 2, 255) == pytest.approx([3 / 6, 3 / 6])
    assert boundary_shares([np.full(4, 255)], 2, 255) is None


def test_boundary_shares_read_the_centre_of_a_large_mask() -> None:
    # 0 0 0 0 1 1 1 1 1 1 1 1 0 0 0 0 whole: edges widened to 2-4 and 11-13 (class 0), 3-5 and 10-12 (class 1).
    row = np.array([0] * 4 + [1] * 8 + [0] * 4)
    assert boundary_shares([row], 2, None) == pytest.approx([6 / 16, 6 / 16])
    assert boundary_shares([row], 2, None, most_elements=8) == pytest.approx([0.0, 0.0])  # steps 4-11: all 1
    # 8 x 8 with a 2 x 2 block in the middle, read as its centre 4 x 4 (rows and columns 2-5): the block and its
    # 8 face neighbours are class 1's boundary (12 of 16); the ring and everything next to it, class 0's (16).
    square = np.zeros((8, 8), np.int64)
    square[3:5, 3:5] = 1
    assert boundary_shares([square], 2, None, most_elements=16) == pytest.approx([16 / 16, 12 / 16])


def test_shares_count_the_labelled_pixels_of_the_masks(tmp_path: Path) -> None:
    root = make_seg_folder(tmp_path / "seg", names=("a", "b", "c"), num_classes=3)
    masks = [read_mask(root / "masks" / f"{n}.png") for n in ("a", "b", "c")]
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=3)
    assert SegmentationFolder(root, num_classes=3, patch_size=32).class_shares() == pytest.approx(counts / counts.sum())
    # At most `most` files, spread evenly: the first and the last.
    two = np.bincount(np.concatenate([masks[0].ravel(), masks[2].ravel()]), minlength=3)
    assert SegmentationFolder(root, num_classes=3, patch_size=32).class_shares(most=2) == pytest.approx(two / two.sum())

    cd = make_cd_folder(tmp_path / "cd", names=("a", "b"))
    changed = np.concatenate([read_mask(cd / "label" / f"{n}.png").ravel() for n in ("a", "b")]) == 255
    share = float(changed.mean())
    assert ChangeDetectionFolder(cd, patch_size=32).class_shares() == pytest.approx([1 - share, share])

    # The boundary shares are those of the masks' own boundary targets (the function is checked by hand below).
    expected = boundary_shares(masks, 3, 255)
    assert SegmentationFolder(root, num_classes=3, patch_size=32).boundary_shares() == pytest.approx(expected)


def test_the_data_module_gives_the_shares_of_its_training_split(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path / "cd", names=("a", "b", "c"))
    (tmp_path / "train.txt").write_text("a.png\nc.png\n")
    (tmp_path / "test.txt").write_text("b.png\n")
    data = ChangeDetectionDataModule(
        root=str(root), train_file=str(tmp_path / "train.txt"), test_file=str(tmp_path / "test.txt"), patch_size=32
    )
    data.setup("fit")
    changed = np.concatenate([read_mask(root / "label" / f"{n}.png").ravel() for n in ("a", "c")]) == 255
    assert data.class_shares() == pytest.approx([1 - changed.mean(), changed.mean()])
    masks = [(read_mask(root / "label" / f"{n}.png") == 255).astype(np.int64) for n in ("a", "c")]
    assert data.boundary_shares() == pytest.approx(boundary_shares(masks, 2, None))


def test_series_and_volume_modules_give_the_shares_of_their_training_samples(tmp_path: Path) -> None:
    # Every sample holds the same labels, so the shares do not depend on which samples the split trains on.
    row = np.array([0] * 10 + [1] * 6 + [2] * 2 + [255] * 2)
    np.save(tmp_path / "x.npy", np.zeros((6, 20), np.float32))
    np.save(tmp_path / "y.npy", np.tile(row, (6, 1)))
    series = SeriesSegmentationDataModule(
        str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), num_classes=3, ignore_index=255, patch_size=8
    )
    assert series.class_shares() == pytest.approx([10 / 18, 6 / 18, 2 / 18])
    # Boundaries by hand: class 0 edges at step 9 -> steps 8-10; class 1 at steps 10 and 15 -> 9-11 and 14-16;
    # class 2 at step 16 (not toward the unlabelled steps) -> 15-17.
    assert series.boundary_shares() == pytest.approx([3 / 18, 6 / 18, 3 / 18])

    labels = np.zeros((8, 8, 8), np.uint8)
    labels[4:7], labels[7] = 1, 2  # slices 0-3: class 0, 4-6: class 1, 7: class 2
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / "vol" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "vol" / "masks").mkdir(exist_ok=True)
        np.save(tmp_path / "vol" / "images" / f"{name}.npy", np.zeros((8, 8, 8), np.float32))
        np.save(tmp_path / "vol" / "masks" / f"{name}.npy", labels)
    volumes = VolumeSegmentationDataModule(str(tmp_path / "vol"), num_classes=3, patch_size=8)
    assert volumes.class_shares() == pytest.approx([4 / 8, 3 / 8, 1 / 8])
    # Edges between slices 3|4 and 6|7, each widened by a slice: slices 2-4 (class 0), 3-7 (class 1), 6-7 (2).
    assert volumes.boundary_shares() == pytest.approx([3 / 8, 5 / 8, 2 / 8])


class _Pairs(lightning.LightningDataModule):
    """A few random pairs, and fixed class shares."""

    def __init__(self, shares: list[float]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 32, 32, generator=g)
        self.batches = [{"image1": x[0], "image2": x[1], "mask": (torch.rand(32, 32, generator=g) < 0.2).long()}]
        self.shares = shares

    def class_shares(self) -> list[float]:
        return self.shares

    def boundary_shares(self) -> list[float]:
        return [0.05, 0.04]

    def train_dataloader(self) -> Any:
        return DataLoader(self.batches, batch_size=1)


def _fit(task: ChangeDetectionTask, tmp_path: Path, steps: int, ckpt_path: str | None = None) -> lightning.Trainer:
    trainer = lightning.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        enable_checkpointing=False,
    )
    trainer.fit(task, datamodule=_Pairs([0.9, 0.1]), ckpt_path=ckpt_path)
    return trainer


def _bias(task: ChangeDetectionTask) -> torch.Tensor:
    return task.model.get_submodule("head.segm_logits.logits")[-1].bias.detach().clone()


def test_a_new_run_starts_at_the_shares_and_a_resumed_one_keeps_its_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))  # on by default
    _fit(task, tmp_path, steps=0)
    assert torch.allclose(_output_at_silent_pixels(task.model), torch.tensor([0.9, 0.1]), atol=1e-6)
    assert torch.allclose(_boundary_at_silent_pixels(task.model), torch.tensor([0.05, 0.04]), atol=1e-6)
    said = capsys.readouterr().out
    assert "head_prior: the segmentation output starts at the training masks' class shares (no_change 0.900, " in said
    assert "head_prior: the boundary output starts at the training masks' boundary shares (no_change 0.050, " in said

    off = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), head_prior=False)  # leaves the biases alone
    before = _bias(off)
    trainer = _fit(off, tmp_path, steps=1)
    assert not torch.equal(_bias(off), before)  # trained one step, not reset
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    kept = _bias(off)

    resumed = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), head_prior=True)
    _fit(resumed, tmp_path, steps=1, ckpt_path=str(tmp_path / "run.ckpt"))
    assert torch.equal(_bias(resumed), kept)  # the checkpoint's biases, not the shares
    assert "head_prior" not in capsys.readouterr().out


def test_a_network_given_weights_or_fitted_before_keeps_its_biases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    trained = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), head_prior=False)
    _fit(trained, tmp_path, steps=1)
    given = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))  # fine-tuning from those weights
    given.model.load_state_dict(trained.model.state_dict())
    _fit(given, tmp_path, steps=0)
    assert torch.equal(_bias(given), _bias(trained))
    assert "head_prior: left out (the network was given weights or trained before this fit)" in capsys.readouterr().out

    twice = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    _fit(twice, tmp_path, steps=1)  # starts at the shares, then one step
    after_first = _bias(twice)
    _fit(twice, tmp_path, steps=0)  # a second fit continues from the first
    assert torch.equal(_bias(twice), after_first)
    assert not torch.allclose(_output_at_silent_pixels(twice.model), torch.tensor([0.9, 0.1]), atol=1e-6)
