"""How a folder without split sub-folders or split files is divided: pure functions, no files touched."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def split_counts(total: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Images held out for validation and test: each fraction rounded, and at least one where it is above 0.

    Raises:
        ValueError: when no image would be left to train on, with the ways out.
    """
    n_val = max(round(total * val_fraction), 1) if val_fraction > 0 else 0
    n_test = max(round(total * test_fraction), 1) if test_fraction > 0 else 0
    if n_val + n_test >= total:
        raise ValueError(
            f"{total} images are too few for val_fraction={val_fraction} and test_fraction={test_fraction} "
            f"({n_val} for validation and {n_test} for test would leave none to train on): add images, set "
            "--data.init_args.test_fraction 0 (and test on another folder), or list the splits in "
            "train_file/val_file/test_file"
        )
    return n_val, n_test


def random_split(names: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded random split of ``names`` into ``train``, ``val`` and ``test`` (sorted lists; empty ones left out).

    The same names, fractions and seed always give the same split, whatever order the names come in.
    """
    ordered = sorted(names)
    n_val, n_test = split_counts(len(ordered), val_fraction, test_fraction)
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    splits = {
        "val": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }
    return {stage: sorted(chosen) for stage, chosen in splits.items() if chosen}
