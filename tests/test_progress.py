"""Progress bars on stderr for the long operations: range maps (single and monthly),
threshold rules and conversion; the CLI shows them unless ``--quiet``, the Python API only
with ``progress=True``."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import random_prior

import geoprior
from geoprior.cli import main
from geoprior.maps import compute_thresholds, monthly_range_maps, range_map

#: A tqdm bar as it is written: "DESC: 100%|...| N/N [time<time, rate UNIT/s]".
BAR = re.compile(r"(?P<desc>[\w ()]+): +(?P<pct>\d+)%\|.*?\| *(?P<done>\d+)/(?P<total>\d+) \[")
BBOX = (-10.0, 35.0, 30.0, 60.0)


def bars(stderr: str) -> dict[str, tuple[int, int]]:
    """The last state of each bar written: description -> (done, total)."""
    found = {}
    for m in BAR.finditer(stderr.replace("\r", "\n")):
        found[m["desc"].strip()] = (int(m["done"]), int(m["total"]))
    return found


@pytest.fixture(scope="module")
def dated_prior():
    return random_prior(3, use_date=True, seed=1)


@pytest.fixture(scope="module")
def prior_file(dated_prior, tmp_path_factory):
    path = tmp_path_factory.mktemp("progress") / "p.prior"
    dated_prior.save(path)
    return path


@pytest.fixture(scope="module")
def presences():
    rng = np.random.default_rng(0)
    n = 60
    return geoprior.Observations.from_arrays(
        rng.uniform(40, 55, n), rng.uniform(-5, 25, n), rng.choice(["s0", "s1", "s2"], n),
        date=np.datetime64("2021-01-01") + rng.integers(0, 365, n),
    )  # fmt: skip


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def test_cli_range_map_shows_a_bar_and_quiet_hides_it(prior_file, tmp_path):
    common = ["range-map", prior_file, "s0", "s1", "--res", 3, "--threshold", 0.5,
              "--bbox", ",".join(map(str, BBOX)), "--month", 6]  # fmt: skip
    shown = invoke(*common, "-o", tmp_path / "a.geojson")
    cells = len(range_map(random_prior(3, use_date=True, seed=1), "s0", res=3, bbox=BBOX,
                          threshold=0.5, month=6))  # fmt: skip
    assert bars(shown.stderr)["range map"] == (cells, cells)
    assert "cell/s" in shown.stderr
    quiet = invoke(*common, "-o", tmp_path / "b.geojson", "--quiet")
    assert bars(quiet.stderr) == {} and "%|" not in quiet.stderr
    assert "wrote" in quiet.stderr  # the summary line stays
    assert (tmp_path / "a.geojson").read_bytes() == (tmp_path / "b.geojson").read_bytes()


def test_cli_monthly_map_and_threshold_rule_bars(prior_file, presences, tmp_path):
    obs = tmp_path / "obs.csv"
    pd.DataFrame(
        {"latitude": presences.lat, "longitude": presences.lon,
         "species": presences.species_names, "date": presences.date.astype(str)}
    ).to_csv(obs, index=False)  # fmt: skip
    args = ["range-map", prior_file, "s1", "--res", 2, "--bbox", ",".join(map(str, BBOX)),
            "--monthly", "--threshold", "lpt", "--observations", obs, "--cells", "all"]  # fmt: skip
    shown = invoke(*args, "-o", tmp_path / "m.csv")
    found = bars(shown.stderr)
    n_cells = len(pd.read_csv(tmp_path / "m.csv")) // 12
    assert found["monthly maps"] == (12 * n_cells, 12 * n_cells)
    n_s1 = int((presences.species_names == "s1").sum())
    assert found["thresholds (lpt)"] == (n_s1, n_s1)
    assert "month 12" in shown.stderr  # the bar says which month it is on
    quiet = invoke(*args, "-o", tmp_path / "q.csv", "--quiet")
    assert "%|" not in quiet.stderr


def test_python_api_is_silent_unless_asked(dated_prior, presences, capsys):
    kw = dict(res=2, bbox=BBOX, threshold=0.5)
    quiet = range_map(dated_prior, ["s0", "s2"], month=3, **kw)
    monthly_range_maps(dated_prior, "s0", months=[1, 7], **kw)
    compute_thresholds(dated_prior, presences, "f1", res=3, n_background=50)
    assert capsys.readouterr().err == ""  # progress=False is the default

    shown = range_map(dated_prior, ["s0", "s2"], month=3, progress=True, **kw)
    pd.testing.assert_frame_equal(shown, quiet)  # the bar changes nothing
    n = len(shown) // 2
    assert bars(capsys.readouterr().err)["range map"] == (n, n)
    monthly_range_maps(dated_prior, "s0", months=[1, 7], progress=True, **kw)
    assert bars(capsys.readouterr().err)["monthly maps"] == (2 * n, 2 * n)
    t = compute_thresholds(dated_prior, presences, "f1", res=3, n_background=50, progress=True)
    done, total = bars(capsys.readouterr().err)["thresholds (f1)"]
    assert done == total and total % 2 == 0 and total >= 100  # the cells, scored twice
    np.testing.assert_array_equal(
        t, compute_thresholds(dated_prior, presences, "f1", res=3, n_background=50)
    )
    compute_thresholds(dated_prior, presences, "lpt", progress=True)
    assert bars(capsys.readouterr().err)["thresholds (lpt)"] == (len(presences),) * 2


def test_cli_convert_bars(presences, tmp_path):
    src = tmp_path / "obs.csv"
    pd.DataFrame(
        {"latitude": presences.lat, "longitude": presences.lon,
         "species": presences.species_names, "date": presences.date.astype(str)}
    ).to_csv(src, index=False)  # fmt: skip
    shown = invoke("convert", src, "-o", tmp_path / "store", "--chunk-rows", 20)
    found = bars(shown.stderr)
    assert found["shuffling"] == (len(presences), len(presences))
    assert "reading" in found
    quiet = invoke("convert", src, "-o", tmp_path / "store2", "--quiet")
    assert "%|" not in quiet.stderr and "wrote" in quiet.stderr
