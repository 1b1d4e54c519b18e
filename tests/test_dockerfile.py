"""The Dockerfile, checked without a Docker engine: it parses, runs the README's setup script as a
non-root user, serves on 8501 with a health check, and every file it copies exists and is not
excluded by .dockerignore (a COPY of an ignored path fails `docker build`)."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comment lines inside a continuation are skipped
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def args_of(rest: str) -> list[str]:
    """Arguments of an exec-form (JSON array) or shell-form instruction."""
    if rest.startswith("["):
        return json.loads(rest)
    return shlex.split(rest)


def named(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def copy_sources() -> list[str]:
    sources = []
    for rest in named("COPY"):
        parts = args_of(rest)
        if any(p.startswith("--from") for p in parts):
            continue  # from another stage or image, not the build context
        files = [p for p in parts if not p.startswith("--")]
        assert len(files) >= 2, f"COPY needs a source and a destination: {rest!r}"
        sources += files[:-1]
    return sources


def ignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a path is excluded when it or a parent folder matches a pattern;
    '!' re-includes; the last matching pattern wins."""
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        candidates = [pat, pat.replace("**/", "")] if "**/" in pat else [pat]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


def test_dockerfile_exists_and_parses() -> None:
    assert DOCKERFILE.is_file()
    words = [w for w, _ in instructions()]
    assert words[0] in ("FROM", "ARG"), "a Dockerfile starts with FROM (or ARGs for FROM)"
    assert "FROM" in words
    known = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "USER", "WORKDIR", "EXPOSE", "HEALTHCHECK",
             "CMD", "ENTRYPOINT", "LABEL", "SHELL", "VOLUME", "STOPSIGNAL", "ONBUILD"}
    assert set(words) <= known, f"unknown instructions: {set(words) - known}"


def test_base_is_a_cuda_runtime_image() -> None:
    base = named("FROM")[-1].split()[0]
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+(\.\d+)?-(cudnn-)?runtime-ubuntu\d+\.\d+", base), base


def test_runs_as_non_root_user() -> None:
    seq = instructions()
    users = [(i, rest.split(":")[0].strip()) for i, (w, rest) in enumerate(seq) if w == "USER"]
    assert users, "no USER: the container would run as root"
    last_index, last_user = users[-1]
    assert last_user not in ("root", "0"), f"the final USER is {last_user!r}"
    cmd_index = max(i for i, (w, _) in enumerate(seq) if w in ("CMD", "ENTRYPOINT"))
    assert last_index < cmd_index, "USER must come before CMD"


def test_exposes_8501_and_serves_there() -> None:
    exposed = [p.split("/")[0] for rest in named("EXPOSE") for p in rest.split()]
    assert "8501" in exposed
    cmd = args_of(named("CMD")[-1])
    assert "streamlit" in cmd and "run" in cmd and "app.py" in cmd, cmd
    flags = dict(zip(cmd[cmd.index("app.py") + 1::2], cmd[cmd.index("app.py") + 2::2]))
    assert flags.get("--server.port") == "8501", cmd
    assert flags.get("--server.address") == "0.0.0.0", "bound to localhost, the app is unreachable from outside"
    assert flags.get("--server.headless") == "true"
    assert flags.get("--browser.gatherUsageStats") == "false"


def test_healthcheck_hits_streamlit_health() -> None:
    checks = named("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check.split(), check
    assert "localhost:8501/_stcore/health" in check or "127.0.0.1:8501/_stcore/health" in check, check


def test_runs_the_readme_setup_script_with_cuda_torch() -> None:
    seq = instructions()
    runs = [i for i, (w, rest) in enumerate(seq) if w == "RUN" and "scripts/setup.sh" in rest]
    assert len(runs) == 1, "the image is set up by scripts/setup.sh, exactly as the README does"
    setup_rest = seq[runs[0]][1]
    assert "--test" not in setup_rest, "the image needs no test dependencies"
    copied_before = [s for i, (w, rest) in enumerate(seq[: runs[0]]) if w == "COPY"
                     for s in args_of(rest)[:-1] if not s.startswith("--")]
    assert any(s.rstrip("/") in ("scripts", "scripts/setup.sh", ".") for s in copied_before), \
        "scripts/setup.sh is not copied before it runs"
    assert any(s.rstrip("/") in ("pyproject.toml", ".") for s in copied_before), \
        "setup.sh installs the project: pyproject.toml must be copied before it runs"
    # No GPU is visible during `docker build`: the build args ask for CUDA torch and the gpu extra.
    assert "PREFLIGHT_TORCH" in setup_rest and "PREFLIGHT_EXTRAS" in setup_rest
    build_args = dict((a.split("=", 1) + [""])[:2] for a in named("ARG"))
    assert build_args.get("PREFLIGHT_TORCH", "").strip('"').startswith("torch"), build_args
    assert build_args.get("PREFLIGHT_EXTRAS", "").strip('"') == "gpu", build_args
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "PREFLIGHT_TORCH" in setup and "PREFLIGHT_EXTRAS" in setup, "setup.sh ignores the build args"


def test_every_copied_file_exists_and_is_not_dockerignored() -> None:
    patterns = ignore_patterns()
    sources = copy_sources()
    assert sources
    for src in sources:
        assert not Path(src).is_absolute() and ".." not in Path(src).parts, f"COPY source outside the context: {src}"
        matches = list(REPO.glob(src.rstrip("/"))) if any(c in src for c in "*?[") else [REPO / src]
        assert matches and all(m.exists() for m in matches), f"COPY source {src!r} does not exist"
        assert not ignored(src, patterns), f"COPY source {src!r} is excluded by .dockerignore"


def _local_top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if (REPO / n).is_dir() or (REPO / f"{n}.py").is_file()}


def test_copies_everything_the_app_imports() -> None:
    sources = {s.rstrip("/") for s in copy_sources()}
    if "." in sources:
        return
    needed = {"app.py", ".streamlit"}
    scripts = [REPO / "app.py", *(REPO / "views").glob("*.py"), *(REPO / "ui").glob("*.py")]
    for script in scripts:
        needed |= _local_top_level_imports(script)
    needed |= {"views"} if (REPO / "views").is_dir() else set()
    missing = sorted(n for n in needed if (REPO / n).exists() and n not in sources)
    assert not missing, f"the app needs these but the Dockerfile does not COPY them: {missing}"


@pytest.mark.parametrize("path", [".venv", ".git"])
def test_dockerignore_excludes(path: str) -> None:
    assert DOCKERIGNORE.is_file()
    assert ignored(path, ignore_patterns()), f".dockerignore does not exclude {path}"
    assert ignored(f"{path}/some/file", ignore_patterns())


def test_dockerignore_keeps_what_the_image_needs() -> None:
    patterns = ignore_patterns()
    for path in ("app.py", "engine/cli.py", "engine/catalog/gpus.toml", "scripts/setup.sh", "pyproject.toml"):
        assert not ignored(path, patterns), f".dockerignore excludes {path}, which the image needs"
