import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geoprior import load_prior, rerank
from geoprior.cli import main

TINY = [
    "--set", "steps=20", "--set", "model.width=16", "--set", "model.depth=1",
    "--set", "n_features=16", "--set", "batch_size=64", "--set", "checkpoint_every=10",
]  # fmt: skip
CENTRES = {
    "Borealis alpha": (60.0, -100.0),
    "Australis beta": (-25.0, 135.0),
    "Europaea gamma": (48.0, 10.0),
}


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def assert_error(result, fragment, code=1):
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
        assert result.stdout == ""
    else:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def obs_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for name, (lat, lon) in CENTRES.items():
        for _ in range(40):
            day = np.datetime64("2020-01-01") + rng.integers(0, 365)
            rows.append((lat + rng.normal(0, 1), lon + rng.normal(0, 1), name, str(day)))
    path = tmp_path_factory.mktemp("cli") / "obs.csv"
    pd.DataFrame(rows, columns=["latitude", "longitude", "species", "date"]).to_csv(
        path, index=False
    )
    return path


@pytest.fixture(scope="module")
def prior_dir(obs_csv):
    """Train through the CLI, interrupted after the checkpoint at step 10, then resumed."""
    import geoprior.train.batches as tr

    out = obs_csv.parent / "birds.prior"
    work = obs_csv.parent / "birds.prior.work"
    original = tr.PermutationPlan.rows

    def interrupt_at_15(self, step):
        if step == 15:
            raise KeyboardInterrupt
        return original(self, step)

    tr.PermutationPlan.rows = interrupt_at_15
    try:
        result = run("train", obs_csv, "-o", out, "--quiet", *TINY)
    finally:
        tr.PermutationPlan.rows = original
    assert result.exit_code != 0 and not out.exists()
    assert json.loads((work / "checkpoint.json").read_text())["step"] == 10
    result = run("train", obs_csv, "-o", out, "--quiet", "--resume", *TINY)
    assert result.exit_code == 0, result.output
    assert "saved GeoPrior(3 species" in result.stderr and result.stdout == ""
    assert json.loads((work / "checkpoint.json").read_text())["step"] == 20
    return out


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("train", "predict", "species", "rerank"):
        assert command in result.output
    assert run("train", "--help").exit_code == 0


def test_train_writes_a_resumed_prior(prior_dir):
    prior = load_prior(prior_dir)
    assert sorted(prior.species) == sorted(CENTRES)
    assert prior.header["resolved"]["steps"] == 20
    assert prior.header["config"]["model"]["width"] == 16
    curve = prior.loss_curve
    assert curve.shape == (20,) and np.isfinite(curve).all() and (curve > 0).all()


def test_train_refuses_to_overwrite_and_overwrite_replaces(prior_dir, obs_csv):
    before = (prior_dir / "arrays.npz").read_bytes()
    expected = load_prior(prior_dir).predict(48.0, 10.0)
    assert_error(run("train", obs_csv, "-o", prior_dir, "--quiet", *TINY), "--overwrite")
    assert (prior_dir / "arrays.npz").read_bytes() == before
    # resuming the finished run trains no step: a cheap way to rewrite the output
    (prior_dir / "arrays.npz").unlink()
    result = run("train", obs_csv, "-o", prior_dir, "--quiet", "--resume", "--overwrite", *TINY)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(load_prior(prior_dir).predict(48.0, 10.0), expected)


def test_existing_checkpoint_needs_resume(prior_dir, obs_csv, tmp_path):
    work = prior_dir.with_name(prior_dir.name + ".work")
    args = ["train", obs_csv, "-o", tmp_path / "new", "--workdir", work, "--quiet", *TINY]
    assert_error(run(*args), "pass --resume to continue it or --overwrite")
    assert (work / "checkpoint.npz").exists()


def test_train_config_errors(obs_csv, tmp_path):
    out = tmp_path / "p"
    assert_error(
        run("train", obs_csv, "-o", out, "--set", "stepz=20"), "unknown config key 'stepz'"
    )
    assert_error(run("train", obs_csv, "-o", out, "--set", "steps=-3"), "steps must be")
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    assert_error(run("train", obs_csv, "-o", out, "--config", bad), "is not valid JSON")
    bad.write_text(json.dumps({"stepz": 3}))
    assert_error(run("train", obs_csv, "-o", out, "--config", bad), "unknown TrainConfig keys")
    assert_error(run("train", tmp_path / "none.csv", "-o", out), "none.csv")
    assert_error(run("train", "sample:nope", "-o", out), "no sample named 'nope'")
    assert not out.exists()


def test_verbose_shows_the_traceback(obs_csv, tmp_path):
    result = run("-v", "train", obs_csv, "-o", tmp_path / "p", "--set", "stepz=1")
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ConfigError"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "obs.csv"], "Missing option '-o'"),
        (["train", "obs.csv", "-o", "x", "--set", "steps"], "--set expects key=value"),
        (["predict", "PRIOR", "--lat", "1"], "Missing option '--lon'"),
        (["predict", "PRIOR", "--lat", "north", "--lon", "1"], "not a valid float"),
        (
            ["predict", "PRIOR", "--lat", "1", "--lon", "1", "--format", "xml"],
            "'xml' is not one of",
        ),
        (["species", "/no/such/prior"], "does not exist"),
        (["nonsense"], "No such command"),
    ],
)
def test_usage_errors_exit_2(args, fragment, prior_dir, obs_csv):
    args = [str(prior_dir) if a == "PRIOR" else str(obs_csv) if a == "obs.csv" else a for a in args]
    assert_error(run(*args), fragment, code=2)


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_predict_formats(prior_dir, fmt):
    result = run(
        "predict",
        prior_dir,
        "--lat",
        48,
        "--lon",
        10,
        "--date",
        "2021-06-01",
        "-k",
        2,
        "--format",
        fmt,
    )
    assert result.exit_code == 0, result.output
    expected = load_prior(prior_dir).top_k(48.0, 10.0, "2021-06-01", k=2)
    if fmt == "json":
        records = json.loads(result.stdout)
        assert [r["species"] for r in records] == expected["species"].tolist()
        assert [r["rank"] for r in records] == [1, 2]
    elif fmt == "csv":
        lines = result.stdout.strip().splitlines()
        assert lines[0] == "rank,species,prob,presence,outside_extent" and len(lines) == 3
        assert [line.split(",")[1] for line in lines[1:]] == expected["species"].tolist()
    else:
        lines = result.stdout.strip().splitlines()
        assert lines[0].split() == ["rank", "species", "prob", "presence", "outside_extent"]
        assert len(lines) == 3
        assert expected["species"].iloc[0] in lines[1]


def test_predict_bad_query_exits_1(prior_dir):
    assert_error(run("predict", prior_dir, "--lat", 91, "--lon", 0), "outside [-90, 90]")
    assert_error(
        run("predict", prior_dir, "--lat", 0, "--lon", 0, "--date", "2021-02-30"), "impossible"
    )
    assert_error(run("predict", prior_dir, "--lat", 0, "--lon", 0, "-k", 0), "k must be >= 1")


def test_species_lists_and_filters(prior_dir):
    result = run("species", prior_dir)
    assert result.exit_code == 0
    assert result.stdout.split("\n")[:-1] == sorted(CENTRES)
    result = run("species", prior_dir, "--match", "BETA")
    assert result.exit_code == 0 and result.stdout == "Australis beta\n"
    result = run("species", prior_dir, "--match", "Australis betta")
    assert_error(result, "no species matches 'Australis betta' (the prior knows")
    assert "Did you mean 'Australis beta'?" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, as every unknown species


def test_species_match_with_no_match_is_an_unknown_species(tmp_path):
    from geoprior import Observations
    from geoprior.priors.baselines import FrequencyPrior

    obs = Observations.from_arrays([1.0, 2.0], [1.0, 2.0], ["Australis beta", "Borealis alpha"])
    prior = FrequencyPrior.fit(obs)
    prior.save(tmp_path / "p")
    result = run("species", tmp_path / "p", "--match", "Australis betta")
    assert_error(result, "no species matches 'Australis betta' (the prior knows 2 species).")
    assert "Did you mean 'Australis beta'?" in result.stderr
    assert isinstance(result.exception, SystemExit) and result.stderr.count("\n") == 1
    assert run("species", tmp_path / "p", "--match", "ALPHA").stdout == "Borealis alpha\n"


def test_species_on_a_folder_that_is_not_a_prior(tmp_path):
    assert_error(run("species", tmp_path), "not a saved prior")


@pytest.fixture()
def rerank_inputs(tmp_path):
    classes = ["Europaea gamma", "Australis beta", "Borealis alpha"]
    logits = np.array([[2.0, 1.9, 0.0], [2.0, 1.9, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.0]])
    np.save(tmp_path / "logits.npy", logits)
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    pd.DataFrame(
        {
            "latitude": [-25.0, 48.0, 60.0, None],
            "longitude": [135.0, 10.0, -100.0, None],
            "date": ["2021-06-01", "2021-06-01", "", ""],
        }
    ).to_csv(tmp_path / "points.csv", index=False)
    return tmp_path


def test_rerank_writes_the_output_csv(prior_dir, rerank_inputs):
    d = rerank_inputs
    out = d / "out.csv"
    args = ["rerank", prior_dir, d / "logits.npy", "--classes", d / "classes.txt"]
    args += ["--points", d / "points.csv", "-o", out, "-k", 2]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "top-1 predictions changed" in result.stderr and result.stdout == ""
    frame = pd.read_csv(out)
    assert len(frame) == 4
    for col in (
        "species_1",
        "score_1",
        "species_2",
        "score_2",
        "classifier_species",
        "changed",
        "no_location",
    ):
        assert col in frame.columns
    assert frame["no_location"].tolist() == [False, False, False, True]
    assert frame["species_1"].iloc[3] == frame["classifier_species"].iloc[3] == "Europaea gamma"
    points = pd.read_csv(d / "points.csv")
    expected = rerank(
        np.load(d / "logits.npy"),
        (d / "classes.txt").read_text().split("\n")[:3],
        load_prior(prior_dir),
        points["latitude"].to_numpy(),
        points["longitude"].to_numpy(),
        points["date"].to_numpy(dtype=object),
        k=2,
    ).to_frame()
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert_error(run(*args), "--overwrite")
    assert run(*args, "--overwrite").exit_code == 0


def test_rerank_input_errors(prior_dir, rerank_inputs):
    d = rerank_inputs
    base = ["rerank", prior_dir, d / "logits.npy", "-o", d / "out.csv"]
    assert_error(run(*base, "--points", d / "points.csv"), "no class names; pass --classes", code=2)
    with_classes = base + ["--classes", d / "classes.txt"]
    pd.DataFrame({"latitude": [1.0], "longitude": [2.0]}).to_csv(d / "short.csv", index=False)
    assert_error(run(*with_classes, "--points", d / "short.csv"), "has 1 rows but")
    pd.DataFrame({"x_": [1.0] * 4, "y_": [2.0] * 4}).to_csv(d / "nocols.csv", index=False)
    assert_error(run(*with_classes, "--points", d / "nocols.csv"), "needs latitude and longitude")
    pd.DataFrame({"lat": ["1", "52N", "3", "4"], "lon": [1.0] * 4}).to_csv(
        d / "text.csv", index=False
    )
    assert_error(run(*with_classes, "--points", d / "text.csv"), "latitudes are not numbers")
    pd.DataFrame({"lat": [1.0, 95.0, 3.0, 4.0], "lon": [1.0] * 4}).to_csv(
        d / "far.csv", index=False
    )
    assert_error(run(*with_classes, "--points", d / "far.csv"), "outside [-90, 90]")
    (d / "classes.txt").write_text("Europaea gamma\nAustralis beta\nNovus delta\n")
    pd.DataFrame({"lat": [1.0] * 4, "lon": [1.0] * 4}).to_csv(d / "ok.csv", index=False)
    assert_error(run(*with_classes, "--points", d / "ok.csv"), "Novus delta")
    assert not (d / "out.csv").exists()


def test_convert_then_train_from_the_column_store(obs_csv, tmp_path):
    store = tmp_path / "obs.columns"
    result = run("convert", obs_csv, "-o", store, "--chunk-rows", 50, "--quiet")
    assert result.exit_code == 0, result.output
    assert "120 rows of 3 species" in result.stderr
    assert_error(run("convert", obs_csv, "-o", store, "--quiet"), "exists")
    out = tmp_path / "store.prior"
    result = run("train", store, "-o", out, "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    assert "ColumnStore" in result.stderr
    prior = load_prior(out)
    assert prior.species == tuple(sorted(CENTRES)) and prior.header["n_observations"] == 120


def test_rerank_matches_common_names_with_a_taxonomy(prior_dir, rerank_inputs, tmp_path):
    d = rerank_inputs
    taxonomy = tmp_path / "eBird_Taxonomy.csv"
    pd.DataFrame(
        {
            "SPECIES_CODE": ["eurgam", "ausbet", "boralp"],
            "PRIMARY_COM_NAME": ["European Gamma", "Southern Beta", "Northern Alpha"],
            "SCI_NAME": ["Europaea gamma", "Australis beta", "Borealis alpha"],
        }
    ).to_csv(taxonomy, index=False)
    (d / "common.txt").write_text("european_gamma\nausbet\nNorthern-Alpha\n")
    args = ["rerank", prior_dir, d / "logits.npy", "--points", d / "points.csv", "-k", 2]
    by_name = run(*args, "--classes", d / "classes.txt", "-o", d / "a.csv")
    assert by_name.exit_code == 0, by_name.output
    result = run(*args, "--classes", d / "common.txt", "-o", d / "b.csv")
    assert_error(result, "Pass taxonomy=FILE")
    result = run(*args, "--classes", d / "common.txt", "-o", d / "b.csv", "--taxonomy", taxonomy)
    assert result.exit_code == 0, result.output
    a, b = pd.read_csv(d / "a.csv"), pd.read_csv(d / "b.csv")
    rename = dict(zip(["Europaea gamma", "Australis beta", "Borealis alpha"],
                      ["european_gamma", "ausbet", "Northern-Alpha"], strict=True))
    pd.testing.assert_frame_equal(b, a.replace(rename))


def test_warnings_are_one_line_on_stderr(prior_dir, rerank_inputs):
    d = rerank_inputs
    logits = np.load(d / "logits.npy")
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.save(d / "probs.npy", probs)
    args = ["rerank", prior_dir, d / "probs.npy", "--classes", d / "classes.txt"]
    result = run(*args, "--points", d / "points.csv", "-o", d / "out.csv")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("warning: logits look like probabilities: all 4 rows")
    assert "Traceback" not in result.stderr and ".py:" not in result.stderr


def test_dash_writes_text_tables_to_stdout_and_never_a_file_named_dash(
    prior_dir, rerank_inputs, obs_csv, monkeypatch
):
    d = rerank_inputs
    runner = CliRunner()
    monkeypatch.chdir(d)
    # the working folder is d: a file named "-" would land there
    rerank_args = ["rerank", str(prior_dir), str(d / "logits.npy"), "--classes",
                   str(d / "classes.txt"), "--points", str(d / "points.csv"), "-k", "2"]
    result = runner.invoke(main, [*rerank_args, "-o", "-"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(frame) == 4 and "species_1" in frame.columns
    assert "top-1 predictions changed; printed them" in result.stderr
    result = runner.invoke(main, [*rerank_args, "-o", "out.parquet"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet("out.parquet"), frame, check_dtype=False)
    result = runner.invoke(main, [*rerank_args, "-o", "out.xlsx"])
    assert_error(result, "cannot write a table to a .xlsx file")
    predict = ["predict", str(prior_dir), "--lat", "48", "--lon", "10", "-k", "2"]
    result = runner.invoke(main, [*predict, "-o", "-", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["rank"] == 1
    result = runner.invoke(main, [*predict, "-o", "top.csv"])
    assert result.exit_code == 0 and "wrote 2 rows to top.csv" in result.stderr
    assert pd.read_csv("top.csv")["rank"].tolist() == [1, 2] and result.stdout == ""
    assert_error(runner.invoke(main, [*predict, "-o", "top.csv"]), "--overwrite")
    assert_error(runner.invoke(main, [*predict, "-o", "t.csv", "--format", "json"]),
                 "does not match", code=2)
    # binary outputs and folders refuse it, before any work
    assert_error(runner.invoke(main, ["convert", str(obs_csv), "-o", "-"]),
                 "-o - means standard output, which cannot take a column store (a folder)")
    assert_error(runner.invoke(main, ["train", str(obs_csv), "-o", "-", *TINY]),
                 "cannot take a saved prior (a folder); give a folder name")
    sl = ["species-list", str(prior_dir), "--lat", "48", "--lon", "10", "-o", "-"]
    assert_error(runner.invoke(main, [*sl, "--format", "parquet"]), "'parquet' is not one of",
                 code=2)
    result = runner.invoke(main, sl)
    assert result.exit_code == 0 and result.stdout.split()[0] == "rank"
    assert "," not in result.stdout  # the printed table, not CSV
    assert not (d / "-").exists() and not Path("-").exists()
