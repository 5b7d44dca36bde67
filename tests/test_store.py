import json

import numpy as np
import pytest

from geoprior import OutputExistsError, PriorFileError, load_prior
from geoprior.persistence import (
    ARRAYS,
    FORMAT_VERSION,
    HEADER,
    atomic_folder,
    atomic_path,
    read_folder,
    register_kind,
    save_folder,
)

ARRS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.array([1, 2, 3], np.int64)}


def test_round_trip_keeps_header_and_arrays_exactly(tmp_path):
    path = save_folder(tmp_path / "p", "Thing", {"species": ["a", "b"], "x": 1.5}, ARRS)
    header, arrays = read_folder(path, kind="Thing")
    assert header["format"] == "geoprior" and header["format_version"] == FORMAT_VERSION
    assert header["kind"] == "Thing" and header["species"] == ["a", "b"] and header["x"] == 1.5
    assert set(arrays) == set(ARRS)
    for k, v in ARRS.items():
        assert arrays[k].dtype == v.dtype
        np.testing.assert_array_equal(arrays[k], v)
    assert sorted(p.name for p in path.iterdir()) == sorted([HEADER, ARRAYS])
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary folders left


def test_overwrite_replaces_atomically_or_refuses(tmp_path):
    path = tmp_path / "p"
    save_folder(path, "Thing", {"v": 1}, ARRS)
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_folder(path, "Thing", {"v": 2}, ARRS, overwrite=False)
    assert read_folder(path)[0]["v"] == 1
    save_folder(path, "Thing", {"v": 2}, {"z": np.zeros(1)})
    header, arrays = read_folder(path)
    assert header["v"] == 2 and set(arrays) == {"z"}
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_failed_write_leaves_the_old_prior_in_place(tmp_path):
    path = tmp_path / "p"
    save_folder(path, "Thing", {"v": 1}, ARRS)
    with pytest.raises(TypeError):  # not JSON-serialisable
        save_folder(path, "Thing", {"v": object()}, ARRS)
    assert read_folder(path)[0]["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_refuses_to_replace_a_folder_that_is_not_a_prior(tmp_path):
    other = tmp_path / "mydata"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a saved prior"):
        save_folder(other, "Thing", {}, ARRS, overwrite=True)
    assert (other / "precious.txt").read_text() == "keep me"


def test_object_arrays_are_refused_on_save(tmp_path):
    with pytest.raises(TypeError, match=r"\['names'\] hold Python objects"):
        save_folder(tmp_path / "p", "Thing", {}, {"names": np.array(["a", None], dtype=object)})
    assert not (tmp_path / "p").exists()


def test_arrays_load_without_pickle(tmp_path, monkeypatch):
    path = save_folder(tmp_path / "p", "Thing", {}, ARRS)
    seen = []
    real_load = np.load

    def spy(*args, **kw):
        seen.append(kw.get("allow_pickle"))
        return real_load(*args, **kw)

    monkeypatch.setattr(np, "load", spy)
    read_folder(path)
    assert seen == [False]
    # an npz holding a pickled object array is reported, not unpickled
    np.savez(path / ARRAYS, evil=np.array([{"a": 1}], dtype=object))
    monkeypatch.setattr(np, "load", real_load)
    with pytest.raises(PriorFileError, match="corrupt"):
        read_folder(path)


def _saved(tmp_path):
    return save_folder(tmp_path / "p", "Thing", {"v": 1}, ARRS)


def test_missing_or_corrupt_files_raise_prior_file_error(tmp_path):
    with pytest.raises(PriorFileError, match="not a saved prior: no prior.json"):
        read_folder(tmp_path)
    path = _saved(tmp_path)
    (path / ARRAYS).unlink()
    with pytest.raises(PriorFileError, match="no arrays.npz: the prior is incomplete"):
        read_folder(path)
    (path / ARRAYS).write_bytes(b"not a zip file")
    with pytest.raises(PriorFileError, match="arrays.npz is corrupt"):
        read_folder(path)
    (path / HEADER).write_text('{"format": "geoprior", ')
    with pytest.raises(PriorFileError, match="prior.json is corrupt"):
        read_folder(path)
    (path / HEADER).write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PriorFileError, match="corrupt"):
        read_folder(path)
    (path / HEADER).write_text('{"format": "other"}')
    with pytest.raises(PriorFileError, match="not a geoprior header"):
        read_folder(path)
    (path / HEADER).write_text("[1, 2]")
    with pytest.raises(PriorFileError, match="not a geoprior header"):
        read_folder(path)


def test_newer_format_version_asks_to_upgrade(tmp_path):
    path = _saved(tmp_path)
    header = json.loads((path / HEADER).read_text())
    header.update(format_version=FORMAT_VERSION + 1, geoprior_version="9.9.9")
    (path / HEADER).write_text(json.dumps(header))
    newer = FORMAT_VERSION + 1
    with pytest.raises(PriorFileError, match=rf"format version {newer}.*upgrade geoprior.*9\.9\.9"):
        read_folder(path)


def test_wrong_and_unknown_kind(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(PriorFileError, match="holds a 'Thing', expected a 'GeoPrior'"):
        read_folder(path, kind="GeoPrior")
    with pytest.raises(PriorFileError, match="unknown kind of prior 'Thing'"):
        load_prior(path)


def test_load_prior_dispatches_on_kind_and_reports_broken_loaders(tmp_path):
    @register_kind("_TestKind")
    def _load(header, arrays):
        return header["v"], arrays["w"][header["row"]]

    path = save_folder(tmp_path / "p", "_TestKind", {"v": 7, "row": 1}, ARRS)
    v, row = load_prior(path)
    assert v == 7
    np.testing.assert_array_equal(row, ARRS["w"][1])
    broken = save_folder(tmp_path / "q", "_TestKind", {"v": 7}, ARRS)  # no "row"
    with pytest.raises(PriorFileError, match="incomplete or corrupt: KeyError"):
        load_prior(broken)


def _rewrite(path, edit):
    with np.load(path / ARRAYS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path / ARRAYS, **edit(arrays))


def test_saved_geoprior_with_broken_weights_fails_at_load(tmp_path, trained_prior):
    path = trained_prior.save(tmp_path / "p")
    _rewrite(path, lambda a: {k: v for k, v in a.items() if k != "params/inp/bias"})
    with pytest.raises(
        PriorFileError, match="incomplete or corrupt: 1 array.* missing: 'params/inp/bias'"
    ):
        load_prior(path)
    path = trained_prior.save(tmp_path / "p")
    _rewrite(path, lambda a: {**a, "params/inp/kernel": a["params/inp/kernel"][..., :-1, :]})
    with pytest.raises(  # one input row short (after the ensemble's member axis)
        PriorFileError, match=r"'params/inp/kernel' has shape \((\d+, )+32\), expected"
    ):
        load_prior(path)
    path = trained_prior.save(tmp_path / "p")
    header = json.loads((path / HEADER).read_text())
    header["species"] = header["species"][:-1]
    (path / HEADER).write_text(json.dumps(header))
    with pytest.raises(
        PriorFileError,
        match=r"'params/head_out/kernel' has shape \((2, )?32, 5\), expected \((2, )?32, 4\)",
    ):
        load_prior(path)
    del header["species"]
    (path / HEADER).write_text(json.dumps(header))
    with pytest.raises(PriorFileError, match="header field 'species' is missing"):
        load_prior(path)


def test_atomic_path_and_folder_leave_the_old_output_or_the_new_one(tmp_path):
    target = tmp_path / "map.gpkg"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.name == "map.gpkg" and tmp.parent != tmp_path  # the writer sees the suffix
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    folder = tmp_path / "store"
    with atomic_folder(folder) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_folder(folder) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError
    assert (folder / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.gpkg", "store"]  # no temporaries


def test_version_one_priors_still_load(tmp_path):
    from conftest import random_prior

    from geoprior.persistence import HEADER, load_prior

    prior = random_prior(3)
    path = prior.save(tmp_path / "v1")
    header = json.loads((path / HEADER).read_text())
    header["format_version"] = 1
    (path / HEADER).write_text(json.dumps(header))
    np.testing.assert_array_equal(load_prior(path).predict([1.0], [2.0]), prior.predict([1.0], [2.0]))
