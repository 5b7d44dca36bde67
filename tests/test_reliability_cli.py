"""User errors in the CLI are one ``error:`` line and exit 1, never a traceback (issue 12,
item 6): outputs are checked before any work, text inputs take ``--encoding``, a diverging
run says so, and an OSError about a path the user gave is one line too."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_prior
from test_cli import CENTRES, assert_error, run

from geoprior import read_logits
from geoprior.errors import EmptyDataError, FileEncodingError, PathError
from geoprior.io.logits import read_classes, read_points

BROKEN = Path(__file__).parent / "fixtures" / "broken"
TINY = [
    "--quiet", "--set", "steps=3", "--set", "model.width=8", "--set", "model.depth=1",
    "--set", "n_features=8", "--set", "batch_size=32",
]  # fmt: skip


def assert_one_line(result, fragment, *, logs=False):
    """Exit 1, no traceback, the error as the last line of stderr (the only one, unless the
    command logged progress before failing)."""
    assert_error(result, fragment)
    if not logs:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "s.prior"
    random_prior(3).save(path)
    return path


@pytest.fixture()
def inputs(tmp_path):
    np.save(tmp_path / "logits.npy", np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
    (tmp_path / "classes.txt").write_text("s0\ns1\ns2\n")
    pd.DataFrame({"latitude": [60.0, -25.0], "longitude": [-100.0, 135.0]}).to_csv(
        tmp_path / "points.csv", index=False
    )
    return tmp_path


def rerank_args(prior_dir, d, *, classes=None, points=None, logits=None, out="out.csv"):
    """``geoprior rerank`` on the inputs in ``d``, or on the files given instead."""
    classes, points = classes or d / "classes.txt", points or d / "points.csv"
    logits = logits or d / "logits.npy"
    return ["rerank", prior_dir, logits, "--classes", classes, "--points", points, "-o", d / out]


@pytest.fixture(scope="module")
def obs_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [
        (lat + rng.normal(), lon + rng.normal(), name, "2020-06-01")
        for name, (lat, lon) in CENTRES.items()
        for _ in range(20)
    ]
    path = tmp_path_factory.mktemp("relobs") / "obs.csv"
    pd.DataFrame(rows, columns=["latitude", "longitude", "species", "date"]).to_csv(
        path, index=False
    )
    return path


# ---------------------------------------------------------------------------- outputs
def test_rerank_into_a_missing_folder(prior_dir, inputs):
    result = run(*rerank_args(prior_dir, inputs, out="no/such/out.csv"))
    assert_one_line(result, "the folder")
    assert "no/such does not exist; create it first" in result.stderr


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_rerank_output_that_is_a_folder(prior_dir, inputs, overwrite):
    (inputs / "out").mkdir()
    result = run(*rerank_args(prior_dir, inputs, out="out"), *overwrite)
    assert_one_line(result, "is a folder; give the name of a file to write")


@pytest.mark.parametrize(
    "args",
    [
        ["s0", "-o", "no/such/map.geojson"],
        ["s0", "-o", "no/such/map.png"],
        ["s0", "-o", "no/such/map.csv"],
        ["--all-species", "-o", "no/such/all.parquet"],
    ],
    ids=["geojson", "png", "csv", "all-species"],
)
def test_range_map_into_a_missing_folder(prior_dir, tmp_path, args):
    args = [str(tmp_path / a) if a.startswith("no/") else a for a in args]
    result = run("range-map", prior_dir, *args, "--res", 1, "--threshold", 0.5, "--quiet")
    assert_one_line(result, "does not exist; create it first")


def test_range_map_output_that_is_a_folder(prior_dir, tmp_path):
    (tmp_path / "map.geojson").mkdir()
    args = ["range-map", prior_dir, "s0", "-o", tmp_path / "map.geojson", "--res", 1]
    assert_one_line(run(*args, "--threshold", 0.5, "--overwrite"), "is a folder")


def test_train_checks_its_output_before_reading_anything(obs_csv, tmp_path, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("read the observations before checking the output")

    monkeypatch.setattr("geoprior.cli.train.load_observations", no_reading)
    (tmp_path / "a.txt").write_text("not a prior")
    result = run("train", obs_csv, "-o", tmp_path / "a.txt", "--overwrite", *TINY)
    assert_one_line(result, "a.txt exists and is not a saved prior; refusing to replace it")
    assert (tmp_path / "a.txt").read_text() == "not a prior"
    (tmp_path / "mine").mkdir()
    result = run("train", obs_csv, "-o", tmp_path / "mine", "--overwrite", *TINY)
    assert_one_line(result, "is not a saved prior")
    result = run("train", obs_csv, "-o", tmp_path / "no" / "p.prior", *TINY)
    assert_one_line(result, "does not exist; create it first")
    assert not (tmp_path / "no").exists()
    result = run("train", obs_csv, "-o", tmp_path / "p", "--workdir", tmp_path / "a.txt", *TINY)
    assert_one_line(result, "--workdir")


def test_convert_checks_its_output(obs_csv, tmp_path):
    result = run("convert", obs_csv, "-o", tmp_path / "no" / "s.columns", "--quiet")
    assert_one_line(result, "does not exist; create it first")
    (tmp_path / "a.txt").write_text("x")
    result = run("convert", obs_csv, "-o", tmp_path / "a.txt", "--quiet", "--overwrite")
    assert_one_line(result, "is not a column store")


# ---------------------------------------------------------------------------- text inputs
def test_latin1_classes_file_suggests_an_encoding(prior_dir, inputs):
    args = rerank_args(prior_dir, inputs, classes=BROKEN / "cli-classes-latin1.txt")
    result = run(*args)
    assert_one_line(result, "cli-classes-latin1.txt: not valid UTF-8 text")
    assert "encoding='latin-1'" in result.stderr and "(CLI: --encoding)" in result.stderr
    result = run(*args, "--encoding", "latin-1", "--missing", "neutral")
    assert result.exit_code == 0, result.output
    assert "Corvus corax (grand corbeau, Québec)" in pd.read_csv(inputs / "out.csv").to_string()


def test_latin1_points_and_logits_take_an_encoding(prior_dir, inputs):
    logits, points = BROKEN / "cli-logits-latin1.csv", BROKEN / "cli-points-latin1.csv"
    result = run(*rerank_args(prior_dir, inputs, logits=logits))
    assert_one_line(result, "cli-logits-latin1.csv: not valid UTF-8 text")
    assert_one_line(run(*rerank_args(prior_dir, inputs, points=points)), "cli-points-latin1.csv")
    args = rerank_args(prior_dir, inputs, logits=logits, points=points)
    result = run(*args, "--encoding", "latin-1")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(inputs / "out.csv")) == 2


def test_empty_points_and_classes_files(prior_dir, inputs):
    result = run(*rerank_args(prior_dir, inputs, points=BROKEN / "cli-points-empty.csv"))
    assert_one_line(result, "cli-points-empty.csv is empty")
    (inputs / "empty.txt").write_text("\n \n")
    result = run(*rerank_args(prior_dir, inputs, classes=inputs / "empty.txt"))
    assert_one_line(result, "holds no class names")
    assert not (inputs / "out.csv").exists()


def test_unknown_encoding_is_a_usage_error(prior_dir, inputs):
    result = run(*rerank_args(prior_dir, inputs), "--encoding", "klingon")
    assert_error(result, "unknown encoding 'klingon'", code=2)


def test_train_and_convert_read_with_the_encoding(obs_csv, tmp_path):
    latin = tmp_path / "obs.csv"
    frame = pd.read_csv(obs_csv)
    frame["species"] = frame["species"].str.replace("Europaea", "Européa")
    frame.to_csv(latin, index=False, encoding="latin-1")
    assert_one_line(run("train", latin, "-o", tmp_path / "p", *TINY), "--encoding")
    result = run("train", latin, "-o", tmp_path / "p", "--encoding", "latin-1", *TINY)
    assert result.exit_code == 0, result.output
    assert_one_line(run("convert", latin, "-o", tmp_path / "s", "--quiet"), "--encoding")
    result = run("convert", latin, "-o", tmp_path / "s", "--quiet", "--encoding", "latin-1")
    assert result.exit_code == 0, result.output


def test_readers_behind_rerank_name_the_file():
    with pytest.raises(FileEncodingError, match="encoding='latin-1'"):
        read_classes(BROKEN / "cli-classes-latin1.txt")
    assert read_classes(BROKEN / "cli-classes-latin1.txt", encoding="latin-1")[2].endswith(
        "Québec)"
    )
    with pytest.raises(FileEncodingError, match="cli-points-latin1.csv"):
        read_points(BROKEN / "cli-points-latin1.csv")
    lat, lon, date = read_points(BROKEN / "cli-points-latin1.csv", encoding="latin-1")
    assert lat.tolist() == [60.0, -25.0] and lon.tolist() == [-100.0, 135.0] and date is None
    with pytest.raises(EmptyDataError, match="cli-points-empty.csv is empty"):
        read_points(BROKEN / "cli-points-empty.csv")
    with pytest.raises(FileEncodingError, match="line 1"):
        read_logits(BROKEN / "cli-logits-latin1.csv")
    assert read_logits(BROKEN / "cli-logits-latin1.csv", encoding="latin-1")[1][2].endswith("c)")


# ---------------------------------------------------------------------------- training
def test_a_diverging_run_is_one_line(obs_csv, tmp_path):
    out = tmp_path / "p"
    result = run("train", obs_csv, "-o", out, "--set", "learning_rate=1e12", *TINY)
    assert_one_line(result, "training diverged: the loss is nan at step", logs=True)
    assert "lower learning_rate (now 1e+12; CLI: --set learning_rate=1e+11)" in result.stderr
    assert not out.exists()
    result = run("-v", "train", obs_csv, "-o", out, "--set", "learning_rate=1e12", *TINY)
    assert isinstance(result.exception, FloatingPointError)


# ---------------------------------------------------------------------------- the safety net
def _failing_to_csv(path):
    def to_csv(self, target, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    return to_csv


def test_an_oserror_about_a_user_path_is_one_line(prior_dir, inputs, monkeypatch):
    out = inputs / "out.csv"
    tmp = inputs / ".out.csv.1234.tmp"
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing_to_csv(out))
    assert_one_line(run(*rerank_args(prior_dir, inputs)), f"{out}: Permission denied; check")
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing_to_csv(tmp))
    result = run(*rerank_args(prior_dir, inputs))
    assert_one_line(result, f"{out}: Permission denied ({tmp})")
    result = run("-v", *rerank_args(prior_dir, inputs))
    assert isinstance(result.exception, PathError)
    assert isinstance(result.exception.__cause__, PermissionError)


def test_other_errors_keep_their_traceback(prior_dir, inputs, monkeypatch):
    """An OSError about a path the user did not give, or any other exception, is a bug to
    report, not a user error: it is not turned into a one-liner."""
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing_to_csv("/elsewhere/cache.bin"))
    result = run(*rerank_args(prior_dir, inputs))
    assert type(result.exception) is PermissionError
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: 1 / 0)
    assert type(run(*rerank_args(prior_dir, inputs)).exception) is ZeroDivisionError


def test_no_traceback_from_a_real_process(prior_dir, inputs):
    """The installed entry point, not CliRunner: stderr is exactly one line."""
    args = [str(a) for a in rerank_args(prior_dir, inputs, out="no/such/out.csv")]
    proc = subprocess.run(
        [sys.executable, "-m", "geoprior.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot write ")
