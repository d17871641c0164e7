"""SeriesDataModule: splits, standardisation, length policies and augmentation; `mantis fit` and `mantis test`
on series files end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.data.former_keywords import move_former_keywords
from mantis.data.series import SeriesDataModule, aeon_dataset_files, stratified_parts, stratified_split
from mantis.data.series_augment import SeriesAugment
from mantis.data.series_order import TrainingOrder
from mantis.io.errors import DataError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write_ts(path: Path, series: list[np.ndarray], labels: list[str], classes: list[str] | None = None) -> Path:
    """A .ts file of C x T_i arrays."""
    channels = series[0].shape[0]
    equal = len({s.shape[1] for s in series}) == 1
    lines = [
        "@problemName test",
        f"@univariate {'true' if channels == 1 else 'false'}",
        f"@dimensions {channels}",
        f"@equalLength {'true' if equal else 'false'}",
        f"@classLabel true {' '.join(classes or sorted(set(labels)))}",
        "@data",
    ]
    for x, label in zip(series, labels):
        lines.append(":".join(",".join(repr(float(v)) for v in row) for row in x) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def waves(count: int, length: int = 32, channels: int = 2, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Two separable classes: sines ('1') and square waves ('2') of random phase, with an offset per channel."""
    rng = np.random.default_rng(seed)
    series, labels = [], []
    t = np.linspace(0, 4 * np.pi, length)
    for i in range(count):
        wave = np.sin(t + rng.uniform(0, np.pi))
        x = np.sign(wave) if i % 2 else wave
        series.append(np.stack([x * (c + 1) + 10 * c for c in range(channels)]))
        labels.append("2" if i % 2 else "1")
    return series, labels


def test_splits_statistics_and_batches(tmp_path: Path) -> None:
    series, labels = waves(20)
    train = write_ts(tmp_path / "T_TRAIN.ts", series, labels)
    test = write_ts(tmp_path / "T_TEST.ts", *waves(6, seed=1))
    module = SeriesDataModule(str(train), str(test), val_fraction=0.2, batch_size=4)
    assert module.in_channels == 2 and module.class_names == ["1", "2"] and module.length == 32
    assert [len(module._labels[s]) for s in ("train", "val", "test")] == [16, 4, 6]
    assert np.bincount(module._labels["val"]).tolist() == [2, 2]  # stratified
    # statistics of the training cases only (not the validation ones)
    values = np.concatenate(module._raw["train"], axis=1)
    np.testing.assert_allclose(module.mean, values.mean(axis=1))
    np.testing.assert_allclose(module.std, values.std(axis=1))
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 2, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64
    test_batch = next(iter(module.test_dataloader()))
    expected = (module._raw["test"][0] - np.array(module.mean)[:, None]) / np.array(module.std)[:, None]
    np.testing.assert_allclose(test_batch["image"][0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_csv_file_alone_is_split_into_train_val_and_test(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    rows = [f"{i},{i + 1},{i + 2}{',' + str(i + 3) if i % 3 else ','},{'up' if i % 2 else 'flat'}" for i in range(20)]
    path.write_text("t0,t1,t2,t3,label\n" + "\n".join(rows) + "\n")
    module = SeriesDataModule(str(path), val_fraction=0.2, test_fraction=0.2, batch_size=4)
    assert module.class_names == ["flat", "up"] and module.length == 4  # rows of 3 steps are resampled to 4
    sizes = [np.bincount(module._labels[s], minlength=2).tolist() for s in ("train", "val", "test")]
    assert sizes == [[6, 6], [2, 2], [2, 2]]  # 20% of each class for validation and for testing


def test_stratified_split_is_seeded_and_keeps_every_class() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 2)
    kept, held = stratified_split(labels, 0.2, seed=7)
    assert sorted([*kept, *held]) == list(range(15))
    assert np.bincount(labels[held]).tolist() == [2, 1, 1]
    assert np.array_equal(held, stratified_split(labels, 0.2, seed=7)[1])
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=8)[1])


def test_fractions_that_leave_nothing_to_train_are_refused() -> None:
    labels = np.repeat(np.arange(3), 10)
    parts = stratified_parts(labels, 0.2, 0.3, seed=0)
    assert sum(len(v) for v in parts.values()) == 30 and len(parts["train"]) > 0
    for val, test in ((0.6, 0.6), (0.5, 0.5), (1.0, 0.0), (-0.1, 0.2)):
        with pytest.raises(ValueError, match="must be in \\[0, 1\\) and sum to less than 1"):
            stratified_parts(labels, val, test, seed=0)


def test_unequal_lengths_are_resampled_padded_or_refused(tmp_path: Path) -> None:
    series = [np.arange(n, dtype=float)[None] + k for k, n in enumerate([4, 6, 8, 5, 7, 6])]
    path = write_ts(tmp_path / "ragged.ts", series, ["a", "b"] * 3)
    resampled = SeriesDataModule(str(path), val_fraction=0.0, standardize=False)
    resampled.setup()
    item = resampled.splits["train"][0]
    assert item["image"].shape == (1, 8)  # the longest
    np.testing.assert_allclose(item["image"][0], np.linspace(0, 3, 8), rtol=1e-6)  # a ramp stays a ramp
    padded = SeriesDataModule(str(path), val_fraction=0.0, unequal_length="pad", series_length=6, standardize=False)
    padded.setup()
    first, longest = padded.splits["train"][0], padded.splits["train"][2]
    assert first["valid"].tolist() == [True] * 4 + [False] * 2
    np.testing.assert_array_equal(first["image"][0], [0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(longest["image"][0], [2, 3, 4, 5, 6, 7])  # cut at series_length
    with pytest.raises(DataError) as error:
        SeriesDataModule(str(path), unequal_length="error")
    assert str(error.value) == (
        f"{path}: has series of 4 steps, not 8, and unequal_length is 'error'; set unequal_length to resample or pad"
    )


def test_missing_values_are_filled_after_standardisation(tmp_path: Path) -> None:
    path = tmp_path / "gaps.ts"
    path.write_text("@univariate true\n@classLabel true a b\n@data\n1,?,3:a\n3,5,7:b\n?,?,?:a\n")
    module = SeriesDataModule(str(path), val_fraction=0.0)
    values = np.array([1, 3, 3, 5, 7], dtype=float)
    assert module.mean == pytest.approx([values.mean()]) and module.std == pytest.approx([values.std()])
    module.setup()
    x = [module.splits["train"][i]["image"][0].numpy() for i in range(3)]
    scaled = (np.array([1, 2, 3]) - values.mean()) / values.std()
    np.testing.assert_allclose(x[0], scaled, rtol=1e-6)  # the gap filled between its neighbours
    np.testing.assert_array_equal(x[2], [0, 0, 0])  # never observed: the training mean


def test_only_training_samples_are_augmented(tmp_path: Path) -> None:
    path = write_ts(tmp_path / "w.ts", *waves(8))
    augment = SeriesAugment(scale=0.2, jitter=0.1, time_warp=0.3, window_slice=0.2)
    module = SeriesDataModule(str(path), val_fraction=0.25, augment=augment)
    # the former spelling, one keyword per setting, builds the same augmentation (with a deprecation warning)
    with pytest.warns(DeprecationWarning, match=r"SeriesDataModule: the keywords scale, jitter, time_warp, window"):
        former = SeriesDataModule(str(path), val_fraction=0.25, scale=0.2, jitter=0.1, time_warp=0.3, window_slice=0.2)
    assert former.augment == augment
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'scal'"):
        SeriesDataModule(str(path), scal=0.2)
    with pytest.raises(TypeError, match=r"give augment or the former keywords scale, not both"):
        SeriesDataModule(str(path), augment=augment, scale=0.2)
    plain = SeriesDataModule(str(path), val_fraction=0.25)
    module.setup()
    plain.setup()
    train, reference = module.splits["train"], plain.splits["train"]
    a, b = train[(0, 123)]["image"], train[(0, 123)]["image"]
    assert torch.equal(a, b) and not torch.allclose(a, reference[0]["image"])  # seeded, and changed
    assert torch.equal(train[0]["image"], reference[0]["image"])  # a plain index: no augmentation
    assert torch.equal(module.splits["val"][(0, 5)]["image"], plain.splits["val"][0]["image"])


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    train = write_ts(tmp_path / "A_TRAIN.ts", *waves(6))
    other = write_ts(tmp_path / "A_TEST.ts", waves(2)[0], ["1", "3"], classes=["1", "3"])
    with pytest.raises(DataError, match=r"A_TEST\.ts: class '3' is not among the training classes \(1, 2\)"):
        SeriesDataModule(str(train), str(other))
    narrow = write_ts(tmp_path / "B_TEST.ts", *waves(2, channels=1))
    with pytest.raises(DataError, match=r"B_TEST\.ts: 1 dimensions, but the training file has 2"):
        SeriesDataModule(str(train), str(narrow))
    target = tmp_path / "R_TRAIN.ts"
    target.write_text("@univariate true\n@targetLabel true\n@data\n1,2:0.5\n3,4:1.5\n")
    with pytest.raises(DataError, match=r"R_TRAIN\.ts: holds regression targets \(@targetLabel true\)"):
        SeriesDataModule(str(target))
    with pytest.raises(ValueError, match="give aeon_dataset or train_path/test_path, not both"):
        SeriesDataModule(str(train), aeon_dataset="GunPoint")


def test_aeon_dataset_names_files_inside_the_installed_package() -> None:
    pytest.importorskip("aeon")
    train, test = aeon_dataset_files("GunPoint")
    assert train.name == "GunPoint_TRAIN.ts" and test.name == "GunPoint_TEST.ts"
    assert "aeon" in train.parts and train.is_file() and test.is_file()
    with pytest.raises(DataError, match=r"aeon ships no data set 'Nope' as \.ts files; bundled: .*GunPoint"):
        aeon_dataset_files("Nope")
    module = SeriesDataModule(aeon_dataset="BasicMotions", val_fraction=0.3)
    assert module.in_channels == 6 and module.class_names == ["Badminton", "Running", "Standing", "Walking"]
    assert [len(module._labels[s]) for s in ("train", "val", "test")] == [28, 12, 40]  # 10 per class, 3 held out


def test_aeon_dataset_without_aeon_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"^aeon_dataset 'GunPoint' needs the aeon package \(pip install aeon\)"):
        SeriesDataModule(aeon_dataset="GunPoint")


def _config(name: str, train: Path, test: Path, run: Path) -> dict:
    config = yaml.safe_load((CONFIGS / name).read_text())
    config["trainer"] = {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False, "logger": True}
    init = config["data"]["init_args"]
    init.pop("aeon_dataset")
    init.update({"train_path": str(train), "test_path": str(test), "batch_size": 4})
    config["run_dir"] = str(run)
    return config


def test_fit_and_test_a_tiny_fractal_classifier_through_the_cli(tmp_path: Path) -> None:
    train = write_ts(tmp_path / "W_TRAIN.ts", *waves(16))
    test = write_ts(tmp_path / "W_TEST.ts", *waves(6, seed=1))
    config = _config("series_gunpoint_fractal.yaml", train, test, tmp_path / "run")
    config["model"]["init_args"]["model_kwargs"].update({"nf": 4, "depth": 2, "nheads_start": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["task"] == "classification" and record["model"] == "fractal_resnet"
    assert record["model_kwargs"]["in_channels"] == 2 and record["model_kwargs"]["num_classes"] == 2
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and set(record["metrics"]) >= {"f1_1", "f1_2", "mcc_macro"}
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert checkpoint["SeriesDataModule"]["complete"] is True  # the training order travels with the weights
    module = SeriesDataModule(str(train), str(test))
    np.testing.assert_allclose(hparams["band_mean"], module.mean)  # the training cases' statistics, kept
    assert hparams["class_names"] == ["1", "2"]

    # mantis test with the checkpoint writes the same test metrics
    args = ["test", "--config", str(tmp_path / "c.yaml"), "--ckpt_path", str(best), "--run_dir", str(tmp_path / "t")]
    assert main(args) == 0
    again = json.loads((tmp_path / "t" / "test_metrics.json").read_text())
    assert again["metrics"]["accuracy"] == pytest.approx(record["metrics"]["accuracy"])


def test_the_training_order_resumes_at_the_saved_batch() -> None:
    torch.manual_seed(0)
    first = TrainingOrder()
    sampler = first.sampler_for(10, batch_size=2, drop_last=False)
    list(sampler)  # epoch 0
    next(iter(sampler))  # epoch 1 begins: 3 batches done when the checkpoint is taken
    progress = SimpleNamespace(processed=3, completed=3)
    trainer = SimpleNamespace(
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=progress))),
        num_training_batches=5,
    )
    state = first.state_dict(trainer)
    assert state == {"sampler_seed": sampler.seed, "epoch": 1, "batches": 3, "complete": False}
    torch.manual_seed(1)  # another seed: the order must come from the checkpoint
    second = TrainingOrder()
    second.load_state_dict(state)
    resumed = list(second.sampler_for(10, batch_size=2, drop_last=False))
    assert resumed == sampler.keys(1)[6:]  # the rest of epoch 1, same sample seeds
    assert list(second.sampler) == sampler.keys(2)


def test_ragged_series_refused_by_the_cli_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = [np.zeros((1, n)) + k for k, n in enumerate([5, 6, 5, 6])]
    train = write_ts(tmp_path / "R_TRAIN.ts", series, ["a", "b", "a", "b"])
    config = _config("series_gunpoint.yaml", train, train, tmp_path / "run")
    config["data"]["init_args"]["unequal_length"] = "error"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{train}: has series of 5 steps, not 6, and unequal_length is 'error'" in err[0]
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_a_2d_cnn_on_series_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_ts(tmp_path / "C_TRAIN.ts", *waves(8))
    config = _config("series_gunpoint.yaml", train, train, tmp_path / "run")
    config["model"]["init_args"]["model_kwargs"] = {"widths": [4]}  # spatial_dims forgotten: 2 by default
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mantis fit: error: model_kwargs spatial_dims=2, but SeriesDataModule gives 1D samples; use spatial_dims: 1"
    ]


def test_the_former_flat_keys_of_a_config_move_under_augment() -> None:
    config = {"data": {"class_path": "mantis.data.SeriesDataModule", "init_args": {"scale": 0.1, "jitter": 0.2}}}
    config["data"]["init_args"].update({"augment": {"scale": 0.3}, "batch_size": 4})
    with pytest.warns(FutureWarning, match=r"data init_args\.scale, init_args\.jitter: deprecated, now under"):
        moved = move_former_keywords(config)
    assert moved["data"]["init_args"] == {"augment": {"scale": 0.3, "jitter": 0.2}, "batch_size": 4}  # new wins
    image = {"class_path": "mantis.data.SegmentationDataModule", "init_args": {"scale": 0.1}}
    assert move_former_keywords(copy.deepcopy(image)) == image  # never a key of theirs: left to the parser
