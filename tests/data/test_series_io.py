"""The .ts and CSV series readers: hand-written files, malformed files in one line, and aeon's loader as reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mantis.data.series_io import class_order, read_series, read_series_csv, read_ts
from mantis.io.errors import DataError

MULTIVARIATE = """# a comment
@problemName Tiny
@timestamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
# comments may sit among the cases
7,?,9,10:11,12,13,14:b

0.5,1e-3:-2,3:a
"""


def test_multivariate_unequal_length_with_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "tiny.ts"
    path.write_text(MULTIVARIATE)
    data = read_ts(path)
    assert data.name == "Tiny" and data.declared_labels == ["a", "b"] and data.labels == ["a", "b", "a"]
    assert data.channels == 2 and data.lengths == [3, 4, 2] and not data.equal_length
    np.testing.assert_array_equal(data.series[0], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(data.series[1], [[7, np.nan, 9, 10], [11, 12, 13, 14]])
    np.testing.assert_array_equal(data.series[2], [[0.5, 0.001], [-2, 3]])


def test_univariate_without_labels_and_dispatch_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "u.ts"
    path.write_text("@univariate true\n@classlabel false\n@DATA\n1,2\n3,4\n")
    data = read_series(path)
    assert data.labels is None and data.name == "u" and data.equal_length
    np.testing.assert_array_equal(np.stack(data.series), [[[1, 2]], [[3, 4]]])
    with pytest.raises(DataError, match=r"u\.txt: unknown series format '\.txt'; use a \.ts, \.csv or \.parquet file"):
        read_series(tmp_path / "u.txt")


def test_csv_rows_of_different_lengths_and_missing_cells(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("t0,t1,t2,class\n1,2,3,x\n4,?,,y\n5,,6,x\n")
    data = read_series_csv(path, "class")
    assert data.labels == ["x", "y", "x"] and data.lengths == [3, 2, 3] and data.declared_labels is None
    np.testing.assert_array_equal(data.series[1], [[4, np.nan]])  # the empty last cell ends the series
    np.testing.assert_array_equal(data.series[2], [[5, np.nan, 6]])  # an empty cell inside it is missing
    with pytest.raises(DataError, match=r"s\.csv: has no column 'label'"):
        read_series_csv(path)


def test_parquet_rows_read_as_the_same_series_as_csv(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("t0,t1,t2,class\n1,2,3,x\n4,5,,y\n")
    table = pa.table({"t0": [1.0, 4.0], "t1": [2.0, 5.0], "t2": [3.0, None], "class": ["x", "y"]})
    pq.write_table(table, tmp_path / "s.parquet")
    from_csv, from_parquet = read_series(csv_path, "class"), read_series(tmp_path / "s.parquet", "class")
    assert from_parquet.labels == from_csv.labels == ["x", "y"] and from_parquet.lengths == [3, 2]
    for a, b in zip(from_parquet.series, from_csv.series):
        np.testing.assert_array_equal(a, b)


def test_class_order_is_numeric_when_every_label_is_a_number() -> None:
    assert class_order(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert class_order(["b", "10", "a"]) == ["10", "a", "b"]


HEADER = "@univariate true\n@classLabel true 1 2\n@data\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER + "1,2:1\n1,x:2\n", "line 5, dimension 1: 'x' is not a number"),
        (HEADER + "1,2:1\n1,inf:2\n", "line 5, dimension 1: 'inf' is not a number"),
        (HEADER + "1,2:3\n", "line 4: class '3' is not declared by @classLabel (1 2)"),
        (HEADER + "1,2\n", "line 4: no label after the values (':' then the class)"),
        (HEADER + "1,2:3,4:1\n", "line 4: 2 dimensions, expected 1"),
        (HEADER + ":1\n", "line 4, dimension 1: no values"),
        (
            "@dimensions 2\n@classLabel true 1\n@data\n1,2:3:1\n",
            "line 4: its dimensions have different lengths (1 to 2)",
        ),
        (
            "@equalLength true\n@seriesLength 3\n@classLabel false\n@data\n1,2\n",
            "line 5: length 2, but the header says",
        ),
        ("@timeStamps true\n@data\n", "line 1: @timeStamps true (values with time stamps) is not supported"),
        ("@missing maybe\n@data\n", "line 1: @missing needs true or false"),
        ("@dimensions two\n@data\n", "line 1: @dimensions needs a positive whole number"),
        ("@classLabel true\n@data\n", "line 1: @classLabel true lists no class"),
        ("@univariate true\n1,2\n", "line 2: a value before @data"),
        ("@univariate true\n", "has no @data line"),
        (HEADER, "has no case after @data"),
    ],
)
def test_malformed_ts_files_give_one_line_naming_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.ts"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        read_ts(path)
    assert str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value)


def _aeon_file(name: str) -> Path:
    pytest.importorskip("aeon.datasets")
    spec = importlib.util.find_spec("aeon")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name.split("_")[0] / f"{name}.ts"


@pytest.mark.parametrize(
    "name",
    ["GunPoint_TRAIN", "BasicMotions_TRAIN", "JapaneseVowels_TEST"],  # univariate, multivariate, unequal length
)
def test_same_arrays_and_labels_as_aeons_loader(name: str) -> None:
    path = _aeon_file(name)
    from aeon.datasets import load_from_ts_file

    expected, labels = load_from_ts_file(str(path))
    data = read_ts(path)
    assert len(data.series) == len(expected) > 0
    for ours, theirs in zip(data.series, expected):
        np.testing.assert_array_equal(ours, theirs)
    assert data.labels is not None
    assert [label.lower() for label in data.labels] == list(labels)  # aeon writes class names in lower case
    assert data.equal_length == (name != "JapaneseVowels_TEST")


def test_an_infinite_csv_cell_is_refused_naming_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("label,t0,t1\na,1,2\nb,-inf,3\n")  # one inf would make the channel's statistics infinite
    with pytest.raises(DataError, match="row 3, column 't0': '-inf' is not a number"):
        read_series_csv(path)
    path.write_text("label,t0,t1\na,1,2\n\n\nb,x,3\n")
    with pytest.raises(DataError, match="row 5, column 't0': 'x' is not a number"):
        read_series_csv(path)
