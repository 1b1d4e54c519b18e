"""Issue 11 item 8: an install without PyTorch (``PREFLIGHT_TORCH=skip``) answers every command that needs
torch with the one-line message of engine/requires.py (exit 2), never a ModuleNotFoundError traceback, and
runs the commands that do not need it.

Each command is run in a subprocess with torch made unimportable (``sys.modules["torch"] = None``: both
``import torch`` and ``importlib.util.find_spec("torch")`` fail, as in an environment without it).

A command added to the CLI must be classified here: in TORCH_COMMANDS (with the fewest arguments that
parse) or in WITHOUT_TORCH. The inference, tuning and fine-tuning commands go in TORCH_COMMANDS when they
register; the classification test fails until they are listed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.requires import TORCH_MISSING

ROOT = Path(__file__).resolve().parents[2]

# command -> arguments that parse (the handler must refuse before it touches anything)
TORCH_COMMANDS: dict[str, list[str]] = {
    "train": ["--sample", "stories", "--preset", "tiny", "--out", "{tmp}/run"],
    "calibrate": ["--preset", "tiny", "--device", "cpu", "--no-record"],
    "generate": ["--run", "{tmp}/run", "--prompt", "hi"],
    "evaluate": ["--run", "{tmp}/run"],
    "sweep": ["--sample", "stories", "--trials", "2", "--out", "{tmp}/study"],
    "export": ["--run", "{tmp}/run"],
    "classify": ["--run", "{tmp}/run", "--text", "hi"],
    "bench": ["--preset", "tiny", "--backends", "torch"],
}
# command -> arguments; these must work without torch (exit 0)
WITHOUT_TORCH: dict[str, list[str]] = {
    "runs": [], "readiness": [], "models": None, "gpus": None,  # None: pure catalog listings, not run here
    "apis": [],  # the API offers: a catalog listing with no torch anywhere in engine.estimate.apis
    "estimate": ["train", "--model", "llama-3-8b", "--tokens", "1e9", "--gpu", "h100-sxm"],
    "check": None,  # reads a file; its own tests cover it (no torch import anywhere in engine.datacheck)
    "backends": [],  # says which backends are missing and why (torch among them)
    "sweep-worker": None,  # internal: started by `sweep`, which refuses first
}

_NO_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['preflight', *sys.argv[1:]]; "
             "runpy.run_module('engine', run_name='__main__')")


def _commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _run_without_torch(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFLIGHT_HOME": str(tmp_path / "home")}
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    return subprocess.run([sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


def test_every_command_is_classified():
    unclassified = _commands() - set(TORCH_COMMANDS) - set(WITHOUT_TORCH)
    assert not unclassified, (f"classify {sorted(unclassified)} in {__file__}: TORCH_COMMANDS if it needs "
                              "PyTorch (and call engine.requires.require_torch first in its handler), else "
                              "WITHOUT_TORCH")


@pytest.mark.parametrize("command", sorted(TORCH_COMMANDS))
def test_torch_command_answers_one_line_and_exit_2(command, tmp_path):
    if command not in _commands():
        pytest.skip(f"{command} is not registered in this CLI")
    done = _run_without_torch([command, *TORCH_COMMANDS[command], "--json"], tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs PyTorch" in lines[0] and TORCH_MISSING in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("command", sorted(c for c, a in WITHOUT_TORCH.items() if a is not None))
def test_commands_without_torch_still_work(command, tmp_path):
    done = _run_without_torch([command, *WITHOUT_TORCH[command], "--json"], tmp_path)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip().startswith("{") and "Traceback" not in done.stderr
