"""`python -m engine check`: the JSON contract, exit 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.datacheck.samples import write_sample

REPO = Path(__file__).resolve().parents[2]


def run(*argv, env_home):
    return subprocess.run([sys.executable, "-m", "engine", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PREFLIGHT_HOME": str(env_home), "PATH": "/usr/bin:/bin"})


def test_json_contract(tmp_path):
    train = write_sample("support_tickets", tmp_path)
    test = write_sample("support_tickets_test", tmp_path)
    p = run("check", str(train), "--test", str(test), "--fix", str(tmp_path / "clean.csv"),
            "--html", str(tmp_path / "r.html"), "--json", env_home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1
    d = json.loads(p.stdout)
    assert {"score", "rows", "columns", "tokens", "findings"} <= set(d)
    dup = next(f for f in d["findings"] if f["id"] == "duplicate_rows")
    assert dup["count"] == 12 and len(dup["rows"]) == 12
    leak = next(f for f in d["findings"] if f["id"] == "train_test_leakage")
    assert leak["count"] == 8 and leak["split"] == "test"
    miss = next(f for f in d["findings"] if f["id"] == "missing_values")
    assert miss["count"] == sum(v["missing"] for v in miss["details"]["per_column"].values())
    assert d["fix"]["rows_out"] < d["fix"]["rows_in"] and Path(d["fix"]["test_path"]).exists()
    assert Path(d["html"]).exists()
    human = run("check", str(train), "--label", "label", env_home=tmp_path)
    assert human.returncode == 0 and "readiness" in human.stdout and "duplicate_rows" in human.stdout


@pytest.mark.parametrize("content,args,words", [
    (b"a,b,c\n1,2,3\n1,2,3,4\n", (), "line 3 has 4 fields"),
    (b"", (), "empty"),
    (b"a,b\n1,2\n", ("--text", "zzz"), "text column 'zzz' not found"),
    (b"a,b\n1,2\n", ("--max-mb", "0.000001"), "upload limit"),
    (b"a,b\n1,2\n", ("--near-dup-threshold", "2"), "near-dup-threshold"),
])
def test_bad_input_exit_2(tmp_path, content, args, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    p = run("check", str(path), *args, "--json", env_home=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert words in p.stderr and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_a_refused_csv_never_aborts_the_process_at_exit(tmp_path):
    """pyarrow's threaded CSV reader reads ahead on its own thread; left running when a ValidationError
    ends the command, it could abort the interpreter at exit (SIGABRT, 'terminate called without an
    active exception') about one time in six. Exit code 2, every time."""
    path = tmp_path / "ragged.csv"
    path.write_bytes(b"a,b,c\n1,2,3\n1,2,3,4\n")
    codes = [run("check", str(path), "--json", env_home=tmp_path).returncode for _ in range(12)]
    assert codes == [2] * 12
