"""What the commands share: the error handling of the group and of each command, the
options and arguments several commands take (``PRIOR``, ``-o/--output``, ``--on-invalid``,
``--encoding``, ``--overwrite``, ``--quiet``), reading observations (a file, a column store or
an embedded sample), ``--set key=value`` pairs and the ``--threshold`` of range maps."""

from __future__ import annotations

import codecs
import errno
import json
import os
import warnings
from pathlib import Path

import click

from ..errors import FileEncodingError, GeopriorError, PathError

__all__ = [
    "SAMPLE_PREFIX",
    "Command",
    "Group",
    "encoding_option",
    "format_option",
    "load_observations",
    "on_invalid_option",
    "output_option",
    "overwrite_option",
    "parse_set",
    "prior_argument",
    "quiet_option",
    "table_output",
    "threshold_option",
]

SAMPLE_PREFIX = "sample:"

# what to do about an OSError on a path the user gave
PATH_HINTS = {
    errno.ENOENT: "check the path (an output's folder must exist)",
    errno.ENOTDIR: "check the path: a part of it is a file, not a folder",
    errno.EISDIR: "it is a folder: give a file name",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOSPC: "free some space or write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter name",
}


class Command(click.Command):
    """A command whose OSError about one of its own path arguments (no permission, a
    folder where a file belongs, a missing folder) becomes a one-line PathError. Any
    other exception, an OSError about some other path included, keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GeopriorError:
            raise
        except OSError as e:
            given = user_path(e, ctx.params)
            if given is None:
                raise
            same = os.path.abspath(given) == os.path.abspath(e.filename)
            where = "" if same else f" ({e.filename})"
            raise PathError(f"{given}: {e.strerror}{where}; {PATH_HINTS[e.errno]}") from e


def user_path(e: OSError, params: dict) -> str | None:
    """The path argument ``e`` is about: the path itself, a file inside it, or a temporary
    file written beside it; ``None`` when ``e`` is no such error."""
    if e.errno not in PATH_HINTS or not isinstance(e.filename, str | os.PathLike):
        return None
    failed = Path(os.path.abspath(e.filename))
    for value in params.values():
        for given in value if isinstance(value, tuple) else (value,):
            if not isinstance(given, str | os.PathLike):
                continue
            path = Path(os.path.abspath(given))
            if (
                failed == path
                or path in failed.parents
                or (failed.parent == path.parent and failed.name.startswith(f".{path.stem}"))
            ):
                return str(given)
    return None


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``warning: ...`` line on stderr (no file, line or source)."""
    click.echo(f"warning: {message}", err=True)


class Group(click.Group):
    """Turns GeopriorError into exit code 1 with one line on stderr, and each warning into
    one ``warning: ...`` line on stderr."""

    command_class = Command

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = show_warning
                return super().invoke(ctx)
        except GeopriorError as e:
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            message = str(e)
            if isinstance(e, FileEncodingError):
                message = message.rstrip(".") + " (CLI: --encoding)"
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


def check_encoding(ctx, param, value: str | None) -> str | None:
    if value is not None:
        try:
            codecs.lookup(value)
        except LookupError:
            raise click.BadParameter(
                f"unknown encoding {value!r}; e.g. utf-8, latin-1, cp1252"
            ) from None
    return value


encoding_option = click.option(
    "--encoding",
    default=None,
    callback=check_encoding,
    help="Text encoding of the input files, e.g. latin-1 or cp1252 (default UTF-8; a "
    "Darwin Core Archive's meta.xml gives its own).",
)

prior_argument = click.argument("prior", type=click.Path(exists=True, path_type=Path))

on_invalid_option = click.option(
    "--on-invalid", type=click.Choice(["raise", "drop"]), default="raise", show_default=True
)

overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")

quiet_option = click.option("--quiet", is_flag=True, help="No progress bar.")


def output_option(what: str, *, required: bool = True, stdout: bool = False):
    """The ``-o/--output`` path; ``what`` is its help text (what the command writes);
    ``stdout``: ``-`` writes to standard output (see :func:`geoprior.outputs.check_output`)."""
    if stdout:
        what += " '-' writes to standard output."
    return click.option(
        "-o", "--output", required=required, type=click.Path(path_type=Path), help=what
    )


def format_option(default: str = "table"):
    """``--format``: how a table printed to standard output looks; a file's suffix gives its
    own format."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "tsv", "json"]),
        default=None,
        help=f"How to print to standard output (default {default}); with -o FILE the suffix "
        "decides (.csv, .tsv, .json, .parquet).",
    )


def table_output(output: Path | None, fmt: str | None, overwrite: bool, default: str = "table"):
    """The output (``-`` when none is given) and its table format, checked before any work:
    ``--format`` must agree with a file's suffix (a usage error otherwise)."""
    from ..errors import FormatError
    from ..outputs import STDOUT, check_output, is_stdout, table_format

    output = Path(STDOUT) if output is None else output
    if is_stdout(output):
        fmt = table_format(output, fmt or default)
    else:
        try:
            fmt = table_format(output, fmt)
        except FormatError as e:
            if fmt is None:
                raise
            raise click.UsageError(str(e)) from None
    check_output(output, overwrite, stdout=True)
    return output, fmt


def load_observations(
    source: str, fmt: str = "auto", on_invalid: str = "raise", encoding: str | None = None
):
    """``sample:NAME`` loads an embedded sample; a folder written by ``geoprior convert``
    opens as a memory-mapped ColumnStore; anything else goes to read_observations."""
    if source.startswith(SAMPLE_PREFIX):
        from ..io.samples import load_sample

        return load_sample(source[len(SAMPLE_PREFIX) :])
    if (Path(source) / "manifest.json").is_file():
        from ..columnstore import ColumnStore

        return ColumnStore.open(source)
    from ..io import read_observations

    return read_observations(source, format=fmt, on_invalid=on_invalid, encoding=encoding)


def parse_set(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, true, null)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.UsageError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out



def threshold_option(value: str | None):
    """``--threshold``: a probability, ``lpt`` or ``f1`` (None: the prior's stored ones)."""
    if value is None or value.lower() in ("lpt", "f1"):
        return None if value is None else value.lower()
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a probability, 'lpt' or 'f1', got {value!r}", param_hint="--threshold"
        ) from None
