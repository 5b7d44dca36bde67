"""Every code block of README.md and docs/quickstart.md runs as written.

```python blocks of a file run in one namespace, in order, in a temporary working
directory; ```bash blocks run each ``geoprior ...`` command through the CLI (click's
runner, in-process) in the same directory. Blocks without a language (synopses, printed
output) are not code. A block right after ``<!-- not run: REASON -->`` is skipped and
counted; :data:`NOT_RUN` says how many each file may have, so marking one more is a
deliberate change.

The files the docs name as the user's own (a classifier's logits, its class names, the
places, a taxonomy) are written small by :func:`write_user_files` from the embedded NEON
bird sample. :data:`PLACEHOLDERS` swaps a user's data file for the sample, and
:data:`FAST_PYTHON` / :data:`FAST_CLI` **only shorten training** (100 steps, one small
network, no validation) so the whole page runs in seconds; the docs keep the defaults users should
run.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import geoprior
from geoprior.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/quickstart.md")
#: How many blocks of each file are marked not run (the set-up commands install packages;
#: the quickstart's examples of reading your own files need those files).
NOT_RUN = {"README.md": 2, "docs/quickstart.md": 3}

#: A user's data file -> the embedded sample (exact text; each must occur in its file).
PLACEHOLDERS = {
    "README.md": {
        'geoprior.read_observations("gbif_download.zip")': 'geoprior.load_sample("neon_bird")',
    },
}
# The rewrites below only shorten training: 100 steps, one network of width 64, no
# held-out validation.
_FAST = (
    'geoprior.TrainConfig(steps=100, members=1, validation="none", '
    "model=geoprior.ModelConfig(width=64))"
)
#: Python training calls -> the same with a short config (exact text; each must occur).
FAST_PYTHON = {
    "README.md": {
        'geoprior.train_prior(obs, workdir="runs/birds")':
            f'geoprior.train_prior(obs, {_FAST}, workdir="runs/birds")',
    },
    "docs/quickstart.md": {
        'geoprior.train_prior(train, workdir="runs/birds")':
            f'geoprior.train_prior(train, {_FAST}, workdir="runs/birds")',
    },
}
#: Appended to every ``geoprior train`` command (later ``--set`` win).
FAST_CLI = [
    "--set", "steps=100", "--set", "members=1", "--set", "validation=none",
    "--set", "model.width=64",
]  # fmt: skip

_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<why>.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")


@dataclass
class Block:
    lang: str  # "python", "bash", or "" for output and synopses
    code: str
    line: int  # 1-based line of the opening fence
    not_run: str | None  # the reason given, or None


def code_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, dedented, with the not-run marker (on the last
    non-blank line before the fence) when there is one."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = m["indent"], i
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"
             and lines[j].startswith(indent)),
            None,
        )
        if end is None:
            raise AssertionError(f"line {start + 1}: code block never closed")
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _NOT_RUN.match(before)
        code = textwrap.dedent("\n".join(lines[start + 1 : end]))
        blocks.append(Block(m["lang"].lower(), code, start + 1, marker["why"] if marker else None))
        i = end + 1
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a bash block: ``\\`` continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [args for line in joined.splitlines() if (args := shlex.split(line, comments=True))]


def rewrite(text: str, table: dict[str, str], where: str) -> str:
    for old, new in table.items():
        assert text.count(old) == 1, f"{where}: expected {old!r} once (update the test's table)"
        text = text.replace(old, new)
    return text


# ----------------------------------------------------------------------- user files
SPECIES = [  # recorded in the sample at the places below
    "Vireo olivaceus", "Setophaga fusca", "Setophaga virens", "Setophaga caerulescens",
    "Seiurus aurocapilla", "Junco hyemalis", "Turdus migratorius", "Zenaida macroura",
]  # fmt: skip
COMMON = [
    "Red-eyed Vireo", "Blackburnian Warbler", "Black-throated Green Warbler",
    "Black-throated Blue Warbler", "Ovenbird", "Dark-eyed Junco", "American Robin",
    "Mourning Dove",
]  # fmt: skip
CODES = ["reevir1", "bkbwar", "btnwar", "btbwar", "ovenbi1", "daejun", "amerob", "moudov"]


def write_user_files(where: Path, n: int = 120, n_val: int = 300) -> None:
    """The files the docs call the user's own, from records of the sample: a simulated
    classifier's logits (the true class stands out, with noise), its class names, the
    places (and true classes for validation), sites for species lists, an eBird taxonomy."""
    obs = geoprior.load_sample("neon_bird")
    names = obs.species_names
    rows = np.flatnonzero(np.isin(names, SPECIES))
    rng = np.random.default_rng(0)
    rows = rng.choice(rows, n + n_val, replace=False)
    truth = np.array([SPECIES.index(s) for s in names[rows]])
    logits = rng.normal(0.0, 1.0, (rows.size, len(SPECIES))).astype(np.float32)
    logits[np.arange(rows.size), truth] += 2.0
    points = pd.DataFrame(
        {"lat": obs.lat[rows], "lon": obs.lon[rows], "date": obs.date[rows].astype(str)}
    )
    (where / "classes.txt").write_text("\n".join(SPECIES) + "\n")
    np.save(where / "logits.npy", logits[:n])
    points[:n].to_csv(where / "points.csv", index=False)
    np.save(where / "val_logits.npy", logits[n:])
    np.save(where / "val_labels.npy", truth[n:])
    points[n:].to_csv(where / "val_points.csv", index=False)
    pd.DataFrame(
        {"id": ["white-mountains", "santa-rita"], "lat": [44.06, 31.9],
         "lon": [-71.31, -110.8], "date": ["2021-06-14", "2021-05-01"]}
    ).to_csv(where / "sites.csv", index=False)  # fmt: skip
    pd.DataFrame(
        {"TAXON_ORDER": np.arange(1, len(SPECIES) + 1), "CATEGORY": "species",
         "SPECIES_CODE": CODES, "PRIMARY_COM_NAME": COMMON, "SCI_NAME": SPECIES,
         "ORDER1": "Passeriformes", "FAMILY": "", "SPECIES_GROUP": "", "REPORT_AS": ""}
    ).to_csv(where / "eBird_Taxonomy_v2021.csv", index=False)  # fmt: skip


# ----------------------------------------------------------------------------- tests
def test_code_blocks_parsed():
    text = textwrap.dedent(
        """\
        Intro.

        1. Step:

           <!-- not run: installs packages -->
           ```bash
           pip install .
           ```

        ```python
        x = 1
          # indented comment
        ```

        ```
        output
        ```
        """
    )
    blocks = code_blocks(text)
    assert [(b.lang, b.not_run) for b in blocks] == [
        ("bash", "installs packages"), ("python", None), ("", None)
    ]
    assert blocks[0].code == "pip install ."
    assert blocks[1].code == "x = 1\n  # indented comment"
    assert blocks[1].line == 10
    assert shell_commands("geoprior a b \\\n   --c 'd e'  # note\n\ngeoprior f") == [
        ["geoprior", "a", "b", "--c", "d e"], ["geoprior", "f"]
    ]
    with pytest.raises(AssertionError, match="never closed"):
        code_blocks("```python\nx = 1\n")


@pytest.mark.parametrize("doc", DOCS)
def test_doc_blocks_run(doc, tmp_path, monkeypatch):
    blocks = code_blocks((ROOT / doc).read_text(encoding="utf-8"))
    code = [b for b in blocks if b.lang in ("python", "bash")]
    skipped = [b for b in code if b.not_run is not None]
    assert all(b.not_run for b in skipped), f"{doc}: a not-run marker without a reason"
    assert len(skipped) == NOT_RUN[doc], (
        f"{doc}: {len(skipped)} blocks marked not run (lines "
        f"{[b.line for b in skipped]}), expected {NOT_RUN[doc]}"
    )
    run = [b for b in code if b.not_run is None]
    assert run, f"{doc} has no code block to run"
    python = "\n".join(b.code for b in run if b.lang == "python")
    rewrite(python, {**PLACEHOLDERS.get(doc, {}), **FAST_PYTHON.get(doc, {})}, doc)

    monkeypatch.chdir(tmp_path)
    write_user_files(tmp_path)
    namespace = {"__name__": "__docs__"}
    runner = CliRunner()
    for b in run:
        where = f"{doc} line {b.line}"
        if b.lang == "python":
            source = b.code
            for table in (PLACEHOLDERS.get(doc, {}), FAST_PYTHON.get(doc, {})):
                for old, new in table.items():
                    source = source.replace(old, new)
            exec(compile(source, where, "exec"), namespace)
            continue
        commands = shell_commands(b.code)
        assert commands, f"{where}: an empty bash block"
        for args in commands:
            assert args[0] == "geoprior", (
                f"{where}: {shlex.join(args)!r} is not a geoprior command; mark the block "
                "<!-- not run: REASON --> if it cannot run here"
            )
            args = args[1:] + (FAST_CLI if args[1] == "train" else [])
            result = runner.invoke(main, args, catch_exceptions=False)
            assert result.exit_code == 0, (
                f"{where}: geoprior {shlex.join(args)} exited {result.exit_code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
