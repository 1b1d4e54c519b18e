"""The one file reader of Preflight: data files as chunks of rows, shared by the rooms that read
user data (the data checks, the model lab). It sits below them and imports no other room (only
``engine.errors`` and ``engine.units``), so a room depends on it and never on another room's reader.

Modules, one concept each: ``formats`` (what a file is: format, encoding, delimiter, limits),
``lines`` (numbered, capped, decoded line streams), one module per format (``csv_format``,
``json_format``, ``parquet_format``, ``text_format``, ``excel_format``) and ``dataset`` (the
:class:`Dataset` that mixes them in, and :func:`open_dataset`). See ``dataset``'s docstring for what
is read and every error a bad file gets.
"""

from engine.tabular.dataset import Dataset, read_frame
from engine.tabular.excel_format import sheet_names
from engine.tabular.formats import (
    DEFAULT_CHUNK_ROWS, EXTENSIONS, FORMATS, MAX_COLUMNS, MAX_LINE_BYTES, detect_format, split_ext,
)
from engine.tabular.lines import encoding_label
from engine.tabular.shards import ShardedDataset, is_sharded, list_shards, open_dataset, open_shards, shard_rows

__all__ = ["Dataset", "open_dataset", "read_frame", "sheet_names", "DEFAULT_CHUNK_ROWS", "EXTENSIONS", "FORMATS",
           "MAX_COLUMNS", "MAX_LINE_BYTES", "detect_format", "split_ext", "encoding_label",
           "ShardedDataset", "is_sharded", "list_shards", "open_shards", "shard_rows"]
