"""Tests of geoprior.io.logits.read_logits."""

from __future__ import annotations

import numpy as np
import pytest

from geoprior.errors import (
    ConfigError,
    EmptyDataError,
    FileEncodingError,
    FormatError,
    MissingFileError,
    NonFiniteError,
)
from geoprior.io.logits import read_classes, read_logits, read_points

LOGITS = np.array([[1.5, -0.25, 3.0], [0.0, 2.0, -1.0]])
CLASSES = ("Sturnella magna", "Sturnella neglecta", "Turdus migratorius")


def test_npy_and_single_row(tmp_path):
    np.save(tmp_path / "a.npy", LOGITS.astype(np.float32))
    logits, classes = read_logits(tmp_path / "a.npy")
    assert classes is None and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, LOGITS.astype(np.float32))
    np.save(tmp_path / "row.npy", LOGITS[0])
    assert read_logits(tmp_path / "row.npy")[0].shape == (1, 3)


def test_npz_single_named_and_with_classes(tmp_path):
    np.savez(tmp_path / "one.npz", whatever=LOGITS)
    np.testing.assert_array_equal(read_logits(tmp_path / "one.npz")[0], LOGITS)
    np.savez(tmp_path / "named.npz", logits=LOGITS, classes=np.array(CLASSES), ids=np.arange(2))
    logits, classes = read_logits(tmp_path / "named.npz")
    np.testing.assert_array_equal(logits, LOGITS)
    assert classes == CLASSES
    np.savez(tmp_path / "many.npz", a=LOGITS, b=LOGITS)
    with pytest.raises(FormatError, match="2 arrays.*'logits'"):
        read_logits(tmp_path / "many.npz")
    np.savez(tmp_path / "short.npz", logits=LOGITS, classes=np.array(CLASSES[:2]))
    with pytest.raises(FormatError, match="2 class names for 3 columns"):
        read_logits(tmp_path / "short.npz")


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text(
        "Sturnella magna, Sturnella neglecta,Turdus migratorius\n1.5,-0.25,3\n0,2,-1\n",
        encoding="utf-8",
    )
    logits, classes = read_logits(tmp_path / "h.csv")
    np.testing.assert_array_equal(logits, LOGITS)
    assert classes == CLASSES
    (tmp_path / "n.tsv").write_text("1.5\t-0.25\t3\n0\t2\t-1\n", encoding="utf-8")
    logits, classes = read_logits(tmp_path / "n.tsv")
    np.testing.assert_array_equal(logits, LOGITS)
    assert classes is None


def test_csv_bad_cells(tmp_path):
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,4\n5,oops\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"1 of 3 rows.*row 2, column 'b' = 'oops'"):
        read_logits(tmp_path / "text.csv")
    (tmp_path / "nan.csv").write_text("a,b\n1,2\n,4\n5,inf\n", encoding="utf-8")
    with pytest.raises(NonFiniteError, match=r"2 of 3 rows.*first: row 1, column 0"):
        read_logits(tmp_path / "nan.csv")
    (tmp_path / "header.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(EmptyDataError):
        read_logits(tmp_path / "header.csv")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(EmptyDataError):
        read_logits(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes("Turdus,M\xe9sange\n1,2\n".encode("latin-1"))
    with pytest.raises(FileEncodingError):
        read_logits(tmp_path / "latin.csv")


def test_bad_files(tmp_path):
    with pytest.raises(MissingFileError):
        read_logits(tmp_path / "absent.npy")
    with pytest.raises(FormatError, match=r"\.npy"):
        read_logits(tmp_path / "logits.npx")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(FormatError, match=r"\(2, 2, 2\)"):
        read_logits(tmp_path / "cube.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(FormatError, match="numbers"):
        read_logits(tmp_path / "text.npy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="npz"):
        read_logits(tmp_path / "junk.npz")
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError):
        read_logits(tmp_path / "objects.npy")
    bad = LOGITS.copy()
    bad[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(NonFiniteError, match="1 of 2 rows.*row 1, column 2"):
        read_logits(tmp_path / "nan.npy")


@pytest.mark.parametrize("read", [read_logits, read_classes, read_points])
def test_an_unknown_encoding_is_a_config_error_naming_the_file(tmp_path, read):
    path = tmp_path / "in.csv"
    path.write_text("latitude,longitude\n1.0,2.0\n")
    with pytest.raises(ConfigError, match=r"in\.csv: encoding= 'bogus' is not a text encoding"):
        read(path, encoding="bogus")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_points_file_is_empty_data(tmp_path, text):
    path = tmp_path / "points.csv"
    path.write_text(text)
    with pytest.raises(EmptyDataError, match=r"points\.csv is empty"):
        read_points(path)
