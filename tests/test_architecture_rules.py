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


def _from_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from module import name`` in a file, absolute modules only."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 for alias in node.names]


def _room(dotted: str) -> str:
    """engine.lab.cli -> engine.lab; engine.cli -> engine.cli; views.lab -> views."""
    parts = dotted.split(".")
    return ".".join(parts[:2]) if parts[0] == "engine" else parts[0]


def test_no_room_imports_another_rooms_private_names():
    """Rooms talk through public names: ``from engine.cli import _int`` in engine/lab reaches into a room."""
    offenders = []
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "views").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        here = _room(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module, name in _from_imports(path):
            if (module.startswith(("engine", "ui", "views")) and _room(module) != here
                    and name.startswith("_") and not name.startswith("__")):
                offenders.append(f"{path.relative_to(ROOT)}: from {module} import {name}")
    assert not offenders, offenders


def test_lower_layers_never_import_higher_ones():
    """Reference data (catalog), units and errors sit at the bottom: they import no other engine room."""
    allowed = {"engine.catalog": {"engine.errors", "engine.units"}, "engine.units": {"engine.errors"},
               "engine.errors": set()}
    for package, ok in allowed.items():
        base = ROOT / Path(*package.split("."))
        paths = list(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
        for path in paths:
            for module, _ in _from_imports(path):
                if module.startswith("engine") and not module.startswith(package):
                    assert module in ok, f"{path.relative_to(ROOT)} (a lower layer) imports {module}"
