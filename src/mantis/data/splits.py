"""How a folder is divided into splits: pure functions, no files touched (the callers read the lists)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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


def listed_split(
    keys: Sequence[str],
    listed: Mapping[str, Sequence[str]],
    name_of: Callable[[str], tuple[str, ...]],
    lookup: Callable[[str], str] = str,
) -> dict[str, list[str]]:
    """The split given by name lists (from ``train_file``, ``val_file``, ``test_file``).

    Args:
        keys: every sample of the folder.
        listed: stage -> the names its list holds, in order.
        name_of: the names a key answers to (e.g. its file name and its stem).
        lookup: the name a listed entry is looked up by (messages quote the entry as written).

    Returns:
        stage -> keys, in list order; without a ``train`` list, training takes every key the other lists do
        not name.

    Raises:
        ValueError: ``"<stage>: line N: 'name' ..."`` for a name no key answers to, or one already listed.
    """
    by_name: dict[str, str] = {}
    for key in keys:
        for name in name_of(key):
            by_name.setdefault(name, key)
    out: dict[str, list[str]] = {}
    taken: set[str] = set()
    for stage, names in listed.items():
        chosen = []
        for line, name in enumerate(names, 1):
            if lookup(name) not in by_name:
                raise ValueError(f"{stage}: line {line}: {name!r} is not in the folder")
            key = by_name[lookup(name)]
            if key in taken:
                raise ValueError(f"{stage}: line {line}: {name!r} is listed twice (or in two splits)")
            taken.add(key)
            chosen.append(key)
        out[stage] = chosen
    if "train" not in out:
        out["train"] = [key for key in keys if key not in taken]
    return out
