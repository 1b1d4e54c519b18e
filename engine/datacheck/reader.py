"""The data checks read files through :mod:`engine.tabular`, the reader shared with the model lab.
This module keeps the names the data checks have always imported from here."""

from engine.tabular import (  # noqa: F401 - re-exported
    DEFAULT_CHUNK_ROWS, EXTENSIONS, FORMATS, MAX_COLUMNS, Dataset, detect_format, open_dataset,
    sheet_names, split_ext,
)

_EXT = EXTENSIONS
