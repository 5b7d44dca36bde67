import pytest

from geoprior.errors import OutputExistsError, PathError
from geoprior.maps import write_range_map
from geoprior.outputs import check_output


def test_a_new_file_in_an_existing_folder_passes(tmp_path):
    assert check_output(tmp_path / "out.csv", overwrite=False) == tmp_path / "out.csv"


def test_an_existing_file_needs_overwrite(tmp_path):
    (tmp_path / "out.csv").write_text("x")
    with pytest.raises(OutputExistsError, match="pass overwrite=True"):
        check_output(tmp_path / "out.csv", overwrite=False)
    check_output(tmp_path / "out.csv", overwrite=True)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_output_may_not_name_a_folder(tmp_path, overwrite):
    with pytest.raises(PathError, match="is a folder; give the name of a file") as info:
        check_output(tmp_path, overwrite=overwrite)
    assert isinstance(info.value, OSError)


def test_the_folder_must_exist_and_be_a_folder(tmp_path):
    with pytest.raises(PathError, match="no does not exist; create it first"):
        check_output(tmp_path / "no" / "out.csv", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(PathError, match="is a file, not a folder"):
        check_output(tmp_path / "f" / "out.csv", overwrite=True)


def test_a_folder_output_replaces_only_its_own_kind(tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(OutputExistsError, match="is not a saved prior"):
        check_output(tmp_path / "mine", overwrite=True, marker="prior.json", kind="saved prior")
    (tmp_path / "mine" / "prior.json").write_text("{}")
    check_output(tmp_path / "mine", overwrite=True, marker="prior.json", kind="saved prior")
    check_output(tmp_path / "new", overwrite=False, marker="prior.json")


def test_write_range_map_checks_the_path_before_writing(tmp_path):
    with pytest.raises(PathError, match="does not exist"):
        write_range_map(None, tmp_path / "no" / "map.geojson")
