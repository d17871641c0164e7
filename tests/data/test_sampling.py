"""The training order: a pure function of (seed, epoch, position), resumable, the same with any number of workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mantis.data import ChangeDetectionDataModule, SyntheticSegmentation
from mantis.data.augment import Augment
from mantis.data.sampling import EpochSampler, split_key
from tests.tasks.folders import make_cd_folder


def test_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10))  # a permutation
    assert list(EpochSampler(10, seed=3)) == first  # a new sampler with the same seed: the same keys
    second = list(sampler)  # the next iteration is the next epoch
    sampler.set_epoch(1)
    assert list(sampler) == second and sampler.last_epoch == 1
    assert [i for i, _ in second] != [i for i, _ in first]  # another order
    assert not {s for _, s in first} & {s for _, s in second}  # and fresh seeds for every sample
    assert list(EpochSampler(10, seed=4)) != first
    assert [i for i, _ in EpochSampler(5, seed=3, shuffle=False)] == [0, 1, 2, 3, 4]


def test_resume_skips_what_was_consumed_once() -> None:
    sampler = EpochSampler(8, seed=0)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.resume(2, 6)
    assert list(sampler) == full[6:]
    sampler.set_epoch(2)
    assert list(sampler) == full  # only the next iteration is shortened
    sampler.resume(1, 3)  # resuming another epoch sets it
    assert sampler.epoch == 1 and len(list(sampler)) == 5 and sampler.last_epoch == 1


def test_split_key() -> None:
    assert split_key(4) == (4, None)
    index, rng = split_key((4, 123))
    assert index == 4 and rng is not None
    assert rng.integers(1 << 30) == np.random.default_rng(123).integers(1 << 30)


def test_a_key_fixes_the_sample_including_its_augmentation() -> None:
    dataset = SyntheticSegmentation(num_samples=4, size=32, augment=Augment(), multitask=True)
    a, b = dataset[(1, 99)], dataset[(1, 99)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = dataset[(1, 100)]
    assert any(not torch.equal(a[k], other[k]) for k in a)  # another seed: another augmentation


def _batches(module: ChangeDetectionDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    loader = module.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_folder_batches_are_the_same_with_any_number_of_workers(tmp_path: Path) -> None:
    data = make_cd_folder(tmp_path / "levir", count=6)
    batches = []
    for workers in (0, 2):
        torch.manual_seed(7)  # what seed_everything does
        module = ChangeDetectionDataModule(
            root=data, patch_size=16, batch_size=2, num_workers=workers, val_fraction=0, test_fraction=0
        )
        module.setup("fit")
        batches.append(_batches(module, 1))
    assert len(batches[0]) == len(batches[1]) > 1
    for one, two in zip(*batches):
        assert all(torch.equal(one[k], two[k]) for k in one)


def test_datamodule_state_resumes_the_order(tmp_path: Path) -> None:
    data = make_cd_folder(tmp_path / "levir", count=6)
    torch.manual_seed(0)
    module = ChangeDetectionDataModule(
        root=data, patch_size=16, batch_size=2, samples_per_image=1, val_fraction=0, test_fraction=0
    )
    module.setup("fit")
    full = _batches(module, 3)
    assert len(full) == 3
    state = {"sampler_seed": module._sampler.seed, "epoch": 3, "batches": 1, "complete": False}

    torch.manual_seed(12345)  # another global state: the saved seed decides
    resumed = ChangeDetectionDataModule(
        root=data, patch_size=16, batch_size=2, samples_per_image=1, val_fraction=0, test_fraction=0
    )
    resumed.load_state_dict(state)
    resumed.setup("fit")
    rest = list(resumed.train_dataloader())
    assert len(rest) == 2
    for one, two in zip(full[1:], rest):
        assert torch.equal(one["image1"], two["image1"]) and torch.equal(one["mask"], two["mask"])

    # a checkpoint at the end of epoch 3 continues with epoch 4 from its start
    ended = ChangeDetectionDataModule(
        root=data, patch_size=16, batch_size=2, samples_per_image=1, val_fraction=0, test_fraction=0
    )
    ended.load_state_dict({**state, "batches": 3, "complete": True})
    ended.setup("fit")
    assert ended.train_dataloader().sampler.epoch == 4  # the next iteration
    assert len(list(ended.train_dataloader())) == 3
