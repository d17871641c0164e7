"""Band statistics equal NumPy's on the concatenated data; the command prints YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mantis.data.errors import DataError
from mantis.data.io import write_image
from mantis.data.stats import compute_band_stats, main


def test_stats_equal_numpy_over_all_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 3000, (4, h, w)).astype(np.uint16) for h, w in ((30, 20), (17, 41), (5, 5))]
    paths = []
    for i, array in enumerate(arrays):
        paths.append(tmp_path / f"{i}.tif")
        write_image(paths[-1], array)
    mean, std = compute_band_stats(paths, progress=False, rows_per_read=7)  # several strips per file
    pixels = np.concatenate([a.reshape(4, -1) for a in arrays], axis=1).astype(np.float64)
    assert np.allclose(mean, pixels.mean(axis=1), rtol=1e-12)
    assert np.allclose(std, pixels.std(axis=1), rtol=1e-10)


def test_nodata_pixels_are_left_out(tmp_path: Path) -> None:
    array = np.array([[[1.0, 2.0], [3.0, -9999.0]]], dtype=np.float32)
    write_image(tmp_path / "x.tif", array, nodata=-9999.0)
    mean, std = compute_band_stats([tmp_path / "x.tif"], progress=False)
    assert mean == [pytest.approx(2.0)] and std == [pytest.approx(np.std([1.0, 2.0, 3.0]))]


def test_different_band_counts_are_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((3, 4, 4), np.uint8))
    write_image(tmp_path / "b.png", np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match="b.png: has 1 bands but .*a.png has 3"):
        compute_band_stats([tmp_path / "a.png", tmp_path / "b.png"], progress=False)


def test_command_prints_yaml_for_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    first, second = (rng.integers(0, 256, (3, 8, 8)).astype(np.uint8) for _ in range(2))
    write_image(tmp_path / "A" / "x.png", first)
    write_image(tmp_path / "B" / "x.png", second)
    assert main([str(tmp_path / "A"), str(tmp_path / "B"), "--no-progress"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    pixels = np.concatenate([first.reshape(3, -1), second.reshape(3, -1)], axis=1)
    assert np.allclose(printed["mean"], pixels.mean(axis=1), rtol=1e-5)
    assert np.allclose(printed["std"], pixels.std(axis=1), rtol=1e-5)


def test_command_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    # The policy of every command (mantis.commands): prefix, one line, exit status 2.
    assert main([str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"mantis stats: error: {tmp_path / 'empty'}: no images found")
    assert main([str(tmp_path / "missing.tif")]) == 2
    assert main([]) == 2
