"""Training order and per-sample randomness that depend only on (seed, epoch, position): runs resume exactly.

:class:`EpochSampler` yields keys ``(index, sample_seed)``: the order of an epoch is a permutation drawn from
``(seed, epoch)`` and every position gets its own seed for the random window and the augmentation, so a
sample does not depend on the worker that reads it, on the number of workers or on anything drawn before.
A run killed in the middle of an epoch resumes at the next batch with the same samples
(:meth:`EpochSampler.resume`); the datasets accept these keys as well as plain indices
(:func:`split_key`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "SampleKey", "epoch_batches_done", "split_key"]

SampleKey = int | tuple[int, int]


def split_key(key: SampleKey) -> tuple[int, np.random.Generator | None]:
    """``(index, generator)`` of a dataset key: a key of :class:`EpochSampler` carries its sample's seed.

    Args:
        key: A sample index, or ``(index, sample_seed)``.

    Returns:
        The index and a generator seeded with the sample's seed (``None`` for a plain index).
    """
    if isinstance(key, tuple):
        index, seed = key
        return int(index), np.random.default_rng(int(seed))
    return int(key), None


class EpochSampler(Sampler[tuple[int, int]]):
    """Keys ``(index, sample_seed)`` of one epoch, in an order fixed by ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` at the start of each epoch (as for ``DistributedSampler``); without it
    (a plain loop over the loader), each iteration is the next epoch.

    Args:
        size: Number of samples of the dataset.
        seed: Seed of the orders and of the samples' randomness.
        shuffle: Permute the samples each epoch (``False``: ``0 .. size - 1``).
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0  # of the next iteration
        self.last_epoch = -1  # of the latest iteration (-1: none yet)
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration the order of ``epoch``."""
        self.epoch = int(epoch)

    def resume(self, epoch: int, consumed: int) -> None:
        """Make the next iteration continue ``epoch`` after its first ``consumed`` keys (once)."""
        self.epoch = int(epoch)
        self._skip = (int(epoch), int(consumed))

    def keys(self, epoch: int) -> list[tuple[int, int]]:
        """Every key of ``epoch`` in order."""
        # 64-bit seeds from one SeedSequence per epoch: independent streams for every (epoch, position)
        seeds = np.random.SeedSequence([self.seed, epoch]).generate_state(2 * self.size, dtype=np.uint32)
        seeds = seeds.reshape(-1, 2).astype(np.uint64) if self.size else np.zeros((0, 2), np.uint64)
        sample_seeds = (seeds[:, 0] << np.uint64(32)) | seeds[:, 1]
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch, 1]).permutation(self.size)
        else:
            order = np.arange(self.size)
        return [(int(i), int(s)) for i, s in zip(order, sample_seeds)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.epoch, 0
        if self._skip is not None and self._skip[0] == epoch:
            start = self._skip[1]
        self._skip = None
        self.last_epoch, self.epoch = epoch, epoch + 1
        return iter(self.keys(epoch)[start:])

    def __len__(self) -> int:
        return self.size


def epoch_batches_done(trainer: Any) -> tuple[int, bool]:
    """``(batches, finished)``: the training batches of the current epoch processed so far by a Lightning
    trainer, and whether that is all of them."""
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    done = int(getattr(progress, "processed", progress.completed))  # a processed count exists for batches
    return done, done >= trainer.num_training_batches
