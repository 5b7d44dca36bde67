"""Larger-than-memory training data: observation files converted once to memory-mapped columns.

:func:`convert_to_columns` (:mod:`~geoprior.columnstore.convert`) streams and shuffles
observation files into a store folder; :class:`ColumnStore`
(:mod:`~geoprior.columnstore.store`) opens it with ``np.load(mmap_mode="r")``.
"""

from .convert import STREAMED, convert_to_columns
from .store import FORMAT, FORMAT_VERSION, MANIFEST, ColumnStore

__all__ = ["ColumnStore", "convert_to_columns", "FORMAT", "FORMAT_VERSION", "MANIFEST", "STREAMED"]
