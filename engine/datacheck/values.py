"""Column-value helpers the checks share: what counts as missing, value types, numbers, hashes.

Readers keep CSV, TSV, JSON and text values as the raw strings of the file (pandas ``str`` dtype, missing
JSON values as NA) so that a check can tell ``"unknown"`` in an age column from a number; Parquet
columns keep their native types. These helpers accept both, vectorized (pyarrow compute), and memoize
per chunk: the runner calls :func:`clear_cache` before every chunk, so two checks that need the same
column's numbers parse them once. A string column that repeats its values is dictionary-encoded once
per chunk (:func:`encoded`) and every per-value result is computed on its distinct values only.

Missing means: NA/null, or a string that is empty or whitespace only, or (case-insensitive, trimmed)
one of :data:`MISSING_TOKENS` -- the spellings pandas, R and spreadsheets write for "no value".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.datacheck.masking import mask_text

MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none")
BOOL_TOKENS = ("true", "false", "yes", "no")
TYPES = ("int", "float", "bool", "date", "string")  # value types; "missing" is counted apart

_INT = r"^[+-]?\d+$"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$"
_DATE = (
    r"^(\d{4}-\d{1,2}-\d{1,2}([t ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})$"
)
_MISSING = pa.array(MISSING_TOKENS)
_BOOLS = pa.array(BOOL_TOKENS)

_cache: dict[tuple, Any] = {}


def clear_cache() -> None:
    """Forget memoized per-chunk results (the runner calls this before every chunk)."""
    _cache.clear()


def _memo(series: pd.Series, kind: str, fn):
    key = (id(series.array), kind)
    hit = _cache.get(key)
    if hit is None or hit[0] is not series.array:
        hit = (series.array, fn(series))
        _cache[key] = hit
    return hit[1]


def is_textual(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype)
                or isinstance(series.dtype, pd.DatetimeTZDtype))


def to_arrow_str(series: pd.Series) -> pa.Array:
    """The column as a pyarrow string array (zero-copy for the readers' ``str`` columns)."""
    arr = series.array
    if isinstance(arr, pd.arrays.ArrowStringArray):
        data = arr._pa_array  # zero-copy access, falls back below if it ever moves
        if isinstance(data, pa.ChunkedArray):
            return data.chunk(0) if data.num_chunks == 1 else _memo(series, "arrow", lambda s: data.combine_chunks())
        return data
    if series.dtype == object:
        return pa.array([None if _isna(v) else str(v) for v in series.tolist()], type=pa.string())
    return pa.array(series.astype("str"), type=pa.string()) if len(series) else pa.array([], pa.string())


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA


def _norm(arr: pa.Array) -> pa.Array:
    return pc.utf8_lower(pc.utf8_trim_whitespace(arr))


def normalized(series: pd.Series) -> pa.Array:
    """Trimmed, lower-cased strings (memoized per chunk)."""
    return _memo(series, "norm", lambda s: _norm(to_arrow_str(s)))


class Encoded:
    """A string column as its distinct values (``dictionary``) and, per row, an index into them.

    Every per-value function (missing, type, number, hash, prefilter) is computed once per distinct
    value and gathered with ``indices``: the same result as per row, at a fraction of the cost when
    a column repeats its values (categories, dates, small integers)."""

    __slots__ = ("dictionary", "indices", "_norm", "_miss")

    def __init__(self, dictionary: pa.Array, indices: np.ndarray) -> None:
        self.dictionary, self.indices = dictionary, indices
        self._norm: pa.Array | None = None
        self._miss: np.ndarray | None = None

    @property
    def norm(self) -> pa.Array:
        if self._norm is None:
            self._norm = _norm(self.dictionary)
        return self._norm

    @property
    def miss(self) -> np.ndarray:
        if self._miss is None:
            self._miss = _missing_of(self.norm)
        return self._miss


_SAMPLE = 16384
_ENCODE_SHARE = 0.75    # encode when at most this share of the first values are distinct


def encoded(series: pd.Series) -> Encoded | None:
    """The column dictionary-encoded (memoized per chunk), or None when it is not a pyarrow-backed
    string column or more than 75% of its first 16,384 values are distinct (ids, prices: encoding
    would not pay)."""
    def compute(s: pd.Series) -> Encoded | None:
        if not isinstance(s.array, pd.arrays.ArrowStringArray) or not len(s):
            return None
        arr = to_arrow_str(s)
        head = arr.slice(0, _SAMPLE)
        if pc.count_distinct(head, mode="all").as_py() > _ENCODE_SHARE * len(head):
            return None
        enc = pc.dictionary_encode(arr, null_encoding="encode")
        return Encoded(enc.dictionary, enc.indices.to_numpy(zero_copy_only=False))
    return _memo(series, "encoded", compute)


def _missing_of(t: pa.Array) -> np.ndarray:
    """Missing per value of a normalized string array."""
    m = pc.or_kleene(pc.is_null(t), pc.is_in(t, value_set=_MISSING))
    return pc.fill_null(m, True).to_numpy(zero_copy_only=False)


def missing_mask(series: pd.Series) -> np.ndarray:
    """True where a value is missing (see module docstring)."""
    def compute(s: pd.Series) -> np.ndarray:
        if not is_textual(s):
            return s.isna().to_numpy()
        enc = encoded(s)
        if enc is not None:
            return enc.miss[enc.indices]
        return _missing_of(normalized(s))
    return _memo(series, "missing", compute)


def blank_mask(series: pd.Series) -> np.ndarray:
    """True where a text is NA, empty or whitespace only (what the safe fix drops as an empty text)."""
    t = pc.utf8_trim_whitespace(to_arrow_str(series))
    return pc.fill_null(pc.equal(t, ""), True).to_numpy(zero_copy_only=False)


def _string_codes(t: pa.Array, miss: np.ndarray) -> np.ndarray:
    """Type codes (see :func:`type_codes`) of a normalized string array with its missing mask."""
    code = np.full(len(t), TYPES.index("string"), np.int8)
    num = pc.fill_null(pc.match_substring_regex(t, _NUMBER), False).to_numpy(zero_copy_only=False)
    if num.any():
        frac = pc.fill_null(pc.or_(pc.match_substring(t, "."), pc.match_substring(t, "e")), False)
        frac = frac.to_numpy(zero_copy_only=False)
        code[num] = np.where(frac[num], TYPES.index("float"), TYPES.index("int"))
    rest = ~num & ~miss
    if rest.any():
        boo = pc.fill_null(pc.is_in(t, value_set=_BOOLS), False).to_numpy(zero_copy_only=False)
        code[rest & boo] = TYPES.index("bool")
        may_date = rest & ~boo
        if may_date.any():
            dat = pc.fill_null(pc.match_substring_regex(t, _DATE), False).to_numpy(zero_copy_only=False)
            code[may_date & dat] = TYPES.index("date")
    code[miss] = -1
    return code


def type_codes(series: pd.Series) -> np.ndarray:
    """Per value: index into :data:`TYPES`, or -1 when missing (int8)."""
    def compute(s: pd.Series) -> np.ndarray:
        n = len(s)
        if pd.api.types.is_bool_dtype(s.dtype):
            code = np.full(n, TYPES.index("bool"), np.int8)
        elif pd.api.types.is_integer_dtype(s.dtype):
            code = np.full(n, TYPES.index("int"), np.int8)
        elif pd.api.types.is_float_dtype(s.dtype):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            whole = np.isfinite(vals) & (np.mod(vals, 1) == 0)
            code = np.where(whole, TYPES.index("int"), TYPES.index("float")).astype(np.int8)
        elif not is_textual(s):
            code = np.full(n, TYPES.index("date"), np.int8)
        else:
            enc = encoded(s)
            if enc is not None:
                return _encoded_codes(enc)[enc.indices]
            return _string_codes(normalized(s), missing_mask(s))
        code[missing_mask(s)] = -1
        return code
    return _memo(series, "types", compute)


def _encoded_codes(enc: Encoded) -> np.ndarray:
    key = (id(enc), "dict_types")
    hit = _cache.get(key)
    if hit is None or hit[0] is not enc:
        hit = (enc, _string_codes(enc.norm, enc.miss))
        _cache[key] = hit
    return hit[1]


def _string_numbers(t: pa.Array, codes: np.ndarray) -> np.ndarray:
    """float64 per value of a (raw) string array: NaN unless its type code is int or float."""
    isnum = (codes == TYPES.index("int")) | (codes == TYPES.index("float"))
    out = np.full(len(t), np.nan)
    if isnum.any():
        t = pc.utf8_trim_whitespace(t)
        picked = t if isnum.all() else pc.if_else(pa.array(isnum), t, pa.scalar(None, t.type))
        try:
            out = pc.cast(picked, pa.float64()).to_numpy(zero_copy_only=False).astype(float)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = pd.to_numeric(pd.Series(picked.to_pylist()), errors="coerce").to_numpy(dtype=float)
    return out


def numeric(series: pd.Series) -> np.ndarray:
    """Values as float64; NaN where missing or not a number."""
    def compute(s: pd.Series) -> np.ndarray:
        if pd.api.types.is_bool_dtype(s.dtype):
            return np.full(len(s), np.nan)
        if pd.api.types.is_numeric_dtype(s.dtype):
            return s.to_numpy(dtype=float, na_value=np.nan)
        if not is_textual(s):
            return np.full(len(s), np.nan)
        enc = encoded(s)
        if enc is not None:
            return _string_numbers(enc.dictionary, _encoded_codes(enc))[enc.indices]
        return _string_numbers(to_arrow_str(s), type_codes(s))
    return _memo(series, "numeric", compute)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_NULL_HASH = np.uint64(0x6A09E667F3BCC909)
_SHORT = 64          # strings up to this many bytes are hashed by the vectorized path below


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (Steele et al. 2014): a bijection of uint64 with full avalanche."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def _hash_arrow_strings(arr: pa.Array) -> np.ndarray:
    """A 64-bit hash per string of a pyarrow string array, equal exactly when the strings are equal
    (up to collisions); nulls hash apart from every string. Strings of at most 64 bytes are read
    8 bytes at a time straight from the Arrow buffers (length-seeded splitmix64 chain); longer ones
    use pandas' SipHash. Bytes are read little-endian whatever the machine, so hashes are portable."""
    n = len(arr)
    if not n:
        return np.zeros(0, np.uint64)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.large_string())
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], off_type)[arr.offset: arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(0, np.uint8)
    starts, lens = offsets[:-1], np.diff(offsets)
    out = np.empty(n, np.uint64)
    short = lens <= _SHORT
    if short.any():
        rows = np.flatnonzero(short) if not short.all() else None
        s_starts = starts if rows is None else starts[rows]
        s_lens = lens if rows is None else lens[rows]
        words = max(1, int(-(-int(s_lens.max()) // 8)))
        padded = np.concatenate([data, np.zeros(8 * words + 8, np.uint8)])
        # every byte offset read as a little-endian uint64 (an unaligned, overlapping view)
        at = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        h = _mix(s_lens.astype(np.uint64) * _GOLD + np.uint64(0x243F6A8885A308D3))
        for w in range(words):
            word = at[s_starts + 8 * w].astype(np.uint64)
            keep = np.clip(s_lens - 8 * w, 0, 8)          # bytes of this word inside the string
            part = keep < 8
            if part.any():                                # zero the bytes past the string's end
                mask = (np.uint64(1) << (keep[part].astype(np.uint64) * np.uint64(8))) - np.uint64(1)
                word[part] &= mask
            h = _mix(h ^ word)
        if rows is None:
            out[:] = h
        else:
            out[rows] = h
    if not short.all():
        rows = np.flatnonzero(~short)
        longs = pd.Series(arr.take(pa.array(rows)).to_pylist(), dtype=object)
        out[rows] = pd.util.hash_pandas_object(longs, index=False).to_numpy(np.uint64)
    if arr.null_count:
        out[~arr.is_valid().to_numpy(zero_copy_only=False)] = _NULL_HASH
    return out


def column_hashes(series: pd.Series) -> np.ndarray:
    """One 64-bit hash per value of a column (memoized per chunk); equal values, equal hashes.

    pyarrow-backed string columns (what the CSV/JSON readers produce) are hashed from their Arrow
    buffers, once per distinct value when the column repeats values; other dtypes by pandas."""
    def compute(s: pd.Series) -> np.ndarray:
        if isinstance(s.array, pd.arrays.ArrowStringArray):
            enc = encoded(s)
            if enc is not None:
                return _hash_arrow_strings(enc.dictionary)[enc.indices]
            return _hash_arrow_strings(to_arrow_str(s))
        return pd.util.hash_pandas_object(s, index=False).to_numpy(np.uint64)
    return _memo(series, "hash", compute)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row over all columns (collisions: ~n²/2⁶⁵, 3e-8 at a million rows)."""
    if frame.shape[1] == 0:
        return np.zeros(len(frame), np.uint64)
    h = np.full(len(frame), np.uint64(0x13198A2E03707344))
    for i in range(frame.shape[1]):
        h = _mix(h * _GOLD ^ column_hashes(frame.iloc[:, i]))
    return h


def normalized_text(series: pd.Series) -> pa.Array:
    """Lower-cased, whitespace-collapsed, trimmed text (memoized): what "the same input" means."""
    def compute(s: pd.Series) -> pa.Array:
        t = pc.utf8_lower(to_arrow_str(s))
        return pc.utf8_trim_whitespace(_collapse_space(t))
    return _memo(series, "normtext", compute)


def hash_strings(arr: pa.Array) -> np.ndarray:
    """64-bit hashes of a string array (NA hashes as its own value)."""
    return pd.util.hash_pandas_object(pd.Series(arr.to_pandas(types_mapper=pd.ArrowDtype)), index=False).to_numpy(np.uint64) \
        if len(arr) else np.zeros(0, np.uint64)


def text_hashes(series: pd.Series) -> np.ndarray:
    return _memo(series, "texthash", lambda s: hash_strings(normalized_text(s)))


def _collapse_space(t: pa.Array) -> pa.Array:
    """Whitespace runs -> one space. Same result as replacing ``\\s+``, ~10x faster: only runs of two
    or more and single non-space whitespace are rewritten, not every single space."""
    return pc.replace_substring_regex(t, r"\s{2,}|[\t\n\f\r]", " ")


def same_text_hashes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash per cell of its comparison form, blank mask), memoized per chunk. The comparison
    form is NFKC, lower-cased, whitespace runs collapsed, trimmed: what duplicate_text calls "the same
    text" and near_duplicates leaves out as an exact copy. Blank = missing, empty or whitespace only."""
    def compute(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        t = to_arrow_str(s)
        if pc.all(pc.string_is_ascii(t)).as_py() is not False:  # ASCII: NFKC is the identity, 30x faster
            t = pc.ascii_trim_whitespace(_collapse_space(pc.ascii_lower(t)))
        else:
            t = pc.utf8_trim_whitespace(_collapse_space(pc.utf8_lower(pc.utf8_normalize(t, "NFKC"))))
        blank = pc.fill_null(pc.equal(t, ""), True).to_numpy(zero_copy_only=False)
        return hash_strings(t), np.asarray(blank, bool)
    return _memo(series, "sametext", compute)


def input_hashes(chunk: pd.DataFrame, text_col: str | None, label_col: str | None) -> np.ndarray:
    """What a model sees as one input: the normalized text column, else every column but the label."""
    if text_col is not None:
        return text_hashes(chunk[text_col])
    cols = [c for c in chunk.columns if c != label_col]
    return row_hashes(chunk[cols])


def show(value: Any, limit: int = 200) -> Any:
    """A value as an example shows it: PII masked (when the pii check is installed), cut to ``limit``."""
    if _isna(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value)
    text = mask(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask(text: str) -> str:
    """Mask PII with :func:`engine.datacheck.masking.mask_text` (never raises: a report must not break)."""
    try:
        return mask_text(text)
    except Exception:  # noqa: BLE001 - masking must never break a report
        return text


def example_rows(chunk: pd.DataFrame, rows, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Examples ``{"row": i, col: value, ...}`` for the given rows of a chunk (values masked)."""
    cols = columns or list(chunk.columns)
    out = []
    for r in rows:
        rec = {"row": int(r)}
        for c in cols:
            rec[str(c)] = show(chunk.at[r, c])
        out.append(rec)
    return out


class HashIndex:
    """A sorted set of 64-bit keys, each with the first row it was seen on (8 + 8 bytes per key).

    ``add`` returns, per new key, whether an earlier row had it and which: exact-duplicate detection
    over any number of chunks in O(n) memory, vectorized (searchsorted + insert)."""

    def __init__(self) -> None:
        self.keys = np.empty(0, np.uint64)
        self.rows = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, first row or -1) per hash."""
        if not len(self.keys) or not len(hashes):
            return np.zeros(len(hashes), bool), np.full(len(hashes), -1, np.int64)
        i = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        found = self.keys[i] == hashes
        return found, np.where(found, self.rows[i], -1)

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Insert; returns (repeats an earlier row, that earlier row or -1) per input."""
        hashes = np.asarray(hashes, np.uint64)
        rows = np.asarray(rows, np.int64)
        # the first row of each key within this chunk (rows are increasing)
        order = np.argsort(hashes, kind="stable")
        hs = hashes[order]
        found_sorted, first_sorted = self.lookup(hs)   # sorted queries: searchsorted stays in cache
        found = np.empty(len(hs), bool)
        found[order] = found_sorted
        first = np.empty(len(hs), np.int64)
        first[order] = first_sorted
        starts = np.ones(len(hs), bool)
        starts[1:] = hs[1:] != hs[:-1]
        group_first = rows[order][np.maximum.accumulate(np.where(starts, np.arange(len(hs)), 0))]
        within_first = np.empty(len(hs), np.int64)
        within_first[order] = group_first
        within = (within_first != rows) & ~found
        first = np.where(within, within_first, first)
        new = starts & ~found_sorted
        new_keys, new_rows = hs[new], rows[order][new]
        if len(new_keys):
            pos = np.searchsorted(self.keys, new_keys)
            self.keys = np.insert(self.keys, pos, new_keys)
            self.rows = np.insert(self.rows, pos, new_rows)
        return found | within, first


def first_rows(hashes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What :meth:`HashIndex.add` over all of these rows in row order returns, in one call: per input,
    (repeats an earlier row, that earlier row -- the first with its key -- or -1). Any subset holding
    every row of each key it has (one hash bucket of a shuffle) gives its rows the answer the whole
    gives them, so the Dask engine decides exact duplicates per bucket (engine.datacheck.distributed)."""
    hashes = np.asarray(hashes, np.uint64)
    rows = np.asarray(rows, np.int64)
    order = np.lexsort((rows, hashes))
    hs = hashes[order]
    starts = np.ones(len(hs), bool)
    starts[1:] = hs[1:] != hs[:-1]
    group_first = rows[order][np.maximum.accumulate(np.where(starts, np.arange(len(hs)), 0))]
    repeat = np.empty(len(hs), bool)
    repeat[order] = ~starts
    first = np.empty(len(hs), np.int64)
    first[order] = np.where(starts, -1, group_first)
    return repeat, first


class TypeProfile:
    """Per column: how many values of each type (and missing), with the first rows and examples of
    each type. Shared by mixed_types and schema through ``ctx.shared`` (see :func:`type_profile`), so
    a chunk is classified once."""

    def __init__(self, max_rows: int = 1000, max_examples: int = 5) -> None:
        self.counts: dict[str, np.ndarray] = {}      # col -> counts per TYPES, then missing
        self.rows: dict[tuple[str, int], list[np.ndarray]] = {}
        self.kept: dict[tuple[str, int], int] = {}
        self.examples: dict[tuple[str, int], list[tuple[int, Any]]] = {}
        self.native: dict[str, str] = {}             # col -> pandas dtype name when not text
        self.first_row: dict[str, int] = {}          # row where the column first appeared (JSON keys)
        self.rows_seen = 0
        self._last: int | None = None
        self._max_rows, self._max_examples = max_rows, max_examples

    def observe(self, chunk: pd.DataFrame) -> None:
        start = int(chunk.index[0]) if len(chunk) else -1
        if start == self._last:
            return
        self._last = start
        for col in chunk.columns:
            s = chunk[col]
            codes = type_codes(s)
            if col not in self.counts:
                self.counts[col] = np.zeros(len(TYPES) + 1, np.int64)
                self.counts[col][-1] += self.rows_seen   # rows before the key first appeared: missing
                self.first_row[col] = self.rows_seen
                if not is_textual(s):
                    self.native[col] = str(s.dtype)
            counts = np.bincount(codes.astype(np.int64) + 1, minlength=len(TYPES) + 1)
            self.counts[col][: len(TYPES)] += counts[1:]
            self.counts[col][-1] += counts[0]
            for t in np.flatnonzero(counts[1:]):
                key = (col, int(t))
                have = self.kept.get(key, 0)
                if have >= self._max_rows:
                    continue
                idx = np.flatnonzero(codes == t)[: self._max_rows - have]
                self.rows.setdefault(key, []).append(chunk.index.to_numpy()[idx])
                self.kept[key] = have + len(idx)
                ex = self.examples.setdefault(key, [])
                for i in idx[: self._max_examples - len(ex)]:
                    ex.append((int(chunk.index[i]), s.iloc[i]))
        self.rows_seen += len(chunk)

    def type_rows(self, col: str, t: int) -> np.ndarray:
        parts = self.rows.get((col, t))
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def dominant(self, col: str) -> tuple[str, float]:
        """(dominant type, its share of non-missing values); ints and floats together are one
        numeric family ("int" when no value has a fraction); "empty" when nothing is present."""
        c = self.counts[col][: len(TYPES)]
        total = int(c.sum())
        if total == 0:
            return "empty", 0.0
        num = int(c[0] + c[1])
        groups = {"number": num, "bool": int(c[2]), "date": int(c[3]), "string": int(c[4])}
        best = max(groups, key=lambda k: (groups[k], k == "string"))
        share = groups[best] / total
        if best == "number":
            best = "float" if c[1] else "int"
        return best, share

    def fits(self, col: str, kind: str) -> list[int]:
        """Type indices of values that do not fit ``kind`` (numbers fit float; anything fits string)."""
        if kind == "string" or kind == "empty":
            return []
        ok = {"int": {0}, "float": {0, 1}, "bool": {2}, "date": {3}}[kind]
        return [t for t in range(len(TYPES)) if t not in ok and self.counts[col][t] > 0]


def type_profile(ctx) -> TypeProfile:
    """The shared TypeProfile of the current split."""
    from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS

    return ctx.shared.setdefault(f"_types_{ctx.split}", TypeProfile(MAX_ROWS, MAX_EXAMPLES))
