"""Where Preflight keeps what users make: uploaded datasets, training runs and the run registry.

One directory, ``$PREFLIGHT_HOME`` (default ``.preflight`` in the current directory), so a deployment
mounts one volume and a test points it at a temporary folder::

    $PREFLIGHT_HOME/
      uploads/<name>          datasets uploaded on the data-checks page (reused by the model lab)
      runs/<run name>/        one directory per training run (config, checkpoints, logs)
      models/<name>.json      model architectures saved by name (an imported Hugging Face config.json)
      registry.sqlite         the run registry (status, metrics, errors)

Names that come from users (an uploaded file's name, a run name) go through :func:`safe_name`, so
no name can climb out of its folder or hide as a dotfile.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from engine.errors import ValidationError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100


def home() -> Path:
    """The workspace root, created on first use."""
    root = Path(os.environ.get("PREFLIGHT_HOME") or ".preflight").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def uploads_dir() -> Path:
    path = home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """``models/``: imported config.json files saved by name (<name>.json, engine/estimate/models.py) and local
    Hugging Face model folders the lab and the inference room offer (engine/lab/hf_model.py)."""
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_model_file(name: str, data: bytes) -> Path:
    """Write ``models/<name>.json`` atomically (``name`` through safe_name); replaces one of that name."""
    from engine.access import require_write

    require_write("saving models")
    path = models_dir() / f"{safe_name(name, 'model name')}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def registry_path() -> Path:
    return home() / "registry.sqlite"


def safe_name(name: str, what: str = "name") -> str:
    """``name`` reduced to letters, digits, '.', '_' and '-' (no separators, no leading dot, at most
    100 characters); a ValidationError when nothing usable is left ('..', '/', '')."""
    if not isinstance(name, str):
        raise ValidationError(f"{what} must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("-", text).strip(".-_")[:MAX_NAME].strip(".-_")
    if not text:
        raise ValidationError(f"{what} {name[:40]!r} has no usable characters (letters, digits, '.', '_', '-')")
    return text


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file in ``uploads/`` under its sanitized name (a later upload of the same
    name replaces it), written atomically; the model lab lists these files for reuse."""
    import os

    from engine.access import require_write

    require_write("uploading files")
    path = uploads_dir() / safe_name(name, "file name")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path  # the same upload again (every page rerun sees it): keep the file and its mtime
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def list_uploads() -> list[Path]:
    """Uploaded files, newest first."""
    files = [p for p in uploads_dir().iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)
