"""Tests of geoprior.io.taxonomy: reading eBird, GBIF and iNaturalist taxonomy tables."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior.errors import ConfigError, EmptyDataError, FormatError, MissingFileError
from geoprior.io.taxonomy import (
    Taxonomy,
    _canonical_names,
    canonical_name,
    name_key,
    name_keys,
    read_taxonomy,
)

SETTINGS = settings(max_examples=40, deadline=None)

# the columns of the real eBird taxonomy CSV (v2021), a byte-order mark in front
EBIRD = """\ufeffTAXON_ORDER,CATEGORY,SPECIES_CODE,PRIMARY_COM_NAME,SCI_NAME,ORDER1,FAMILY,SPECIES_GROUP,REPORT_AS
1,species,ostric2,Common Ostrich,Struthio camelus,Struthioniformes,Struthionidae (Ostriches),Ostriches,
7,slash,y00934,Common/Somali Ostrich,Struthio camelus/molybdophanes,Struthioniformes,Struthionidae (Ostriches),,
20001,species,blujay,Blue Jay,Cyanocitta cristata,Passeriformes,"Corvidae (Crows, Jays, and Magpies)",Jays,
30001,species,btnwar,Black-throated Green Warbler,Setophaga virens,Passeriformes,Parulidae (New World Warblers),,
30010,species,yerwar,Yellow-rumped Warbler,Setophaga coronata,Passeriformes,Parulidae (New World Warblers),,
30012,issf,audwar,Yellow-rumped Warbler (Audubon's),Setophaga coronata auduboni,Passeriformes,Parulidae (New World Warblers),,yerwar
40001,species,coohaw,Cooper's Hawk,Accipiter cooperii,Accipitriformes,"Accipitridae (Hawks, Eagles, and Kites)",,
"""

# a GBIF backbone download: Taxon.tsv (unquoted, tab-separated) and VernacularName.tsv
TAXON_TSV = [
    ["taxonID", "parentNameUsageID", "acceptedNameUsageID", "scientificName",
     "scientificNameAuthorship", "canonicalName", "taxonRank", "taxonomicStatus"],
    ["2490", "9", "", "Setophaga virens (Gmelin, 1789)", "(Gmelin, 1789)", "Setophaga virens",
     "species", "accepted"],
    ["2491", "9", "2490", "Dendroica virens (Gmelin, 1789)", "(Gmelin, 1789)",
     "Dendroica virens", "species", "heterotypic synonym"],
    ["2492", "2490", "", "Setophaga virens waynei (Bangs, 1918)", "(Bangs, 1918)",
     "Setophaga virens waynei", "subspecies", "accepted"],
    ["2482", "8", "", "Cyanocitta cristata (Linnaeus, 1758)", "(Linnaeus, 1758)",
     "Cyanocitta cristata", "species", "accepted"],
    ["2483", "7", "", "Turdus migratorius Linnaeus, 1766", "Linnaeus, 1766",
     "Turdus migratorius", "species", "accepted"],
    ["2484", "6", "", "Erithacus rubecula (Linnaeus, 1758)", "(Linnaeus, 1758)",
     "Erithacus rubecula", "species", "accepted"],
    ["2485", "5", "", "Parus caeruleus Linnaeus, 1758", "Linnaeus, 1758", "Parus caeruleus",
     "species", "synonym"],  # a synonym whose accepted taxon the file lacks
]  # fmt: skip
VERNACULAR_TSV = [
    ["taxonID", "vernacularName", "language"],
    ["2490", "Grünwaldsänger", "de"],
    ["2490", "Black-throated Green Warbler", "en"],
    ["2482", "Blue Jay", "en"],
    ["2482", "Blauhäher", "de"],
    ["2483", "American Robin", "en"],
    ["2483", "Robin", "en"],
    ["2484", "European Robin", "en"],
    ["2484", "Robin", "en"],
]

INAT = pd.DataFrame(
    {
        "id": [9721, 9500, 9722, 8229, 12727],
        "name": ["Setophaga virens", "Dendroica virens", "Setophaga virens waynei",
                 "Cyanocitta cristata", "Turdus migratorius"],
        "rank": ["species", "species", "subspecies", "species", "species"],
        "ancestry": ["48460/1/2/3", "48460/1/2/3", "48460/1/2/3/9721", "48460/1/2/3",
                     "48460/1/2/3"],
        "preferred_common_name": ["Black-throated Green Warbler", None, None, "Blue Jay",
                                  "American Robin"],
        "is_active": [True, False, True, True, True],
        "current_synonymous_taxon_ids": [None, "[9721]", None, None, None],
    }
)  # fmt: skip


def write_tsv(path, rows):
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def ebird_csv(tmp_path):
    path = tmp_path / "eBird_Taxonomy_v2021.csv"
    path.write_text(EBIRD, encoding="utf-8")
    return path


@pytest.fixture()
def backbone(tmp_path):
    folder = tmp_path / "backbone"
    folder.mkdir()
    write_tsv(folder / "Taxon.tsv", TAXON_TSV)
    write_tsv(folder / "VernacularName.tsv", VERNACULAR_TSV)
    (folder / "Distribution.tsv").write_text("taxonID\tlocality\n2490\tCanada\n")
    return folder


# ---------------------------------------------------------------------------- eBird
def test_ebird_names_codes_and_spellings(ebird_csv):
    tax = read_taxonomy(ebird_csv)
    assert isinstance(tax, Taxonomy) and tax.source == "ebird" and len(tax) == 7
    assert "7 taxa" in repr(tax)
    for name, kind in [
        ("Cyanocitta cristata", "scientific name"),
        ("blujay", "code"),
        ("BLUJAY", "code"),
        ("Blue Jay", "common name"),
        ("blue_jay", "common name"),
        ("  BLUE   jay ", "common name"),
    ]:
        assert tax.resolve(name) == (("blujay",), kind), name
    assert tax.concept("black_throated_green_warbler") == "btnwar"
    assert tax.concept("Black Throated Green-Warbler") == "btnwar"
    assert tax.concept("coopers hawk") == tax.concept("Cooper\u2019s Hawk") == "coohaw"
    assert tax.scientific_name("btnwar") == "Setophaga virens"
    assert tax.common_name("Setophaga virens") == "Black-throated Green Warbler"
    assert tax.common_name("btnwar") == "Black-throated Green Warbler"
    assert tax.describe("blujay") == "Cyanocitta cristata (Blue Jay)"
    # a subspecies group is reported as its species (REPORT_AS); a species as nothing
    assert tax.concept("Setophaga coronata auduboni") == "audwar"
    assert tax.species_of("audwar") == "yerwar" and tax.species_of("yerwar") is None
    # a slash is its own taxon, not a trinomial of the ostrich
    assert tax.concept("Struthio camelus/molybdophanes") == "y00934"
    assert tax.concept("Struthio camelus molybdophanes") is None
    assert tax.resolve("Nothing like it") == ((), "")


def test_ebird_read_for_a_few_names_keeps_what_they_need(ebird_csv):
    tax = read_taxonomy(ebird_csv, names=["Yellow-rumped Warbler (Audubon's)", "blue jay"])
    assert len(tax) == 7  # rows read, whatever was kept
    assert tax.concept("Blue Jay") == "blujay" and tax.species_of("audwar") == "yerwar"
    assert tax.scientific_name("yerwar") == "Setophaga coronata"  # found in a second pass
    assert tax.concept("Cooper's Hawk") is None  # not asked for: not kept


def test_clements_columns_are_read_as_ebird(tmp_path):
    path = tmp_path / "clements.csv"
    pd.DataFrame({"sort v2023": [1], "species_code": ["blujay"], "category": ["species"],
                  "English name": ["Blue Jay"], "scientific name": ["Cyanocitta cristata"],
                  "range": ["E North America"]}).to_csv(path, index=False)
    tax = read_taxonomy(path)
    assert tax.source == "ebird" and tax.concept("Blue Jay") == tax.concept("blujay") == "blujay"


# ---------------------------------------------------------------------------- GBIF
def check_backbone(tax):
    assert tax.source == "gbif"
    assert tax.resolve("Dendroica virens") == (("2490",), "synonym")
    assert tax.resolve("Setophaga virens") == (("2490",), "scientific name")
    assert tax.resolve("2491") == (("2490",), "code")  # a synonym's key: its accepted taxon
    assert tax.resolve("Blue Jay") == (("2482",), "common name")
    assert tax.concept("Blauhäher") == tax.concept("blauhaher") == "2482"
    # English first: the display name of a taxon with several
    assert tax.common_name("2490") == "Black-throated Green Warbler"
    assert tax.species_of("2492") == "2490"
    assert tax.resolve("Robin") == (("2483", "2484"), "common name")  # ambiguous: both
    assert tax.concept("Robin") is None
    # a synonym without its accepted taxon stands for itself
    assert tax.resolve("Parus caeruleus") == (("2485",), "synonym")


def test_gbif_backbone_folder_and_zip(backbone, tmp_path):
    check_backbone(read_taxonomy(backbone))
    archive = tmp_path / "backbone.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in backbone.iterdir():
            zf.write(p, f"backbone/{p.name}")
        zf.writestr("meta.xml", "<archive/>")
    tax = read_taxonomy(archive)
    check_backbone(tax)
    assert "Taxon.tsv" in tax.where


def test_gbif_backbone_read_for_names_finds_the_accepted_taxa(backbone):
    tax = read_taxonomy(backbone, names=["Dendroica virens", "Blauhäher", "Setophaga virens waynei"])
    assert tax.concept("Dendroica virens") == "2490"
    assert tax.scientific_name("2490") == "Setophaga virens"  # a row found in a later pass
    assert tax.common_name("2490") == "Black-throated Green Warbler"  # and its names
    assert tax.concept("Blauhäher") == "2482" and tax.species_of("2492") == "2490"
    assert tax.concept("Turdus migratorius") is None  # not asked for


def test_gbif_species_list_download_without_canonical_names(tmp_path):
    """GBIF's occurrence "species list" download: taxonKey, scientificName with authors,
    acceptedTaxonKey; subspecies point to their speciesKey."""
    rows = [
        ["taxonKey", "scientificName", "acceptedTaxonKey", "acceptedScientificName",
         "numberOfOccurrences", "taxonRank", "taxonomicStatus", "speciesKey"],
        ["2490", "Setophaga virens (Gmelin, 1789)", "2490", "Setophaga virens (Gmelin, 1789)",
         "120", "SPECIES", "ACCEPTED", "2490"],
        ["2491", "Dendroica virens (Gmelin, 1789)", "2490", "Setophaga virens (Gmelin, 1789)",
         "3", "SPECIES", "SYNONYM", "2490"],
        ["2492", "Setophaga virens waynei (Bangs, 1918)", "2492",
         "Setophaga virens waynei (Bangs, 1918)", "2", "SUBSPECIES", "ACCEPTED", "2490"],
        ["5000", "Quercus robur de Candolle", "5000", "Quercus robur de Candolle", "1",
         "SPECIES", "DOUBTFUL", "5000"],
    ]  # fmt: skip
    tax = read_taxonomy(write_tsv(tmp_path / "0001234-240101.csv", rows))
    assert tax.source == "gbif"
    assert tax.scientific_name("2490") == "Setophaga virens"
    assert tax.resolve("Dendroica virens") == (("2490",), "synonym")
    assert tax.species_of("2492") == "2490"
    assert tax.resolve("Quercus robur") == (("5000",), "scientific name")  # doubtful: accepted


def test_synonym_chains_resolve_to_the_end_and_cycles_stop():
    frame = pd.DataFrame({
        "taxonID": ["1", "2", "3", "7", "8"],
        "canonicalName": ["Aa bb", "Cc dd", "Ee ff", "Gg hh", "Ii jj"],
        "taxonomicStatus": ["synonym", "synonym", "accepted", "synonym", "synonym"],
        "acceptedNameUsageID": ["2", "3", "", "8", "7"],
    })  # fmt: skip
    tax = read_taxonomy(frame)
    assert tax.concept("Aa bb") == tax.concept("Cc dd") == tax.concept("Ee ff") == "3"
    assert {tax.concept("Gg hh"), tax.concept("Ii jj")} <= {"7", "8"}  # a cycle: no hang


# ---------------------------------------------------------------------------- iNaturalist
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_inat_taxa(tmp_path, suffix):
    path = tmp_path / f"taxa{suffix}"
    INAT.to_parquet(path) if suffix == ".parquet" else INAT.to_csv(path, index=False)
    tax = read_taxonomy(path)
    assert tax.source == "inat"
    assert tax.resolve("Dendroica virens") == (("9721",), "synonym")  # inactive: its synonym
    assert tax.resolve("9721") == (("9721",), "code") and tax.concept(9721) == "9721"
    assert tax.concept("american robin") == "12727"
    assert tax.common_name("Setophaga virens") == "Black-throated Green Warbler"
    assert tax.species_of("9722") == "9721"  # the subspecies' parent, from its ancestry
    assert tax.species_of("9721") is None


def test_inat_taxa_with_a_split_synonym_resolve_to_themselves():
    frame = INAT.assign(current_synonymous_taxon_ids=[None, "9721, 9722", None, None, None])
    tax = read_taxonomy(frame)
    assert tax.resolve("Dendroica virens") == (("9500",), "synonym")  # two successors: no guess


# ---------------------------------------------------------------------------- errors
def test_format_errors_list_what_each_format_needs(tmp_path):
    path = tmp_path / "taxa.csv"
    pd.DataFrame({"species": ["Blue Jay"], "code": ["blujay"]}).to_csv(path, index=False)
    with pytest.raises(FormatError) as info:
        read_taxonomy(path)
    message = str(info.value)
    assert "not a taxonomy table; columns found: 'species', 'code'" in message
    for expected in ("SCI_NAME and PRIMARY_COM_NAME", "taxonID", "canonicalName",
                     "id (or taxon_id) and name"):
        assert expected in message
    with pytest.raises(FormatError, match="an eBird taxonomy needs SCI_NAME.*columns found: .id., .name."):
        read_taxonomy(INAT, format="ebird")
    with pytest.raises(ConfigError, match="Did you mean 'gbif'"):
        read_taxonomy(path, format="gbfi")
    with pytest.raises(MissingFileError):
        read_taxonomy(tmp_path / "none.csv")
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    with pytest.raises(FormatError, match="no taxon table in it"):
        read_taxonomy(folder)
    pd.DataFrame({"SCI_NAME": [None], "PRIMARY_COM_NAME": ["x"]}).to_csv(path, index=False)
    with pytest.raises(EmptyDataError, match="no taxa"):
        read_taxonomy(path)
    with pytest.raises(ConfigError, match="encoding"):
        read_taxonomy(path, encoding="klingon")


# ---------------------------------------------------------------------------- properties
names_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30
)


@SETTINGS
@given(st.lists(names_text, min_size=1, max_size=8))
def test_name_keys_match_name_key(names):
    expected = [name_key(n) for n in names]
    assert name_keys(pd.Series(names, dtype=object)).tolist() == expected


@SETTINGS
@given(st.lists(names_text | st.sampled_from(
    ["Setophaga virens (Gmelin, 1789)", "Salix alba var. vitellina (L.) Stokes", "Aa",
     "Quercus robur de Candolle", "× Cupressocyparis leylandii", "Poa annua L. subsp. x"]),
    min_size=1, max_size=6))
def test_canonical_names_match_canonical_name(names):
    expected = [canonical_name(n) for n in names]
    assert _canonical_names(pd.Series(names, dtype=object)).tolist() == expected


@SETTINGS
@given(st.lists(st.sampled_from(
    ["Dendroica virens", "Blue Jay", "blauhaher", "Robin", "2491", "Setophaga virens waynei",
     "American Robin", "Parus caeruleus", "nothing"]), min_size=1, max_size=4, unique=True))
def test_a_read_for_some_names_resolves_them_as_the_full_read(tmp_path_factory, names):
    folder = tmp_path_factory.mktemp("bb")
    write_tsv(folder / "Taxon.tsv", TAXON_TSV)
    write_tsv(folder / "VernacularName.tsv", VERNACULAR_TSV)
    full, part = read_taxonomy(folder), read_taxonomy(folder, names=names)
    for name in names:
        assert part.resolve(name) == full.resolve(name), name
        for concept in full.resolve(name)[0]:
            assert part.describe(concept) == full.describe(concept)
            assert part.species_of(concept) == full.species_of(concept)


def test_keys_make_hyphens_case_and_accents_one():
    variants = ["Black-throated Green Warbler", "black throated green warbler",
                "BLACK_THROATED_GREEN_WARBLER", "Black–throated  Green\u00a0Warbler"]
    assert len({name_key(v) for v in variants}) == 1
    assert np.unique(name_keys(pd.Series(variants)).to_numpy()).size == 1
