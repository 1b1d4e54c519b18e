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

    for name, key in (("gpus", "gpu"), ("models", "model"), ("defaults", "default"), ("apis", "offer")):
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


def _engine_module_graph() -> dict[str, set[str]]:
    """engine module -> the engine modules it imports (any import in the file, lazy ones in functions
    too: a cycle through a lazy import is still a cycle in the design; ``if TYPE_CHECKING:`` blocks
    are left out, they never run). ``from pkg import name`` counts as an import of ``pkg.name`` when
    that is a module, else of ``pkg``."""
    modules: dict[str, Path] = {}
    for path in (ROOT / "engine").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("engine"):
                    deps.add(t)
        graph[name] = deps
    return graph


def test_no_import_cycle_within_engine():
    """No engine module, and no ui helper, reaches itself through imports (a package's own ``__init__`` that
    lists its submodules is not a cycle: the edges from a package to its children are left out)."""
    graph = _engine_module_graph()
    for path in (ROOT / "ui").glob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        graph[name] = {m for m, _ in _from_imports(path) if m.startswith(("engine", "ui"))}
    for name in graph:
        graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:10])


def test_the_one_reader_sits_below_the_rooms_that_read_files():
    """engine/tabular is shared by the data checks and the lab: it imports no room (only the bottom layer:
    engine.errors, and engine.units for its one byte formatter), and neither room keeps a reader of its own (issue 11 item 15)."""
    for path in (ROOT / "engine" / "tabular").rglob("*.py"):
        for module, _ in _from_imports(path):
            if module.startswith("engine") and not module.startswith("engine.tabular"):
                assert module in ("engine.errors", "engine.units"), f"{path.relative_to(ROOT)} (the shared reader) imports {module}"
    for room in ("engine/datacheck", "engine/lab"):
        for path in (ROOT / room).rglob("*.py"):
            calls = {ast.unparse(n.func) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)}
            assert not {c for c in calls if c.endswith(("open_csv", "read_csv", "ParquetFile", "read_parquet"))}, \
                f"{path.relative_to(ROOT)} reads files itself; use engine.tabular.open_dataset"


# The floors of the house, ground first (docs/ARCHITECTURE.md's rooms): a room imports only rooms on floors
# below its own. Every engine room, ui and views stand on one; a new room is placed here on purpose.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("engine", "engine.errors"),                      # the package's face (its version) and the one error type
    ("engine.units",),                                # quantities and byte/count formatting
    ("engine.catalog", "engine.access", "engine.requires", "engine.tabular"),
    ("engine.money", "engine.workspace"),
    ("engine.store", "engine.cliargs", "engine.charts"),
    ("engine.artifacts", "engine.jobs"),              # the workspace's artifacts read one way; the job runner
    ("engine.estimate",),
    ("engine.datacheck",),
    ("engine.lab",),
    ("engine.infer",),
    ("engine.readiness",),
    ("engine.cli",),
    ("engine.__main__",),                             # python -m engine
    ("ui",),
    ("views",),
)


def test_no_room_imports_one_on_a_floor_above_it():
    """Arrows run down only: e.g. the estimator reads a calibration through engine.artifacts, never through
    readiness; the lab's CLI never hands a command to the inference room (infer adds --serve to it)."""
    floor = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}
    graph = _engine_module_graph()
    for path in [*(ROOT / "views").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        graph[name] = {m for m, _ in _from_imports(path) if m.startswith(("engine", "ui", "views"))}
    unplaced = sorted({_room(m) for m in graph} - set(floor))
    assert not unplaced, f"rooms on no floor (place them in FLOORS): {unplaced}"
    upward = []
    for module, deps in graph.items():
        here = _room(module)
        for dep in deps:
            there = _room(dep)
            if there != here and floor.get(there, -1) >= floor[here]:
                upward.append(f"{module} (floor {floor[here]}) imports {dep} (floor {floor.get(there)})")
    assert not upward, "imports that run back up: " + "; ".join(sorted(upward))

def test_pages_take_the_readers_upload_types():
    """One list of upload types (engine.tabular.formats.UPLOAD_TYPES): every extension the reader reads, and
    gzip; no page types out its own."""
    from engine.tabular.formats import EXTENSIONS, UPLOAD_TYPES

    assert {f".{t}" for t in UPLOAD_TYPES} == set(EXTENSIONS) | {".gz"}
    for path in (ROOT / "views").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "type" and isinstance(node.value, (ast.List, ast.Tuple)):
                raise AssertionError(f"{path.relative_to(ROOT)} lists its own upload types; use UPLOAD_TYPES")
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "UPLOAD_TYPES" for t in node.targets):
                raise AssertionError(f"{path.relative_to(ROOT)} defines its own UPLOAD_TYPES")


MAX_FUNCTION_LINES = 120
MAX_FILE_LINES = 600


def test_no_engine_function_or_file_is_too_long_to_read():
    """House rule: no engine function over 120 lines (a trainer loop read in one sitting) and no engine file
    over 600 (issue 17 item 4)."""
    long_files, long_functions = [], []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text, filename=name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not long_files, f"engine files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"engine functions over {MAX_FUNCTION_LINES} lines: {long_functions}"
