"""``geoprior species``: the species a prior knows."""

from __future__ import annotations

import click

from .options import Command, prior_argument


@click.command(cls=Command)
@prior_argument
@click.option("--match", default=None, help="Only names containing this text (case-insensitive).")
def species(prior, match):
    """List the species a prior knows; with --match, those whose name contains TEXT (none is
    an unknown species, exit 1, with close matches suggested)."""
    from ..errors import UnknownSpeciesError, suggest
    from ..persistence import load_prior

    names = load_prior(prior).species
    shown = [n for n in names if match is None or match.lower() in n.lower()]
    if match is not None and not shown:
        raise UnknownSpeciesError(
            f"no species matches {match!r} (the prior knows {len(names)} species)."
            + suggest(match, names)
        )
    click.echo("\n".join(shown))
