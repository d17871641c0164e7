"""Random splits of a folder: seeded, disjoint, complete, and a refusal that says how to fix it."""

from __future__ import annotations

import pytest

from mantis.data.splits import random_split, split_counts


@pytest.mark.parametrize(
    ("total", "val", "test", "want"),
    [(100, 0.1, 0.1, (10, 10)), (7, 0.1, 0.1, (1, 1)), (20, 0.25, 0.0, (5, 0)), (10, 0.0, 0.0, (0, 0))],
)
def test_counts_round_and_keep_at_least_one(total: int, val: float, test: float, want: tuple[int, int]) -> None:
    assert split_counts(total, val, test) == want


def test_split_is_seeded_disjoint_complete_and_order_free() -> None:
    names = [f"tile_{i:02d}.png" for i in range(30)]
    split = random_split(names, 0.2, 0.1, seed=3)
    assert [len(split[s]) for s in ("train", "val", "test")] == [21, 6, 3]
    assert sorted(sum(split.values(), [])) == names  # every name once
    assert random_split(list(reversed(names)), 0.2, 0.1, seed=3) == split
    assert random_split(names, 0.2, 0.1, seed=4) != split
    assert all(chosen == sorted(chosen) for chosen in split.values())
    assert "test" not in random_split(names, 0.2, 0.0, seed=3)


def test_too_few_images_name_the_ways_out() -> None:
    with pytest.raises(ValueError, match=r"2 images are too few .* leave none to train on\): add images, set "):
        random_split(["a.png", "b.png"], 0.1, 0.1, seed=0)
    assert random_split(["a.png", "b.png"], 0.1, 0.0, seed=0)["train"] in (["a.png"], ["b.png"])


def test_listed_split_takes_the_lists_and_leaves_training_the_rest() -> None:
    from mantis.data.splits import listed_split

    keys = ["a/x.nii.gz", "a/y.npy", "a/z.nii.gz", "a/w.npy"]

    def names(key: str) -> tuple[str, ...]:
        name = key.split("/")[-1]
        return name, name.split(".")[0]

    got = listed_split(keys, {"val": ["z"], "test": ["y.npy", "x"]}, names)
    assert got == {"val": ["a/z.nii.gz"], "test": ["a/y.npy", "a/x.nii.gz"], "train": ["a/w.npy"]}
    assert listed_split(keys, {"train": ["w", "x"]}, names) == {"train": ["a/w.npy", "a/x.nii.gz"]}
    with pytest.raises(ValueError, match=r"^test: line 2: 'v' is not in the folder$"):
        listed_split(keys, {"test": ["x", "v"]}, names)
    with pytest.raises(ValueError, match=r"^test: line 1: 'x.nii.gz' is listed twice \(or in two splits\)$"):
        listed_split(keys, {"val": ["x"], "test": ["x.nii.gz"]}, names)
