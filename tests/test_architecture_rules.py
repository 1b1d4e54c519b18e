"""House rules that keep the architecture true (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_streamlit_or_ui():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
                 if _imports(p) & {"streamlit", "ui", "views"}]
    assert not offenders, f"engine modules importing UI code: {offenders}"


def test_every_view_is_registered_and_every_registered_view_exists():
    from ui.navigation import PAGES

    registered = {p.path for p in PAGES}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "views").glob("*.py")}
    assert registered == on_disk
    assert len({p.url_path for p in PAGES}) == len(PAGES), "url paths must be unique"


def test_catalog_rows_carry_source_and_date():
    import tomllib

    for name, key in (("gpus", "gpu"), ("models", "model"), ("defaults", "default")):
        data = tomllib.loads((ROOT / "engine" / "catalog" / f"{name}.toml").read_text())
        assert data["version"] and data["schema"] == 1
        for row in data[key]:
            assert row.get("source"), f"{name}: row without source: {row}"
            assert len(row.get("date", "")) == 10, f"{name}: row without ISO date: {row}"
