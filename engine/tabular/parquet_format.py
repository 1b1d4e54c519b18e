"""Parquet: row groups streamed with ``iter_batches``, native types kept (nested values as JSON text,
decimals as floats, binary as hex); a gzipped Parquet file is decompressed to a temporary copy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pandas as pd

from engine.errors import ValidationError


class ParquetReading:
    """The Parquet part of :class:`engine.tabular.dataset.Dataset` (a mixin: ``self`` is the Dataset)."""

    def _parquet_file(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if self.compressed:
                tmp = _decompressed_copy(self)
                return pq.ParquetFile(tmp)
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{self.name}: not a readable Parquet file ({str(exc).splitlines()[0][:160]})") from None

    def _parquet_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        pf = self._parquet_file()
        start = 0
        total = max(1, pf.metadata.num_rows)
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows):
                frame = _arrow_to_frame(pa.Table.from_batches([batch]))
                frame.columns = self.columns
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                self._read = int(self.size_bytes * start / total)
                yield frame
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{self.name}: Parquet file is corrupt near row {start} ({str(exc)[:160]})") from None


def _arrow_to_frame(table) -> pd.DataFrame:
    """Parquet columns as pandas, nested values as JSON text and decimals as floats (hashable, typed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols, names = [], []
    for i, col in enumerate(table.columns):
        t = col.type
        if pa.types.is_nested(t):
            col = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in col.to_pylist()],
                           pa.string())
        elif pa.types.is_decimal(t):
            col = pc.cast(col, pa.float64())
        elif pa.types.is_dictionary(t):
            col = pc.cast(col, t.value_type)
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            col = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
        elif pa.types.is_null(t):
            col = pa.nulls(len(col), pa.string())
        cols.append(col)
        names.append(f"_{i}")
    return pa.table(cols, names=names).to_pandas()


def _decompressed_copy(ds) -> str:
    import tempfile

    tmp = tempfile.NamedTemporaryFile(prefix="preflight-", suffix=".parquet", delete=False)  # noqa: SIM115 - closed by the with below
    with tmp, ds._open() as src:
        while True:
            buf = src.read(1 << 20)
            if not buf:
                break
            tmp.write(buf)
    import atexit

    atexit.register(lambda p=tmp.name: os.path.exists(p) and os.unlink(p))
    return tmp.name
