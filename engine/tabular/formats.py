"""What a data file is: its format (magic bytes, extension, content), encoding, delimiter, text mode,
and the limits every reader keeps. Nothing here reads more than the head of a file."""

from __future__ import annotations

import codecs
import gzip
import zlib
from pathlib import Path

from engine.errors import ValidationError

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "text", "xlsx")
MAX_COLUMNS = 10_000
MAX_LINE_BYTES = 32 << 20
HEAD_BYTES = 4 << 20          # the first bytes read to sniff the format and parse the header
BLOCK_BYTES = 16 << 20        # pyarrow CSV block; one CSV row must fit in it
HEAD_BLOCK_BYTES = 1 << 20    # the block for the first rows only (the threaded reader reads blocks ahead)
DEFAULT_CHUNK_ROWS = 200_000
SNIFF_BYTES = 8192

_EXT = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".text": "text", ".md": "text",
    ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xlsx", ".ods": "xlsx",
}
EXTENSIONS = _EXT   # file extension -> format, the one list every room reads (uploads, pickers, fixes)
# What a page's file uploader accepts (Streamlit's ``type=``, no dots): every readable extension, and its gzip.
UPLOAD_TYPES = tuple(dict.fromkeys(ext[1:] for ext in EXTENSIONS)) + ("gz",)


def split_ext(path: Path) -> tuple[str, str, bool]:
    """(stem, format extension, gzipped) of a file name: ``data.csv.gz`` -> ("data", ".csv", True)."""
    name = path.name
    gz = name.lower().endswith(".gz")
    if gz:
        name = name[:-3]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, "", gz
    return stem, "." + ext.lower(), gz





def looks_binary(head: bytes) -> bool:
    sample = head[:SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control / len(sample) > 0.1


def read_head(path: Path, gz: bool, name: str) -> bytes:
    try:
        with open(path, "rb") as f:
            if not gz:
                return f.read(HEAD_BYTES)
            with gzip.GzipFile(fileobj=f) as g:
                return g.read(HEAD_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValidationError(f"{name}: the gzip stream is corrupt or truncated ({exc})") from None


def _check_utf8_head(name: str, head: bytes, complete: bool) -> None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"{name} is not valid UTF-8: byte 0x{head[exc.start]:02x} at line {line} (byte offset {exc.start}); "
            "re-save the file as UTF-8") from None


LEGACY_FALLBACK = "cp1252"   # Windows' Western code page: what Excel on Windows writes a "CSV" in


_TYPOGRAPHY = set("\u201c\u201d\u2018\u2019\u201e\u2013\u2014\u20ac\u2026\u2022\u00b0\u00a3\u00a9\u00ae\u2122"
                  "\u00ab\u00bb\u00b7\u00d7\u00f7\u00a7\u00b6\u00a0\u00bd\u00bc\u00be\u00b2\u00b3\u00b5\u2020\u00a2\u00a5")


def _western(sample: bytes) -> bool:
    """Whether ``sample`` reads as Western European text in Windows-1252: it decodes, its non-ASCII
    characters are letters (é, ß, ñ...) or typography (quotes, dashes, €, °), and accented letters are
    a minority of the letters. Cyrillic or Greek code pages read as cp1252 give words of non-ASCII
    letters only; Central European ones give symbols inside words (``Za¿ó³æ``): neither passes."""
    import unicodedata

    try:
        text = sample.decode(LEGACY_FALLBACK)
    except UnicodeDecodeError:
        return False
    high = [ch for ch in text if ord(ch) > 127]
    if not high:
        return False
    letters = sum(1 for ch in text if ch.isalpha())
    high_letters = sum(1 for ch in high if unicodedata.category(ch).startswith("L"))
    odd = len(high) - high_letters - sum(1 for ch in high if ch in _TYPOGRAPHY)
    return odd <= 0.02 * len(high) and high_letters <= 0.3 * max(1, letters)


def detect_encoding(name: str, head: bytes, complete: bool) -> str:
    """``"utf-8"`` when the start of the file is UTF-8 (or ASCII), else the legacy encoding that
    fits: Windows-1252 when the text reads as Western European in it (:func:`_western`; what Excel on
    a Western Windows writes, and what ``charset-normalizer`` often misnames cp1250, cp775 or
    mac-latin2 from a few accented words), else the code pages ``charset-normalizer`` ranks cleanest
    (cp1250, cp1251, Shift-JIS, GBK...), each checked by decoding the whole head with it. A head that
    is mostly UTF-8 with a few broken bytes, or that no legacy encoding decodes, keeps the UTF-8 error
    (line and byte offset)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    text = head.decode("utf-8", errors="replace")
    if sum(1 for ch in text if 127 < ord(ch) != 0xFFFD) > text.count("\ufffd"):
        _check_utf8_head(name, head, complete)  # mostly UTF-8 with a few broken bytes: say where they are
    sample = head[: 1 << 20]
    candidates = [LEGACY_FALLBACK] if _western(sample) else [m.encoding for m in from_bytes(sample)]
    for enc in (*candidates, LEGACY_FALLBACK):
        if enc.replace("-", "_").lower() in ("utf_8", "utf8", "ascii", "utf_16", "utf_32"):
            continue
        try:
            codecs.getincrementaldecoder(enc)().decode(head, final=complete)
        except (UnicodeDecodeError, LookupError):
            continue
        return codecs.lookup(enc).name
    _check_utf8_head(name, head, complete)
    return "utf-8"  # pragma: no cover - _check_utf8_head raised


def detect_format(path: Path, head: bytes) -> str:
    """The format from the extension, corrected by the content (magic bytes, first character)."""
    _, ext, _ = split_ext(path)
    if head[:4] == b"PAR1":
        return "parquet"
    fmt = _EXT.get(ext)
    if fmt == "xlsx" or head[:4] in (b"PK\x03\x04", b"\xd0\xcf\x11\xe0"):
        return "xlsx"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if fmt == "json" and text[:1] == b"{":
        return "jsonl"
    if fmt is not None:
        return fmt
    if text[:1] == b"{":
        return "jsonl"
    if text[:1] == b"[":
        return "json"
    first = text.split(b"\n", 1)[0]
    for sep, f in ((b"\t", "tsv"), (b",", "csv")):
        if first.count(sep) >= 1:
            lines = [ln for ln in text.split(b"\n")[:20] if ln.strip()]
            counts = {ln.count(sep) for ln in lines[:-1] or lines}
            if len(counts) == 1:
                return f
    return "text"


def sniff_delimiter(fmt: str, first_line: str) -> str:
    if fmt == "tsv":
        return "\t"
    if "," in first_line:
        return ","
    counts = {d: first_line.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, n in enumerate(names):
        n = n.strip() or f"unnamed_{i}"
        base, k = n, seen.get(n, 0)
        while n in seen:
            k += 1
            n = f"{base}.{k}"
        seen[base] = k
        seen[n] = 0
        out.append(n)
    return out


def text_mode(sample: str) -> str:
    """'block' when blank lines separate multi-line blocks, else 'line'."""
    lines = sample.splitlines()[:-1] or sample.splitlines()
    blank = [not ln.strip() for ln in lines]
    has_blank = any(blank)
    multi = any(not a and not b for a, b in zip(blank, blank[1:]))
    return "block" if has_blank and multi else "line"
