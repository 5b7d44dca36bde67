"""Reliability of the readers (issue 12): undated files at every chunk and fast-path size,
no silent loss (each problem raised, or dropped and counted), one name per species, broken
containers as one clear error, through the Python API and the CLI; and a fuzzer of every
reader. The broken files are in tests/fixtures/broken/ (written by make_reader_fixtures.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoprior import read_observations
from geoprior.cli import main
from geoprior.errors import (
    DateError,
    EmptyDataError,
    FormatError,
    GeopriorError,
    SpeciesNameError,
)
from geoprior.io.table import _DISTINCT_PER_DATE, FACTORIZE_MIN_ROWS
from geoprior.names import case_variants, normalize_name

BROKEN = Path(__file__).parent / "fixtures" / "broken"

# file, error class under on_invalid="raise", what the message says
ERRORS = [
    ("reader-date-range-impossible.csv", DateError, "row 1 = '2021-02-30/2021-13-45'"),
    ("reader-date-range-future.csv", DateError, "row 2 = '2021-06-01/2999-01-01'"),
    ("reader-inat-missing-image.json", FormatError, "annotation 1 names image_id 7"),
    ("reader-inat-duplicate-image.json", FormatError, "row 2: id 2 (first at row 1)"),
    ("reader-extra-fields.csv", FormatError, "row 1: field 4 = 'spare'"),
    ("reader-duplicate-column.csv", FormatError, "'Corvus corax' in one, 'Corvus cornix'"),
    ("reader-truncated.csv.gz", FormatError, "truncated or corrupt"),
    ("reader-not-gzip.csv.gz", FormatError, "not readable gzip data"),
    ("reader-truncated.zip", FormatError, "not readable zip data"),
    ("reader-corrupt.zip", FormatError, "not readable zip data"),
    ("reader-bogus-encoding-dwca.zip", FormatError, "'no-such-codec' is not a text encoding"),
    ("reader-deep.json", FormatError, "nested too deeply"),
]
# file, reason counted under on_invalid="drop", rows read, rows dropped
DROPS = [
    ("reader-date-range-impossible.csv", "impossible date", 3, 1),
    ("reader-date-range-future.csv", "impossible date", 3, 1),
    ("reader-inat-missing-image.json", "annotation of a missing image", 3, 1),
    ("reader-inat-duplicate-image.json", "duplicate image id", 3, 1),
    ("reader-extra-fields.csv", "extra fields", 3, 1),
    ("reader-duplicate-column.csv", "conflicting duplicate column", 3, 1),
]


def test_fixtures_are_what_the_script_writes():
    spec = importlib.util.spec_from_file_location("make", BROKEN / "make_reader_fixtures.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for name, data in make.files().items():
        assert (BROKEN / name).read_bytes() == data, f"rerun make_reader_fixtures.py ({name})"


@pytest.mark.parametrize(("name", "error", "says"), ERRORS)
def test_broken_file_raises_one_geoprior_error(name, error, says):
    with pytest.raises(GeopriorError) as info:
        read_observations(BROKEN / name)
    assert type(info.value) is error
    assert says in str(info.value)
    assert name in str(info.value)


@pytest.mark.parametrize(("name", "error", "says"), ERRORS)
def test_broken_file_in_the_cli_is_one_line_exit_1(tmp_path, name, error, says):
    result = CliRunner().invoke(main, ["train", str(BROKEN / name), "-o", str(tmp_path / "p")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("name", "reason", "read", "dropped"), DROPS)
def test_drop_counts_every_row_read(name, reason, read, dropped):
    with pytest.warns(UserWarning, match=reason):
        obs = read_observations(BROKEN / name, on_invalid="drop")
    report = obs.report
    assert report.rows_read == read
    assert report.dropped == {reason: dropped}
    assert report.rows_read == report.rows_kept + report.n_dropped == len(obs) + dropped


def test_duplicate_image_annotation_applies_once():
    with pytest.warns(UserWarning, match="1 duplicate image id"):
        obs = read_observations(BROKEN / "reader-inat-duplicate-image.json", on_invalid="drop")
    assert len(obs) == 2
    np.testing.assert_array_equal(obs.lat, [45.0, 46.0])


def test_duplicate_column_whose_copies_agree_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("latitude,longitude,species,species\n45,5,Pica pica,Pica pica\n")
    assert read_observations(path).species == ("Pica pica",)


def test_empty_extra_field_loses_nothing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("latitude,longitude,species\n45,5,Pica pica,\n46,6,Pica pica\n")
    assert len(read_observations(path)) == 2


@pytest.mark.parametrize("chunksize", [1, 10, 1_000_000])
def test_year_only_rows_counted_across_chunks(chunksize):
    obs = read_observations(BROKEN / "reader-year-only.csv", chunksize=chunksize)
    assert obs.report.notes == ["28 of 56 dates give only a year; they are kept as undated"]
    assert int(obs.has_date.sum()) == 28


def test_year_only_interval_is_a_year_only_date(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("latitude,longitude,species,date\n45,5,Pica pica,2010/2012\n")
    obs = read_observations(path)
    assert obs.report.notes == ["1 of 1 dates give only a year; they are kept as undated"]


# ---------------------------------------------------------------------------- undated files
def _gbif_text(dates) -> str:
    head = "gbifID\tdecimalLatitude\tdecimalLongitude\teventDate\tspecies\tscientificName\n"
    return head + "".join(
        f"{i}\t45.0\t5.0\t{d}\tPica pica\tPica pica L.\n" for i, d in enumerate(dates)
    )


WRITERS = {
    "gbif": lambda d: _gbif_text(d),
    "inat-csv": lambda d: (
        "latitude,longitude,observed_on,scientific_name\n"
        + "".join(f"45.0,5.0,{x},Pica pica\n" for x in d)
    ),
    "ebird": lambda d: (
        "LATITUDE\tLONGITUDE\tOBSERVATION DATE\tSCIENTIFIC NAME\tCATEGORY\t"
        "SAMPLING EVENT IDENTIFIER\n"
        + "".join(f"45.0\t5.0\t{x}\tPica pica\tspecies\tS1\n" for x in d)
    ),
    "table": lambda d: "lat,lon,species,date\n" + "".join(f"45,5,Pica pica,{x}\n" for x in d),
}
T = FACTORIZE_MIN_ROWS
SIZES = [1, T - 1, T, T + 1, 2 * T + 1]
CHUNKS = [1_000_000, T - 1, T, T + 1]


@pytest.mark.parametrize("fmt", [*WRITERS, "frame"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("chunksize", CHUNKS)
@pytest.mark.parametrize(("value", "dated"), [("", False), ("2021-06-14", True), ("2021", False)])
def test_empty_or_single_value_dates_at_every_size(tmp_path, fmt, n, chunksize, value, dated):
    if fmt == "frame":
        source = pd.DataFrame(
            {"lat": 45.0, "lon": 5.0, "species": "Pica pica", "date": [value or None] * n}
        )
    else:
        source = tmp_path / "obs.txt"
        source.write_text(WRITERS[fmt]([value] * n))
    obs = read_observations(source, chunksize=chunksize)
    assert len(obs) == n
    assert int(obs.has_date.sum()) == (n if dated else 0)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("chunksize", [1_000_000, T])
def test_all_invalid_dates_drop_to_a_clear_empty_error(tmp_path, n, chunksize):
    path = tmp_path / "obs.csv"
    path.write_text(_gbif_text(["2021-02-30"] * n))
    with pytest.raises(DateError, match="row 0 = '2021-02-30'"):
        read_observations(path, chunksize=chunksize)
    with pytest.raises(EmptyDataError, match=f"dropped {n}: {n} impossible date"):
        read_observations(path, chunksize=chunksize, on_invalid="drop")


@pytest.mark.parametrize("n", [T, T + 1, 4 * T])
def test_few_distinct_dates_with_gaps_take_the_fast_path_correctly(tmp_path, n):
    values = ["2021-06-14", "", "2020-01-02", ""] * (n // 4)
    assert len(set(values)) <= n // _DISTINCT_PER_DATE
    path = tmp_path / "obs.csv"
    path.write_text(_gbif_text(values))
    obs = read_observations(path)
    expected = np.array([v or "NaT" for v in values], dtype="datetime64[D]")
    np.testing.assert_array_equal(obs.date, expected)


def test_undated_gbif_download_trains(tmp_path):
    from geoprior.train import TrainConfig, train_prior

    obs = read_observations(BROKEN / "reader-undated-gbif.csv")
    assert len(obs) == 1200 and not obs.has_date.any()
    prior = train_prior(obs, TrainConfig(steps=5), tmp_path / "work", progress=False)
    probs = np.asarray(prior.predict([45.0], [5.0]))
    assert np.isfinite(probs).all()


# ---------------------------------------------------------------------------- names
def test_normalize_name():
    assert normalize_name("Pic\u0327a pica") == "Pi\u00e7a pica"
    assert normalize_name("  Pica \t  pica\u00a0") == "Pica pica"
    assert case_variants(["Pica pica", "pica pica", "Corvus corax"]) == [("Pica pica", "pica pica")]


@pytest.mark.parametrize("as_frame", [False, True])
def test_names_read_as_one_spelling_and_case_is_reported(as_frame):
    source = BROKEN / "reader-names.csv"
    if as_frame:
        source = pd.read_csv(source)
    with pytest.warns(UserWarning, match="differ only by case"):
        obs = read_observations(source)
    assert obs.species == ("Corvus corax", "Pi\u00e7a pica", "pi\u00e7a pica")
    assert obs.species_counts().tolist() == [1, 4, 1]
    assert any("'pi\u00e7a pica' (1 rows)" in note for note in obs.report.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = read_observations(source, merge_case=True)
    assert merged.species == ("Corvus corax", "Pi\u00e7a pica")
    assert merged.species_counts().tolist() == [1, 5]
    assert any(note.startswith("merged 1 species") for note in merged.report.notes)


# ---------------------------------------------------------------------------- fuzzing
LAT = {"valid": ["-89.5", "0", "45.25", "90"], "invalid": ["95.5", "abc", "", "inf"]}
LON = {"valid": ["-179.5", "0", "5.5", "180"], "invalid": ["181", "x1", "", "-inf"]}
SPECIES = {"valid": ["Pica pica", "Corvus corax", " Turdus  merula"], "invalid": [""]}
DATE = {
    "valid": ["2021-06-14", "", "2021-06", "2010-05-01/2010-05-09"],
    "invalid": ["2021-02-30", "2021-13-01", "junk", "2021-06-01/2999-01-01"],
}
COLUMNS = {"lat": LAT, "lon": LON, "species": SPECIES, "date": DATE}


@st.composite
def rows(draw):
    """Rows of text values, each column valid or invalid at random, and which rows are valid."""
    n = draw(st.integers(1, 12))
    out, valid = [], []
    for _ in range(n):
        row, ok = {}, True
        for column, values in COLUMNS.items():
            bad = draw(st.booleans()) and draw(st.booleans())  # a quarter of values invalid
            row[column] = draw(st.sampled_from(values["invalid" if bad else "valid"]))
            ok &= not bad
        out.append(row)
        valid.append(ok)
    return out, np.array(valid)


def _tsv(header, rows, fields):
    lines = ["\t".join(header)] + ["\t".join(fields(r)) for r in rows]
    return "\n".join(lines) + "\n"


def _write(fmt: str, rows: list[dict], tmp: Path):
    if fmt == "frame":
        return pd.DataFrame(rows)
    if fmt == "table":
        path = tmp / "obs.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
    elif fmt == "gbif":
        path = tmp / "obs.csv"
        head = ["gbifID", "decimalLatitude", "decimalLongitude", "eventDate", "species"]
        path.write_text(
            _tsv(
                head + ["scientificName"],
                rows,
                lambda r: ["1", r["lat"], r["lon"], r["date"], r["species"], r["species"]],
            )
        )
    elif fmt == "ebird":
        path = tmp / "ebd.txt"
        head = [
            "LATITUDE",
            "LONGITUDE",
            "OBSERVATION DATE",
            "SCIENTIFIC NAME",
            "CATEGORY",
            "SAMPLING EVENT IDENTIFIER",
        ]
        path.write_text(
            _tsv(
                head, rows, lambda r: [r["lat"], r["lon"], r["date"], r["species"], "species", "S1"]
            )
        )
    elif fmt == "inat-csv":
        path = tmp / "observations.csv"
        pd.DataFrame(
            {
                "latitude": [r["lat"] for r in rows],
                "longitude": [r["lon"] for r in rows],
                "observed_on": [r["date"] for r in rows],
                "scientific_name": [r["species"] for r in rows],
            }
        ).to_csv(path, index=False)
    elif fmt == "inat-json":
        path = tmp / "train.json"
        names = sorted({r["species"] for r in rows if r["species"]})
        number = lambda v: float(v) if _is_number(v) and np.isfinite(float(v)) else (v or None)  # noqa: E731
        meta = {
            "images": [
                {
                    "id": i,
                    "latitude": number(r["lat"]),
                    "longitude": number(r["lon"]),
                    "date": r["date"] or None,
                }
                for i, r in enumerate(rows)
            ],
            "annotations": [
                {"image_id": i, "category_id": names.index(r["species"])}
                for i, r in enumerate(rows)
                if r["species"]
            ],
            "categories": [{"id": k, "name": name} for k, name in enumerate(names)],
        }
        path.write_text(json.dumps(meta))
    elif fmt == "dwca":
        path = tmp / "dwca.zip"
        body = _tsv(
            ["id", "lat", "lon", "date", "species"],
            rows,
            lambda r: ["1", r["lat"], r["lon"], r["date"], r["species"]],
        )
        meta = (
            '<archive xmlns="http://rs.tdwg.org/dwc/text/"><core encoding="UTF-8" '
            'fieldsTerminatedBy="\\t" fieldsEnclosedBy="" ignoreHeaderLines="1" '
            'rowType="http://rs.tdwg.org/dwc/terms/Occurrence"><files><location>occ.txt'
            '</location></files><id index="0"/>'
            + "".join(
                f'<field index="{i}" term="http://rs.tdwg.org/dwc/terms/{t}"/>'
                for i, t in enumerate(
                    ["decimalLatitude", "decimalLongitude", "eventDate", "species"], 1
                )
            )
            + "</core></archive>"
        )
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("meta.xml", meta)
            zf.writestr("occ.txt", body)
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


FUZZED = ["table", "frame", "gbif", "ebird", "inat-csv", "inat-json", "dwca"]


@pytest.mark.parametrize("fmt", FUZZED)
def test_fuzzed_readers_raise_on_the_first_bad_row_or_drop_exactly_the_bad_rows(tmp_path, fmt):
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(rows())
    def check(drawn):
        values, valid = drawn
        source = _write(fmt, values, tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                obs = read_observations(source)
            except GeopriorError as e:
                assert not valid.all(), e
                first = int(np.flatnonzero(~valid)[0])
                assert re.search(rf"\brow {first}\b", str(e)), (first, str(e))
            else:
                assert valid.all() and len(obs) == len(values)
            try:
                obs = read_observations(source, on_invalid="drop")
            except EmptyDataError:
                assert not valid.any()
                return
        assert valid.any()
        report = obs.report
        assert report.rows_read == len(values)
        assert report.rows_kept == len(obs) == int(valid.sum())
        assert report.rows_read == report.rows_kept + report.n_dropped
        expected = [float(r["lat"]) for r, ok in zip(values, valid) if ok]
        np.testing.assert_array_equal(obs.lat, expected)
        names = {" ".join(r["species"].split()) for r, ok in zip(values, valid) if ok}
        assert set(obs.species) == names

    check()


def test_species_name_error_is_a_reader_error_class():
    assert issubclass(SpeciesNameError, GeopriorError)
