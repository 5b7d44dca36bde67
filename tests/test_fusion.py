"""Tests of geoprior.fusion: fuse, align_classes, rerank, fit_fusion, FusionParams."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geoprior.errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    FormatError,
    GeopriorError,
    MissingFileError,
    NonFiniteError,
    OutputExistsError,
    PriorFileError,
    SpeciesNameError,
    UnknownSpeciesError,
)
from geoprior.fusion import (
    EPS,
    Alignment,
    FusionParams,
    align_classes,
    fit_fusion,
    fuse,
    fuse_with_flags,
    rerank,
)
from geoprior.io.taxonomy import read_taxonomy
from geoprior.priors.protocol import Prior
from geoprior.query import prepare_query

SETTINGS = settings(max_examples=25, deadline=None)


def log_softmax(x, t=1.0):
    z = np.asarray(x, np.float64) / t
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def logsumexp(x):
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


class BandPrior:
    """A tiny Prior: species i lives around longitude ``centres[i]`` (a Gaussian bump)."""

    def __init__(self, species, centres, width=10.0, thresholds=None):
        self._species = tuple(species)
        self.centres = np.asarray(centres, float)
        self.width = width
        self.calls = []
        if thresholds is not None:
            self.thresholds = np.asarray(thresholds, float)

    @property
    def species(self):
        return self._species

    def predict(self, lat, lon, date=None):
        lat, lon, _ = prepare_query(lat, lon, date)
        self.calls.append(lat.size)
        d = (lon[:, None] - self.centres[None, :]) / self.width
        return 0.95 * np.exp(-0.5 * d**2)


logit_rows = hnp.arrays(
    np.float64,
    st.sampled_from([(5,), (1, 2), (3, 5), (4, 3)]),  # few shapes: each one compiles
    elements=st.floats(-20, 20, allow_nan=False, width=32),
)


# arbitrary arrays of logits may look like probabilities: the maths is tested, not the warning
ANY_LOGITS = pytest.mark.filterwarnings("ignore::geoprior.errors.ProbabilitiesAsLogitsWarning")


def prior_like(logits, seed=0):
    """Random prior probabilities, with exact zeros in the first column."""
    p = np.random.default_rng(seed).uniform(0, 1, logits.shape)
    p[..., 0] = 0.0
    return p


# ---------------------------------------------------------------------------- fuse properties
def test_bandprior_is_a_prior():
    assert isinstance(BandPrior(["a"], [0.0]), Prior)


@ANY_LOGITS
@SETTINGS
@given(logit_rows, st.floats(0.001, 1.0))
def test_uniform_prior_keeps_classifier(logits, c):
    out = np.asarray(fuse(logits, np.full(logits.shape, c)))
    np.testing.assert_allclose(out, log_softmax(logits), atol=2e-4)
    out_w = np.asarray(fuse(logits, np.full(logits.shape, c), weight=2.5, temperature=3.0))
    order = np.argsort(-logits, axis=-1)  # the classifier's ranking, kept up to float ties
    assert (np.diff(np.take_along_axis(out_w, order, axis=-1), axis=-1) <= 1e-5).all()


@ANY_LOGITS
@SETTINGS
@given(logit_rows, st.floats(-50, 50), st.floats(0.2, 5))
def test_weight_zero_is_identity_and_shift_invariant(logits, shift, t):
    prior = prior_like(logits)
    np.testing.assert_allclose(fuse(logits, prior, weight=0.0, temperature=t),
                               log_softmax(logits, t), atol=2e-4)
    a = np.asarray(fuse(logits, prior, temperature=t))
    b = np.asarray(fuse(logits + shift, prior, temperature=t))
    np.testing.assert_allclose(a, b, atol=1e-3)


@ANY_LOGITS
@SETTINGS
@given(logit_rows, st.sampled_from(["product", "floor", "filter", "none"]))
def test_rows_are_log_probabilities(logits, mode):
    prior = prior_like(logits)
    result = fuse_with_flags(logits, prior, mode=mode, threshold=0.3)
    out = np.asarray(result.log_probs)
    assert out.shape == logits.shape
    assert not np.isnan(out).any()
    np.testing.assert_allclose(logsumexp(out), 0.0, atol=1e-5)
    if mode == "filter":
        removed = (prior < 0.3) & ~np.asarray(result.filtered_all)[..., None]
        assert np.isneginf(out[removed]).all()
        assert np.isfinite(out[~removed]).all()
    else:
        assert np.isfinite(out).all()


@ANY_LOGITS
@SETTINGS
@given(logit_rows)
def test_none_and_floor_one_are_the_classifier(logits):
    prior = prior_like(logits)
    np.testing.assert_allclose(fuse(logits, prior, mode="none"), log_softmax(logits), atol=2e-4)
    np.testing.assert_allclose(fuse(logits, prior, mode="floor", floor=1.0),
                               log_softmax(logits), atol=2e-4)


@ANY_LOGITS
@SETTINGS
@given(logit_rows, st.sampled_from(["product", "floor", "filter", "none"]))
def test_jit_equals_eager(logits, mode):
    prior = prior_like(logits, seed=1)
    kw = dict(weight=0.7, floor=0.05, threshold=0.2, temperature=1.5)
    eager = fuse(logits, prior, mode=mode, **kw)
    jitted = jax.jit(fuse, static_argnames="mode")(jnp.asarray(logits), jnp.asarray(prior),
                                                   mode=mode, **kw)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-5)


def test_product_matches_formula_and_zero_prior_is_finite():
    logits = np.array([[1.0, 2.0, 0.5]])
    prior = np.array([[0.5, 0.0, 0.25]])
    expected = log_softmax(log_softmax(logits, 2.0) + 0.5 * np.log(np.clip(prior, EPS, 1)))
    np.testing.assert_allclose(fuse(logits, prior, weight=0.5, temperature=2.0), expected,
                               atol=1e-5)


def test_floor_keeps_vagrant_that_product_buries():
    logits = np.array([[7.0, 1.0]])  # the classifier is sure of species 0, a vagrant here
    prior = np.array([[1e-6, 0.6]])
    assert int(np.argmax(fuse(logits, prior)[0])) == 1
    assert int(np.argmax(fuse(logits, prior, mode="floor", floor=0.005)[0])) == 0


def test_filter_fallback_flag_and_single_row():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    prior = np.array([[0.5, 0.01, 0.6], [0.01, 0.02, 0.0]])
    r = fuse_with_flags(logits, prior, mode="filter", threshold=0.03)
    np.testing.assert_array_equal(np.asarray(r.filtered_all), [False, True])
    np.testing.assert_allclose(r.log_probs[1], log_softmax(logits[1]), atol=1e-6)
    assert np.isneginf(np.asarray(r.log_probs)[0, 1])
    single = fuse(logits[0], prior[0], mode="filter", threshold=0.03)
    assert single.shape == (3,)
    np.testing.assert_allclose(single, r.log_probs[0], atol=1e-6)
    assert bool(fuse_with_flags(logits[1], prior[1], mode="filter").filtered_all)


def test_one_prior_row_broadcasts_and_jax_inputs_work():
    logits = np.random.default_rng(0).normal(size=(4, 3))
    prior = np.array([0.2, 0.5, 0.9])
    a = fuse(jnp.asarray(logits), prior)
    b = fuse(logits, np.tile(prior, (4, 1)))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_fuse_errors_name_counts_rows_and_shapes():
    logits = np.zeros((5, 3))
    logits[2, 1] = np.nan
    logits[4, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"2 of 5 rows of logits.*first: row 2, column 1"):
        fuse(logits, np.ones((5, 3)) * 0.5)
    with pytest.raises(ClassMismatchError, match=r"\(5, 4\).*\(5, 3\)"):
        fuse(np.zeros((5, 3)), np.ones((5, 4)) * 0.5)
    bad = np.full((5, 3), 0.5)
    bad[3, 2] = 1.7
    with pytest.raises(ConfigError, match=r"1 of 5 rows.*row 3 = 1.7.*logits"):
        fuse(np.zeros((5, 3)), bad)
    bad[3, 2] = np.nan
    with pytest.raises(NonFiniteError, match="row 3"):
        fuse(np.zeros((5, 3)), bad)
    with pytest.raises(ConfigError, match="product"):
        fuse(np.zeros((1, 3)), np.ones(3), mode="prodcut")
    for kw in ({"temperature": 0.0}, {"weight": -1.0}, {"mode": "floor", "floor": 0.0},
               {"mode": "filter", "threshold": 2.0}, {"weight": float("nan")}):
        with pytest.raises(ConfigError):
            fuse(np.zeros((1, 3)), np.ones(3), **kw)
    with pytest.raises(FormatError):
        fuse(np.zeros((2, 2, 2)), np.ones(2))
    with pytest.raises(FormatError):
        fuse(np.array([["a", "b"]]), np.ones(2))
    with pytest.raises(ValueError):  # every error is also the built-in
        fuse(logits, np.ones((5, 3)))


# ---------------------------------------------------------------------------- alignment
SPECIES = ["Turdus migratorius", "Sialia sialis", "Poecile atricapillus", "Poecile carolinensis",
           "Sturnella magna", "Sturnella neglecta"]


@SETTINGS
@given(st.permutations(list(range(len(SPECIES)))))
def test_alignment_recovers_permutation(perm):
    classes = [SPECIES[i] for i in perm]
    a = align_classes(classes, SPECIES)
    np.testing.assert_array_equal(a.index, perm)
    p = np.random.default_rng(0).uniform(size=(3, len(SPECIES)))
    np.testing.assert_array_equal(a.apply(p), p[:, perm])
    assert a.unmatched == () and len(a.matched) == len(SPECIES)


def test_alignment_normalises_names():
    classes = ["  turdus   MIGRATORIUS ", "Sialia_sialis",
               "Poecile atricapillus_Black-capped Chickadee", "Sturnella magna magna",
               12345, " 678 "]
    prior = SPECIES + ["12345", 678]
    a = align_classes(classes, prior)
    np.testing.assert_array_equal(a.index, [0, 1, 2, 4, 6, 7])
    birdnet = align_classes(SPECIES, [f"{s}_Common name {i}" for i, s in enumerate(SPECIES)])
    np.testing.assert_array_equal(birdnet.index, np.arange(len(SPECIES)))


def test_alignment_matches_names_in_any_unicode_form():
    import unicodedata

    prior = ["Pica pica", "Anser an\u00e9r", "Turdus merula", "Grus grus"]  # NFC: composed é
    nfd = [unicodedata.normalize("NFD", s) for s in prior]
    assert nfd[1] != prior[1] and nfd[1].encode() != prior[1].encode()
    a = align_classes([nfd[1], nfd[0] + "\u00a0", " Turdus  merula"], prior)
    np.testing.assert_array_equal(a.index, [1, 0, 2])
    assert a.classes[0] == nfd[1]  # the classifier's own spelling is kept
    with pytest.raises(ClassMismatchError, match="2x"):  # NFC and NFD are one class
        align_classes([prior[1], nfd[1]], prior)


def test_alignment_synonyms_and_neutral_columns():
    classes = ["American Robin", "Sialia sialis", "Mystery bird"]
    a = align_classes(classes, SPECIES, synonyms={"American Robin": "Turdus migratorius"},
                      missing="neutral")
    assert isinstance(a, Alignment)
    np.testing.assert_array_equal(a.index, [0, 1, -1])
    assert a.unmatched == ("Mystery bird",) and a.matched == ("American Robin", "Sialia sialis")
    p = np.zeros((2, len(SPECIES)))
    p[0, :2] = [0.04, 0.25]
    p[1, :2] = [0.0, 0.5]
    cols = a.apply(p)
    np.testing.assert_allclose(cols[:, 2], [0.1, np.sqrt(EPS * 0.5)])  # geometric means
    logits = np.array([[1.0, 0.5, 0.8]] * 2)
    fused = np.asarray(fuse(logits, cols))
    # the unmatched class moves like an average matched class: its log-odds against the
    # matched classes' mean equal the classifier's
    gap = fused[:, 2] - fused[:, :2].mean(axis=1)
    np.testing.assert_allclose(gap, logits[:, 2] - logits[:, :2].mean(axis=1), atol=1e-4)
    with pytest.raises(UnknownSpeciesError, match="Turdus migratorious"):
        align_classes(classes, SPECIES, synonyms={"American Robin": "Turdus migratorious"},
                      missing="neutral")


def test_alignment_errors():
    with pytest.raises(ClassMismatchError, match=r"2 of 3 classifier classes.*'Sialia sialsi' "
                                                 r"\(Did you mean 'Sialia sialis'\?\)"):
        align_classes(["Turdus migratorius", "Sialia sialsi", "Nothing like it"], SPECIES)
    with pytest.raises(ClassMismatchError, match=r"1 classifier class name.*2 of 3.*"
                                                 r"2x 'Sialia sialis' / 'sialia_sialis'"):
        align_classes(["Sialia sialis", "sialia_sialis", "Turdus migratorius"], SPECIES)
    with pytest.raises(ClassMismatchError, match="none of the 2"):
        align_classes(["x y", "z w"], SPECIES, missing="neutral")
    with pytest.raises(SpeciesNameError, match="row 1"):
        align_classes(["Sialia sialis", "  "], SPECIES)
    with pytest.raises(ConfigError):
        align_classes(SPECIES, SPECIES, missing="ignore")
    for classes, species, what in (([], SPECIES, "classifier classes"),
                                   (SPECIES, [], "prior species"),
                                   (np.array([], dtype=str), SPECIES, "classifier classes")):
        with pytest.raises(ClassMismatchError,
                           match=f"{what}: expected at least one name, got an empty list"):
            align_classes(classes, species)
    with pytest.raises(ClassMismatchError, match=r"\(2, 5\)"):
        align_classes(SPECIES, SPECIES).apply(np.ones((2, 5)))


# ---------------------------------------------------------------------------- taxonomy
# a small eBird-style taxonomy (the real file's columns) of the alignment species
EBIRD = pd.DataFrame(
    {
        "TAXON_ORDER": [1, 2, 3, 4, 5, 6, 7, 8],
        "CATEGORY": ["species"] * 6 + ["issf", "species"],
        "SPECIES_CODE": ["amerob", "easblu", "bkcchi", "carchi", "easmea", "wesmea", "amerob1",
                         "btnwar"],
        "PRIMARY_COM_NAME": ["American Robin", "Eastern Bluebird", "Black-capped Chickadee",
                             "Carolina Chickadee", "Eastern Meadowlark", "Western Meadowlark",
                             "American Robin (migratorius Group)", "Black-throated Green Warbler"],
        "SCI_NAME": SPECIES + ["Turdus migratorius migratorius", "Setophaga virens"],
        "REPORT_AS": [""] * 6 + ["amerob", ""],
    }
)  # fmt: skip
CODES = EBIRD["SPECIES_CODE"].tolist()[:6]
COMMON = EBIRD["PRIMARY_COM_NAME"].tolist()[:6]
# a GBIF backbone extract: an older synonym, and one common name for two species
GBIF = pd.DataFrame(
    {
        "taxonID": ["2490", "2491", "2482", "2483", "2484"],
        "scientificName": ["Setophaga virens (Gmelin, 1789)", "Dendroica virens (Gmelin, 1789)",
                           "Turdus migratorius Linnaeus, 1766", "Erithacus rubecula (L., 1758)",
                           "Sialia sialis (Linnaeus, 1758)"],
        "taxonomicStatus": ["accepted", "synonym", "accepted", "accepted", "accepted"],
        "acceptedNameUsageID": ["", "2490", "", "", ""],
        "taxonRank": ["species"] * 5,
        "vernacularName": ["Black-throated Green Warbler", "", "Robin", "Robin",
                           "Eastern Bluebird"],
    }
)  # fmt: skip


def spell(name: str, how: int) -> str:
    """One of the ways classifiers write a name."""
    return [name, name.upper(), name.replace(" ", "_").lower(), name.replace(" ", "-"),
            f"  {name.title()}  "][how]


@SETTINGS
@given(st.permutations(list(range(len(SPECIES)))),
       st.lists(st.tuples(st.sampled_from(["sci", "code", "common"]), st.integers(0, 4)),
                min_size=len(SPECIES), max_size=len(SPECIES)))
def test_taxonomy_alignment_recovers_permutation_whatever_the_labels(perm, forms):
    names = {"sci": SPECIES, "code": CODES, "common": COMMON}
    classes = [spell(names[kind][i], how) for i, (kind, how) in zip(perm, forms, strict=True)]
    a = align_classes(classes, SPECIES, taxonomy=EBIRD)
    np.testing.assert_array_equal(a.index, perm)
    for (kind, _), how in zip(forms, a.how, strict=True):
        assert how in ("name", "spelling") if kind == "sci" else how.startswith("taxonomy: ")


def test_taxonomy_alignment_common_names_codes_synonyms_and_subspecies():
    classes = ["American Robin", "easblu", "black-capped_chickadee",
               "Turdus migratorius migratorius", "American Robin (migratorius Group)"]
    a = align_classes(classes, SPECIES, taxonomy=EBIRD)
    np.testing.assert_array_equal(a.index, [0, 1, 2, 0, 0])
    assert a.how == ("taxonomy: common name", "taxonomy: code", "taxonomy: common name",
                     "subspecies", "taxonomy: subspecies of")
    frame = a.to_frame()
    assert frame.columns.tolist() == ["class", "species", "how"]
    assert frame["species"].tolist() == [SPECIES[i] for i in a.index]
    # the prior may be the one with codes: names resolve on both sides
    a = align_classes(["Eastern Bluebird", "Turdus migratorius"], CODES, taxonomy=EBIRD)
    np.testing.assert_array_equal(a.index, [1, 0])
    # an older synonym, either way round; the GBIF table's authors are cut
    prior = ["Setophaga virens", "Sialia sialis"]
    a = align_classes(["Dendroica virens", "Eastern Bluebird"], prior, taxonomy=GBIF)
    np.testing.assert_array_equal(a.index, [0, 1])
    assert a.how == ("taxonomy: synonym", "taxonomy: common name")
    a = align_classes(["Setophaga virens"], ["Dendroica virens"], taxonomy=GBIF)
    assert a.index.tolist() == [0]


def test_taxonomy_from_a_file_is_read_for_the_names_only(tmp_path):
    path = tmp_path / "eBird_Taxonomy_v2021.csv"
    EBIRD.to_csv(path, index=False, encoding="utf-8-sig")
    a = align_classes(COMMON[::-1], SPECIES, taxonomy=path)
    np.testing.assert_array_equal(a.index, np.arange(len(SPECIES))[::-1])
    tax = read_taxonomy(path)
    assert align_classes(CODES, SPECIES, taxonomy=tax).index.tolist() == list(range(6))


def test_long_numbered_and_hyphenated_labels_match_without_a_taxonomy():
    prior = ["Setophaga virens", "Diomedea nigripes", "Turdus migratorius migratorius"]
    classes = ["04837_Animalia_Chordata_Aves_Passeriformes_Parulidae_Setophaga_virens",
               "001.Diomedea_nigripes",
               "Animalia_Chordata_Aves_Passeriformes_Turdidae_Turdus_migratorius_migratorius"]
    a = align_classes(classes, prior)
    np.testing.assert_array_equal(a.index, [0, 1, 2])
    assert a.how == ("long name", "name", "long name")
    a = align_classes(["Setophaga-virens", "DIOMEDEA  NIGRIPES"], prior)
    assert a.index.tolist() == [0, 1] and a.how == ("spelling", "name")
    # a prior labelled with long names works as well
    assert align_classes(["Setophaga virens"], classes[:1]).index.tolist() == [0]


def test_ambiguous_names_are_errors_naming_the_candidates():
    with pytest.raises(ClassMismatchError, match=r"1 classifier class\(es\) are ambiguous: "
                       r"'Robin' is the common name of 2 taxa in the taxonomy: Turdus "
                       r"migratorius \(Robin\); Erithacus rubecula \(Robin\).*synonyms="):
        align_classes(["Robin", "Setophaga virens"], ["Turdus migratorius", "Setophaga virens"],
                      taxonomy=GBIF, missing="neutral")  # even when only one is in the prior
    # synonyms choose
    a = align_classes(["Robin"], ["Turdus migratorius"], taxonomy=GBIF,
                      synonyms={"Robin": "Turdus migratorius"})
    assert a.how == ("synonyms",)
    # one taxon, two prior species: which one is not guessed
    with pytest.raises(ClassMismatchError, match=r"'Black-throated Green Warbler' \(taxonomy: "
                       r"common name .*\) matches 2 prior species: 'Setophaga virens', "
                       r"'Dendroica virens'"):
        align_classes(["Black-throated Green Warbler"], ["Setophaga virens", "Dendroica virens"],
                      taxonomy=GBIF)


def test_nothing_matches_shows_classes_beside_species_and_what_to_pass():
    classes = ["amerob", "easblu", "bkcchi", "carchi", "easmea"]
    with pytest.raises(ClassMismatchError) as info:
        align_classes(classes, SPECIES)
    message = str(info.value)
    assert ("none of the 5 classifier classes matches any of the prior's 6 species: classifier "
            "classes 'amerob', 'easblu', 'bkcchi', 'carchi' and 1 more beside prior species 'Turdus "
            "migratorius', 'Sialia sialis', 'Poecile atricapillus', 'Poecile carolinensis' and 2 "
            "more. Pass taxonomy=FILE")\
        in message
    assert "taxonomy=FILE" in message and "synonyms={" in message and "\n" not in message
    with pytest.raises(ClassMismatchError, match=r"The GBIF taxonomy \(DataFrame, 5 taxa\) knows "
                       r"0 of these 5 classes and 2 of the prior's 6 species"):
        align_classes(classes, SPECIES, taxonomy=GBIF)
    with pytest.raises(ClassMismatchError, match=r"1 of 2 .*'Mystery bird'.*taxonomy=FILE.*"
                                                 r"missing='neutral'"):
        align_classes(["Sialia sialis", "Mystery bird"], SPECIES)
    with pytest.raises(FormatError, match="not a taxonomy table"):
        align_classes(classes, SPECIES, taxonomy=pd.DataFrame({"x": [1]}))


def test_rerank_with_a_taxonomy_equals_rerank_with_scientific_names():
    logits, lat, lon = meadowlark_case()
    prior = BandPrior(CLASSES, CENTRES, width=8.0)
    common = ["Eastern Meadowlark", "western_meadowlark", "amerob"]
    by_name = rerank(logits, CLASSES, prior, lat, lon, k=2)
    by_taxonomy = rerank(logits, common, prior, lat, lon, k=2, taxonomy=EBIRD)
    np.testing.assert_array_equal(by_taxonomy.top_index, by_name.top_index)
    np.testing.assert_allclose(by_taxonomy.log_probs, by_name.log_probs)
    assert by_taxonomy.classes == tuple(common)


# ---------------------------------------------------------------------------- rerank
CLASSES = ["Sturnella magna", "Sturnella neglecta", "Turdus migratorius"]
CENTRES = [-80.0, -110.0, -95.0]  # east, west, everywhere in between (wide)


def meadowlark_case():
    """Photos of eastern (at lon -80) and western (-110) meadowlarks that the classifier
    confuses; it always slightly prefers the eastern one."""
    logits = np.array([[2.0, 1.8, -1.0]] * 4 + [[0.0, 0.0, 3.0]])
    lat = np.array([40.0, 40.0, np.nan, 40.0, 40.0])
    lon = np.array([-110.0, -80.0, -110.0, -110.0, -95.0])
    return logits, lat, lon


def test_rerank_fixes_lookalikes_and_flags():
    logits, lat, lon = meadowlark_case()
    prior = BandPrior(CLASSES, CENTRES, width=8.0)
    r = rerank(logits, CLASSES, prior, lat, lon, "2021-06-01", k=2, batch_size=2)
    assert r.top_species[:, 0].tolist() == ["Sturnella neglecta", "Sturnella magna",
                                            "Sturnella magna", "Sturnella neglecta",
                                            "Turdus migratorius"]
    np.testing.assert_array_equal(r.changed, [True, False, False, True, False])
    np.testing.assert_array_equal(r.no_location, [False, False, True, False, False])
    np.testing.assert_array_equal(r.outside_range, [True, False, False, True, False])
    assert not r.filtered_all.any()
    assert prior.calls == [2, 2]  # only the 4 located rows, in batches of 2
    assert np.isnan(r.prior[2]).all()
    np.testing.assert_allclose(r.top_scores.sum(axis=1) <= 1 + 1e-6, True)
    np.testing.assert_allclose(np.exp(r.log_probs[2]), np.exp(log_softmax(logits[2])), atol=1e-6)
    assert r.classifier_species[:, 0].tolist() == ["Sturnella magna"] * 4 + ["Turdus migratorius"]
    df = r.to_frame()
    assert len(df) == 5
    assert {"species_1", "score_2", "classifier_species", "changed", "no_location",
            "outside_range", "filtered_all", "prior_species_1",
            "prior_classifier_species"} <= set(df.columns)
    assert df["prior_species_1"].iloc[0] > df["prior_classifier_species"].iloc[0]


def test_rerank_thresholds_precedence_and_modes():
    logits, lat, lon = meadowlark_case()
    # per-species thresholds of the prior win: nothing is below 0 ...
    r = rerank(logits, CLASSES, BandPrior(CLASSES, CENTRES, 8.0, thresholds=[0, 0, 0]), lat, lon)
    assert not r.outside_range.any()
    # ... then the threshold argument (absolute)
    r = rerank(logits, CLASSES, BandPrior(CLASSES, CENTRES, 8.0), lat, lon, threshold=0.99)
    np.testing.assert_array_equal(r.outside_range, [True, True, False, True, True])
    # filter mode: row 4 at lon -95 has the Turdus prior 0.95 only; a tiny threshold keeps all
    r = rerank(logits, CLASSES, BandPrior(CLASSES, CENTRES, 8.0), lat, lon, mode="filter",
               threshold=0.999)
    np.testing.assert_array_equal(r.filtered_all, [True, True, False, True, True])
    assert not r.changed.any()  # everything fell back to the classifier
    params = FusionParams(mode="none")
    r = rerank(logits, CLASSES, BandPrior(CLASSES, CENTRES, 8.0), lat, lon, params=params)
    assert not r.changed.any() and r.fusion["mode"] == "none"
    r = rerank(logits[0], CLASSES, BandPrior(CLASSES, CENTRES, 8.0), 40.0, -110.0, k=10)
    assert r.top_index.shape == (1, 3)


def test_rerank_neutral_unmatched_class():
    logits = np.array([[1.0, 0.9, 0.0, 4.0]])
    classes = CLASSES + ["Mystery bird"]
    with pytest.raises(ClassMismatchError, match="Mystery bird"):
        rerank(logits, classes, BandPrior(CLASSES, CENTRES), 40.0, -110.0)
    r = rerank(logits, classes, BandPrior(CLASSES, CENTRES), 40.0, -110.0, missing="neutral")
    assert r.top_species[0, 0] == "Mystery bird" and not r.outside_range[0]


def test_rerank_errors():
    logits, lat, lon = meadowlark_case()
    prior = BandPrior(CLASSES, CENTRES)
    bad_lat = lat.copy()
    bad_lat[3] = 95.0
    with pytest.raises(CoordinateError, match=r"1 of 5 latitudes outside .*; first: row 3"):
        rerank(logits, CLASSES, prior, bad_lat, lon)
    with pytest.raises(CoordinateError, match="3 latitudes"):
        rerank(logits, CLASSES, prior, lat[:3], lon)
    with pytest.raises(DateError, match="row 1"):
        rerank(logits, CLASSES, prior, lat, lon, ["2021-06-01", "2021-02-30"] + ["2021-06-01"] * 3)
    with pytest.raises(ClassMismatchError, match="3 columns but 2"):
        rerank(logits, CLASSES[:2], prior, lat, lon)
    with pytest.raises(ConfigError, match="wieght"):
        rerank(logits, CLASSES, prior, lat, lon, wieght=2.0)
    with pytest.raises(ConfigError):
        rerank(logits, CLASSES, prior, lat, lon, k=0)
    with pytest.raises(ClassMismatchError, match="thresholds"):
        rerank(logits, CLASSES, BandPrior(CLASSES, CENTRES, thresholds=[0.1]), lat, lon)


# ---------------------------------------------------------------------------- fit_fusion
def synthetic_validation(n, informative: bool, seed=0):
    """Look-alike pairs (2i, 2i+1) living in different regions; the classifier can't tell
    a pair apart, the prior can (or is noise)."""
    rng = np.random.default_rng(seed)
    S = 8
    labels = rng.integers(0, S, n)
    region = labels % 2  # the pair member tells the region
    logits = rng.normal(0, 1.0, (n, S))
    logits[np.arange(n), labels] += 3.0
    logits[np.arange(n), labels ^ 1] += 2.8  # the look-alike
    if informative:
        prior = np.where(np.arange(S)[None, :] % 2 == region[:, None], 0.8, 0.05)
        prior = prior * rng.uniform(0.8, 1.0, (n, S))
    else:
        prior = rng.uniform(0, 1, (n, S))
    return logits, labels, prior


def top1(logp, labels):
    return float(np.mean(np.argmax(np.asarray(logp), axis=1) == labels))


def test_fit_fusion_uses_an_informative_prior():
    logits, labels, prior = synthetic_validation(400, informative=True)
    p = fit_fusion(logits, labels, prior)
    assert p.mode in ("product", "floor", "filter")
    if p.mode != "filter":
        assert p.weight > 0
    assert p.top1 > p.classifier_top1 + 0.2
    assert p.classifier_top1 == pytest.approx(top1(logits, labels))
    assert p.top1 == pytest.approx(top1(fuse(logits, prior, **p.as_kwargs()), labels))
    test_logits, test_labels, test_prior = synthetic_validation(400, True, seed=1)
    assert top1(fuse(test_logits, test_prior, **p.as_kwargs()), test_labels) > \
        top1(test_logits, test_labels) + 0.2
    q = fit_fusion(logits, labels, prior, modes=("product",), objective="nll")
    assert q.mode == "product" and q.weight > 0 and q.nll < q.classifier_nll


def test_fit_fusion_ignores_a_noise_prior():
    logits, labels, prior = synthetic_validation(400, informative=False, seed=2)
    p = fit_fusion(logits, labels, prior)
    assert p.mode == "none" or (p.mode in ("product", "floor") and p.weight <= 0.1) or \
        (p.mode == "filter" and p.threshold <= 0.01)
    assert p.top1 >= p.classifier_top1
    test_logits, test_labels, test_prior = synthetic_validation(400, False, seed=3)
    assert top1(fuse(test_logits, test_prior, **p.as_kwargs()), test_labels) >= \
        top1(test_logits, test_labels) - 0.02
    assert fit_fusion(logits, labels, prior) == p  # deterministic


def test_fit_fusion_errors():
    logits, labels, prior = synthetic_validation(20, True)
    with pytest.raises(ClassMismatchError, match=r"1 of 20 labels outside \[0, 8\); first: row 3"):
        fit_fusion(logits, np.where(np.arange(20) == 3, 8, labels), prior)
    with pytest.raises(ClassMismatchError, match="19 labels"):
        fit_fusion(logits, labels[:19], prior)
    with pytest.raises(ClassMismatchError, match="integer"):
        fit_fusion(logits, labels.astype(float), prior)
    with pytest.raises(ConfigError, match="floor"):
        fit_fusion(logits, labels, prior, modes=("flor",))
    with pytest.raises(ConfigError):
        fit_fusion(logits, labels, prior, objective="top5")


# ---------------------------------------------------------------------------- FusionParams
def test_params_json_roundtrip_and_atomic_save(tmp_path):
    p = FusionParams(mode="filter", weight=0.0, threshold=0.03, temperature=1.3, objective="top1",
                     top1=0.8, nll=float("inf"), classifier_top1=0.7, classifier_nll=1.1, n_val=10)
    assert FusionParams.from_json(p.to_json()) == p
    path = p.save(tmp_path / "prior" / "fusion.json")
    assert FusionParams.load(path) == p
    assert json.loads(path.read_text())["nll"] is None
    assert [f.name for f in path.parent.iterdir()] == ["fusion.json"]  # no temp file left
    with pytest.raises(OutputExistsError):
        p.save(path, overwrite=False)
    with pytest.raises(MissingFileError):
        FusionParams.load(tmp_path / "absent.json")
    out = fuse(np.zeros((1, 2)), np.ones(2), **p.as_kwargs())
    assert out.shape == (1, 2)


def test_params_validation():
    with pytest.raises(ConfigError):
        FusionParams(mode="floor", floor=2.0)
    with pytest.raises(FormatError, match="format"):
        FusionParams.from_json('{"mode": "product"}')
    with pytest.raises(FormatError, match="JSON"):
        FusionParams.from_json("{")
    text = json.loads(FusionParams().to_json())
    with pytest.raises(FormatError, match="wieght"):
        FusionParams.from_json(json.dumps({**text, "wieght": 1}))
    with pytest.raises(FormatError, match="version"):
        FusionParams.from_json(json.dumps({**text, "format_version": 99}))
    with pytest.raises(GeopriorError):
        FusionParams.from_json(json.dumps({**text, "mode": "max"}))


@pytest.mark.parametrize("version", [0, -1, True, "1", None])
def test_params_file_with_a_bogus_format_version_names_the_file(tmp_path, version):
    path = tmp_path / "fusion.json"
    path.write_text(json.dumps({**json.loads(FusionParams().to_json()), "format_version": version}))
    with pytest.raises(FormatError, match=rf"{path}: .*format version {version!r}, expected"):
        FusionParams.load(path)


@pytest.mark.parametrize(("key", "value"), [("weight", True), ("temperature", False),
                                            ("floor", True), ("n_val", True), ("mode", 1)])
def test_params_file_refuses_a_bool_or_wrong_type_naming_the_file_and_field(tmp_path, key, value):
    path = tmp_path / "fusion.json"
    path.write_text(json.dumps({**json.loads(FusionParams(mode="floor").to_json()), key: value}))
    with pytest.raises(PriorFileError, match=rf"{path}: .*field '{key}': expected .*got {value!r}"):
        FusionParams.load(path)


def test_rerank_outside_range_uses_presence_like_its_thresholds(trained_prior, synthetic_obs):
    from geoprior.fusion import rerank

    # a classifier sure of the species recorded at each training place
    obs = synthetic_obs.with_vocabulary(trained_prior.species)[np.arange(0, 1000, 10)]
    logits = np.full((len(obs), trained_prior.n_species), -5.0)
    logits[np.arange(len(obs)), obs.species_index] = 5.0
    result = rerank(logits, trained_prior.species, trained_prior, obs.lat, obs.lon, obs.date)
    # LPT thresholds keep about 95% of a species' own records in range
    assert result.outside_range.mean() < 0.25


# ---------------------------------------------------------------------------- warnings
def softmax(x):
    return np.exp(log_softmax(x))


def test_probabilities_passed_as_logits_warn_at_every_entry_point():
    from geoprior.errors import GeopriorWarning, ProbabilitiesAsLogitsWarning

    logits, lat, lon = meadowlark_case()
    probs = softmax(logits)
    prior = BandPrior(CLASSES, CENTRES, width=8.0)
    calls = [
        lambda x: fuse(x, prior_like(x)),
        lambda x: fuse_with_flags(x, prior_like(x), mode="filter"),
        lambda x: rerank(x, CLASSES, prior, lat, lon),
        lambda x: fit_fusion(x, np.zeros(len(x), int), prior_like(x), modes=("product",)),
    ]
    for call in calls:
        with pytest.warns(ProbabilitiesAsLogitsWarning, match=r"logits look like probabilities: "
                          r"all 5 rows are in \[0, 1\] and sum to 1.*np\.log\(p\)") as info:
            call(probs)
        assert issubclass(info[0].category, GeopriorWarning) and issubclass(
            info[0].category, UserWarning)
        assert info[0].filename == __file__  # attributed to the caller, not the library
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in calls:  # real logits, and log-probabilities, are fine
            call(logits)
            call(np.log(probs))
        fuse(np.array([[0.0, 1.0], [1.0, 0.0]]), np.ones(2))  # one-hot: not probabilities
        jax.jit(fuse, static_argnames="mode")(jnp.asarray(probs), jnp.ones(3), mode="product")


def test_sigmoid_scores_passed_as_logits_warn():
    from geoprior.errors import ProbabilitiesAsLogitsWarning

    scores = np.random.default_rng(0).uniform(0.0, 0.4, (40, 5))  # rows do not sum to 1
    with pytest.warns(ProbabilitiesAsLogitsWarning, match=r"per-class scores.*all 200 values.*"
                                                         r"log\(p / \(1 - p\)\)"):
        fuse(scores, prior_like(scores))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fuse(scores[:10], prior_like(scores[:10]))  # 50 values: too few to tell
        fuse(np.zeros((40, 5)), np.ones(5))  # constant: an uninformative classifier


def test_swapped_coordinates_warn_against_the_extent_or_land(trained_prior):
    from geoprior.errors import SwappedCoordinatesWarning

    names = list(trained_prior.species)
    logits = np.zeros((4, len(names)))
    # places near (48, 10), the European species' centre, given as (lon, lat)
    lat, lon = np.array([10.0, 10.5, 9.5, np.nan]), np.array([48.0, 47.5, 48.5, np.nan])
    with pytest.warns(SwappedCoordinatesWarning, match=r"3 of 3 places are outside the prior's "
                      r"training extent as given but inside it with latitude and longitude "
                      r"exchanged \(first: lat=10.0, lon=48.0\)"):
        rerank(logits, names, trained_prior, lat, lon)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwappedCoordinatesWarning)
        rerank(logits, names, trained_prior, lon, lat)  # the right way round
    # a prior without an extent: land is the reference (England, lon first)
    prior = BandPrior(CLASSES, CENTRES)
    with pytest.warns(SwappedCoordinatesWarning, match="3 of 3 places are at sea as given but "
                                                       "on land"):
        rerank(np.zeros((3, 3)), CLASSES, prior, [0.1, -0.1, -2.2], [52.2, 51.5, 53.4])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwappedCoordinatesWarning)
        rerank(np.zeros((3, 3)), CLASSES, prior, [52.2, 51.5, 53.4], [0.1, -0.1, -2.2])
        # one place of three at sea is not "most"
        rerank(np.zeros((3, 3)), CLASSES, prior, [0.1, 51.5, 53.4], [52.2, -0.1, -2.2])


def test_latitudes_beyond_90_that_fit_as_longitudes_say_so():
    prior = BandPrior(CLASSES, CENTRES)
    with pytest.raises(CoordinateError, match=r"1 of 2 latitudes outside .*are latitude and "
                                              r"longitude swapped\?"):
        rerank(np.zeros((2, 3)), CLASSES, prior, [-71.3, -93.1], [44.1, 44.9])
    with pytest.raises(CoordinateError) as info:
        rerank(np.zeros((2, 3)), CLASSES, prior, [95.0, 40.0], [120.0, 10.0])
    assert "swapped" not in str(info.value)  # a longitude of 120 is no latitude


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(-90, 90)),
       st.integers(0, 2**31))
def test_a_swap_warning_never_fires_both_ways(lat, seed):
    from geoprior.fusion.checks import warn_if_swapped

    lon = np.random.default_rng(seed).uniform(-90, 90, lat.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not (warn_if_swapped(lat, lon) and warn_if_swapped(lon, lat))
