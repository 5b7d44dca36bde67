import builtins
import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoprior import errors
from geoprior.errors import (
    GeopriorError,
    UnknownSpeciesError,
    describe_bad,
    show,
    suggest,
    unknown_species,
)

ERROR_CLASSES = [getattr(errors, name) for name in errors.__all__]
BUILTIN_ERRORS = tuple(
    c for c in vars(builtins).values() if isinstance(c, type) and issubclass(c, Exception)
)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_a_geoprior_error_and_a_builtin(cls):
    assert issubclass(cls, GeopriorError)
    if cls is GeopriorError:
        return
    builtin_bases = [b for b in inspect.getmro(cls) if b in BUILTIN_ERRORS and b is not Exception]
    assert builtin_bases, f"{cls.__name__} derives from no specific built-in error"
    with pytest.raises(builtin_bases[0]):
        raise cls("boom")


def test_all_lists_every_error_class():
    defined = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, GeopriorError)
    }
    assert defined == set(errors.__all__)


def test_unknown_species_error_str_is_not_quoted():
    e = UnknownSpeciesError("no species 'Turdus x'")
    assert str(e) == "no species 'Turdus x'"
    assert isinstance(e, KeyError)
    assert str(UnknownSpeciesError()) == ""


def test_suggest_finds_close_matches_case_insensitively():
    known = ["Turdus migratorius", "Turdus merula", "Corvus corax"]
    assert "'Turdus migratorius'" in suggest("turdus migratorus", known)
    assert suggest("Turdus merula", known).startswith(" Did you mean 'Turdus merula'")
    assert suggest("Zzzzzz qqqq", known) == ""
    assert suggest("anything", []) == ""


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8, unique=True))
def test_suggest_offers_an_exact_name_back(known):
    name = known[0]
    hint = suggest(name, known)
    if len({k.lower() for k in known}) == len(known):  # case-folding keeps names apart
        assert repr(name) in hint


def test_unknown_species_lists_names_count_and_hint():
    e = unknown_species(["Corvus corrax"], ["Corvus corax", "Pica pica"])
    assert isinstance(e, UnknownSpeciesError)
    msg = str(e)
    assert "1 unknown species name(s): 'Corvus corrax'" in msg
    assert "knows 2 species" in msg
    assert "Did you mean 'Corvus corax'?" in msg
    many = unknown_species([f"sp{i}" for i in range(7)], ["a"])
    assert "7 unknown" in str(many) and "..." in str(many)


def test_describe_bad_names_count_first_row_and_value():
    values = np.array([10.0, 91.2, 95.0, 0.0])
    msg = describe_bad("latitudes", values, np.abs(values) > 90, "outside [-90, 90]")
    assert msg == "2 of 4 latitudes outside [-90, 90]; first: row 1 = 91.2"


def test_show_prints_numpy_scalars_as_python():
    assert show(np.float64(1.5)) == "1.5"
    assert show(np.int32(3)) == "3"
    assert show("x") == "'x'"
