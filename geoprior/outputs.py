"""Output paths, checked before the work that fills them: one rule for the CLI and the writers.

An output file needs an existing, writable folder and must not name a folder; an output
folder (a saved prior, a column store) replaces only a folder of its own kind; nothing
existing is replaced without ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputExistsError, PathError

__all__ = ["check_output"]


def check_output(
    path: str | os.PathLike, overwrite: bool, *, marker: str | None = None, kind: str = "file"
) -> Path:
    """Refuse an output that must not or cannot be written, before any work is done.

    Args:
        path: the output.
        overwrite: whether an existing output may be replaced.
        marker: for an output that is a folder, the file that marks one of its kind (e.g.
            a saved prior's header): an existing folder is replaced only when it holds it.
            ``None``: the output is a file.
        kind: what the output is, for messages (``"saved prior"``, ``"column store"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False, or it exists and is
            not a ``kind`` (a file where a folder is written, a folder without ``marker``).
        PathError: a file output names a folder; its folder does not exist, is a file, or
            is not writable.

    Example:
        >>> check_output("reranked.csv", overwrite=False)  # doctest: +SKIP
        PosixPath('reranked.csv')
    """
    path = Path(os.fspath(path)).expanduser()
    if marker is None and path.is_dir():
        raise PathError(
            f"{path} is a folder; give the name of a file to write, e.g. "
            f"{path / ('out' + (path.suffix or '.csv'))}"
        )
    if path.exists():
        if not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        if marker is not None and not (path / marker).is_file():
            raise OutputExistsError(
                f"{path} exists and is not a {kind}; refusing to replace it (choose another name)"
            )
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise PathError(f"cannot write {path}: the folder {parent} {what}; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"cannot write {path}: no permission to write in the folder {parent}")
    return path
