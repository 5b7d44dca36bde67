"""Corrupt saved priors fail at load with one PriorFileError naming the file and the problem
(issue 12, item 4): they never load and predict NaN or 0.5 everywhere."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_prior

from geoprior import FrequencyPrior, NearestNeighborPrior, Observations, PriorFileError, load_prior
from geoprior.cli import main
from geoprior.persistence import ARRAYS, HEADER


@pytest.fixture(scope="module")
def small_prior():
    return random_prior(3, width=8, depth=1)


def _edit_header(path, edit):
    header = json.loads((path / HEADER).read_text())
    edit(header)
    (path / HEADER).write_text(json.dumps(header))


def _edit_arrays(path, edit):
    with np.load(path / ARRAYS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(path / ARRAYS, **arrays)


def _set(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key])

    return edit


def _poison(value):
    def edit(a):
        a = a.copy()
        a.flat[5] = value
        return a

    return edit


KERNEL = "params/head_out/kernel"
BROKEN_ARRAYS = {
    "nan": (_set(KERNEL, _poison(np.nan)), r"'params/head_out/kernel' has 1 of 24 values NaN"),
    "inf": (
        _set(KERNEL, _poison(-np.inf)),
        r"1 of 24 values NaN or infinite; first: index \(1, 2\) = -inf",
    ),
    "int": (
        _set(KERNEL, lambda a: a.astype(np.int64)),
        "'params/head_out/kernel' holds int64 values, expected floating point",
    ),
    "shape": (_set(KERNEL, lambda a: a[:, :2]), r"has shape \(8, 2\), expected \(8, 3\)"),
    "extra block": (
        lambda a: a.update({"params/blocks_1/Dense_0/bias": np.zeros(8, np.float32)}),
        "the header does not describe: 'params/blocks_1/Dense_0/bias'",
    ),
    "missing array": (lambda a: a.pop("params/inp/bias"), "missing: 'params/inp/bias'"),
    "nan loss curve": (
        lambda a: a.update({"loss_curve": np.array([1.0, np.nan], np.float32)}),
        "'loss_curve' has 1 of 2 values NaN",
    ),
}


@pytest.mark.parametrize("case", BROKEN_ARRAYS)
def test_broken_weights_fail_at_load(tmp_path, small_prior, case):
    edit, message = BROKEN_ARRAYS[case]
    path = small_prior.save(tmp_path / "p.prior")
    _edit_arrays(path, edit)
    with pytest.raises(PriorFileError, match=message) as e:
        load_prior(path)
    assert str(e.value).startswith(f"{path} is incomplete or corrupt: ")


def _header_set(dotted, value):
    def edit(header):
        *parents, last = dotted.split(".")
        for p in parents:
            header = header[p]
        header[last] = value

    return edit


def _header_del(dotted):
    def edit(header):
        *parents, last = dotted.split(".")
        for p in parents:
            header = header[p]
        del header[last]

    return edit


BROKEN_HEADERS = {
    "depth more than stored": (
        _header_set("config.model.depth", 2),
        "1 of 24|missing: 'params/blocks_1/Dense_0/bias'",
    ),
    "depth less than stored": (
        _header_set("config.model.depth", 0),
        "the header does not describe: 'params/blocks_0/Dense_0/bias'",
    ),
    "width": (
        _header_set("config.model.width", 16),
        r"'params/blocks_0/Dense_0/bias' has shape \(8,\), expected \(16,\)",
    ),
    "depth a string": (
        _header_set("config.model.depth", "1"),
        "header field 'config.model.depth': expected an integer, got '1'",
    ),
    "depth a bool": (
        _header_set("config.model.depth", True),
        "'config.model.depth': expected an integer, got True",
    ),
    "use_date flipped": (_header_set("resolved.use_date", True), "'params/inp/kernel' has shape"),
    "unknown loss": (_header_set("config.loss", "hinge"), "'config.loss': expected one of"),
    "duplicate species": (
        _header_set("species", ["s0", "s1", "s0"]),
        "1 of 3 species names appear more than once; first: 's0' at positions 0 and 2",
    ),
    "empty species": (
        _header_set("species", ["s0", " ", "s2"]),
        "1 of 3 species names are empty or not strings; first: position 1 = ' '",
    ),
    "species not strings": (_header_set("species", ["s0", 1, "s2"]), "position 1 = 1"),
    "no species": (_header_set("species", []), "'species': expected a non-empty list"),
    "species missing": (_header_del("species"), "header field 'species' is missing"),
    "model missing": (_header_del("config.model"), "'config.model.width' is missing"),
    "encoder missing": (_header_del("resolved.encoder"), "'resolved.encoder' is missing"),
    "bad encoder": (
        _header_set("resolved.encoder", {"kind": "fourier", "bogus": 1}),
        "the header does not describe a valid prior: TypeError",
    ),
    "version 0": (_header_set("format_version", 0), "format version 0, expected an integer"),
    "version -1": (_header_set("format_version", -1), "format version -1, expected an integer"),
    "version true": (_header_set("format_version", True), "format version True, expected an"),
    "version a string": (_header_set("format_version", "1"), "format version '1', expected"),
    "version missing": (_header_del("format_version"), "has no format version"),
}


@pytest.mark.parametrize("case", BROKEN_HEADERS)
def test_broken_headers_fail_at_load(tmp_path, small_prior, case):
    edit, message = BROKEN_HEADERS[case]
    path = small_prior.save(tmp_path / "p.prior")
    _edit_header(path, edit)
    with pytest.raises(PriorFileError, match=message) as e:
        load_prior(path)
    assert str(path) in str(e.value)


def test_a_sound_prior_still_loads_bit_identical(tmp_path, small_prior):
    path = small_prior.save(tmp_path / "p.prior")
    loaded = load_prior(path)
    lat, lon = np.array([44.0, -10.0]), np.array([-71.0, 20.0])
    np.testing.assert_array_equal(loaded.predict(lat, lon), small_prior.predict(lat, lon))


def test_covariate_statistics_are_checked(tmp_path):
    prior = random_prior(2, width=8, n_covariates=2)
    path = prior.save(tmp_path / "p.prior")
    _edit_arrays(path, lambda a: a.pop("cov_std"))
    with pytest.raises(PriorFileError, match="missing: 'cov_std'"):
        load_prior(path)
    path = prior.save(tmp_path / "p.prior")
    _edit_arrays(path, _set("cov_mean", lambda a: np.array([1.0, np.inf], np.float32)))
    with pytest.raises(PriorFileError, match="'cov_mean' has 1 of 2 values NaN or infinite"):
        load_prior(path)


@pytest.fixture(scope="module")
def obs():
    return Observations.from_arrays([44.0, 44.1, 45.0], [-71.3, -71.2, -70.0], ["a", "a", "b"])


def test_baselines_load_through_the_same_checks(tmp_path, obs):
    path = FrequencyPrior.fit(obs).save(tmp_path / "f.prior")
    _edit_arrays(path, _set("counts", lambda a: np.array([np.nan, 1.0])))
    with pytest.raises(PriorFileError, match=r"'counts' has 1 of 2 values NaN, .* = nan"):
        load_prior(path)
    path = FrequencyPrior.fit(obs).save(tmp_path / "f.prior")
    _edit_arrays(path, _set("counts", lambda a: np.array([-3.0, 1.0])))
    with pytest.raises(PriorFileError, match=r"1 of 2 values NaN, infinite or below 0; .* = -3\.0"):
        load_prior(path)
    path = FrequencyPrior.fit(obs).save(tmp_path / "f.prior")
    _edit_header(path, _header_set("species", ["a", "a"]))
    with pytest.raises(PriorFileError, match="appear more than once"):
        load_prior(path)
    path = NearestNeighborPrior.fit(obs, bandwidth=50.0).save(tmp_path / "nn.prior")
    _edit_arrays(path, _set("location_lon", lambda a: a[:-1]))
    with pytest.raises(PriorFileError, match=r"'location_lon' has shape \(\d+,\), expected"):
        load_prior(path)
    path = NearestNeighborPrior.fit(obs, bandwidth=50.0).save(tmp_path / "nn.prior")
    _edit_header(path, _header_set("k", 2.5))
    with pytest.raises(PriorFileError, match="'k': expected an integer or null, got 2.5"):
        load_prior(path)


def test_cli_predict_with_a_broken_prior_exits_1_with_one_line(tmp_path, small_prior):
    path = small_prior.save(tmp_path / "broken.prior")
    _edit_arrays(path, _set(KERNEL, _poison(np.nan)))
    result = CliRunner().invoke(main, ["predict", str(path), "--lat", "44", "--lon", "-71"])
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "broken.prior" in lines[0] and "NaN" in lines[0]
