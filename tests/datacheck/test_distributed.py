"""Data checks on Dask equal the one-process run: a local cluster, and an external scheduler with two
workers started here (``dask scheduler`` / ``dask worker`` on 127.0.0.1), on a sharded corpus with
duplicates, near-duplicates across shards, PII and missing values planted; a worker killed mid-run;
the bad inputs, each one line with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from engine.cli import main  # noqa: E402
from engine.datacheck.runner import CheckInput, run_checks  # noqa: E402
from engine.datacheck.samples import write_sharded_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "shards"
    planted = write_sharded_corpus(folder, shards=4, rows_per_shard=120, gzip_every=3)
    assert planted["exact"] and planted["text_copy"] and planted["near"] and planted["email"] and planted["missing_label"]
    return folder


@pytest.fixture(scope="module")
def single(corpus):
    return run_checks(CheckInput(path=str(corpus))).to_dict()


def _same(a: dict, b: dict) -> None:
    assert a["findings"] == b["findings"]
    assert (a["score"], a["rows"], a["tokens"], a["charts"]) == (b["score"], b["rows"], b["tokens"], b["charts"])
    assert [c["status"] for c in a["checks_run"]] == [c["status"] for c in b["checks_run"]]


def _counts(report: dict) -> dict[str, int]:
    return {f["id"]: f["count"] for f in report["findings"]}


def test_single_process_finds_what_was_planted_across_shards(single):
    counts = _counts(single)
    assert counts["duplicate_rows"] == 48 and counts["near_duplicates"] > 0 and counts["pii"] > 0
    assert counts["missing_values"] > 0 and counts["duplicate_text"] > 0
    text = next(f for f in single["findings"] if f["id"] == "duplicate_text")
    assert any(r >= 120 for r in text["rows"])  # copies of earlier shards' texts under new ids
    near = next(f for f in single["findings"] if f["id"] == "near_duplicates")
    assert any(r >= 120 for r in near["rows"])  # shards after the first copy texts of earlier shards only
    assert single["engine"] == {"name": "local", "scheduler": None, "workers": 1, "partitions": 4}


def test_local_cluster_gives_the_same_report(corpus, single):
    report = run_checks(CheckInput(path=str(corpus), engine="dask", workers=2, worker_memory="1GiB")).to_dict()
    _same(single, report)
    eng = report["engine"]
    assert (eng["name"], eng["workers"], eng["partitions"], eng["local_cluster"]) == ("dask", 2, 4, True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """A scheduler and two single-thread workers as separate processes, as on several machines."""
    tmp = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                              cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    for i in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-nanny", "--memory-limit", "1GiB", "--name", f"w{i}"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    client = Client(address, timeout="30s")
    client.wait_for_workers(2, timeout=60)
    yield address, client, procs
    client.close()
    for p in procs:  # test processes with nothing to save: no graceful shutdown to wait for
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def test_external_scheduler_with_two_workers_gives_the_same_report(corpus, single, external):
    address, _, _ = external
    report = run_checks(CheckInput(path=str(corpus), engine="dask", scheduler=address)).to_dict()
    _same(single, report)
    assert report["engine"]["scheduler"] == address and report["engine"]["workers"] == 2
    assert report["engine"]["local_cluster"] is False


def test_exact_duplicates_whose_examples_span_shards_equal_one_process(tmp_path, external):
    """Small shards (the first holds fewer than five repeats), a test split with its own repeats and
    7-row chunks: the shards holding the first examples are read again; every finding equals one process's."""
    address, _, _ = external
    write_sharded_corpus(tmp_path / "c", shards=3, rows_per_shard=30, seed=3)
    test = tmp_path / "test.jsonl"
    test.write_text((tmp_path / "c" / "part-00001.jsonl").read_text() * 2)
    kw = dict(path=str(tmp_path / "c"), test_path=str(test), chunk_rows=7,
              checks=("duplicate_rows", "duplicate_text", "train_test_leakage"))
    one = run_checks(CheckInput(**kw)).to_dict()
    report = run_checks(CheckInput(**kw, engine="dask", scheduler=address)).to_dict()
    assert one["findings"] == report["findings"]
    by = {(f["id"], f["split"]): f for f in report["findings"]}
    train, test_dups = by[("duplicate_rows", "train")], by[("duplicate_rows", "test")]
    assert len({e["row"] // 30 for e in train["examples"]}) >= 2 and test_dups["count"] == 30
    assert by[("duplicate_text", "train")]["count"] > 0
    assert report["engine"]["ordered_checks"] == ["train_test_leakage"]


def test_token_count_per_shard_folds_to_the_one_process_figures_past_the_exact_limit(tmp_path, monkeypatch):
    """The token count's tasks called in this process, as a worker calls them, with the BPE trained on
    the first 50 texts and the exact limit lowered to 20 kB: the later chunks are extrapolated, and
    the figures equal one pass's."""
    from engine.datacheck.base import Context
    from engine.datacheck.checks import tokens
    from engine.datacheck.dask_tokens import fold_task, measure_task, train_task
    from engine.tabular import open_dataset

    for name, value in (("TRAIN_DOCS", 50), ("MIN_TRAIN_BYTES", 5_000), ("EXACT_BYTES", 20_000)):
        monkeypatch.setattr(tokens, name, value)
    write_sharded_corpus(tmp_path / "c", shards=3, rows_per_shard=60, seed=2)
    one = run_checks(CheckInput(path=str(tmp_path / "c"), checks=("tokens",), chunk_rows=25)).to_dict()
    assert "extrapolated" in one["tokens"]["method"] and "bpe" in one["tokens"]["tokenizer"]
    parts = [(str(s.path), s.format, 60 * i) for i, s in enumerate(open_dataset(tmp_path / "c").shards)]
    ctx = Context(kind="text", columns=["id", "text", "label"], text_col="text", label_col="label", rows=180)
    trained = train_task(parts, ctx, 25)
    assert trained["shard"] == 0 and trained["chunks"] == 2
    done = fold_task(trained, *[measure_task(trained, i, p, fm, off, ctx, 25) for i, (p, fm, off) in enumerate(parts)])
    finding = done["check"].finish(ctx)[0].to_dict()
    assert ctx.shared["tokens"] == one["tokens"] and not done["errors"]
    assert finding == next(f for f in one["findings"] if f["id"] == "tokens")


def test_cli_json_carries_the_engine_block(corpus, external, capsys):
    address, _, _ = external
    assert main(["check", str(corpus), "--engine", "dask", "--scheduler", address, "--checks",
                 "duplicate_rows,near_duplicates,pii,missing_values", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"]["name"] == "dask" and out["engine"]["partitions"] == 4


def test_a_worker_killed_mid_run_is_retried_and_the_counts_stay_exact(corpus, single, external):
    """Killing one of the two workers while shards are being checked: Dask reruns its tasks on the other."""
    address, client, procs = external
    pids = [procs[1].pid]  # a worker started without a nanny is its own process
    killed: list[int] = []

    def progress(fraction: float, message: str) -> None:
        if "checking shards" in message and not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    report = run_checks(CheckInput(path=str(corpus), engine="dask", scheduler=address), progress=progress).to_dict()
    assert killed
    _same(single, report)


def _bad(argv, capsys) -> str:
    t = time.monotonic()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert time.monotonic() - t < 20
    return err


def test_bad_inputs_are_one_line_with_exit_code_2(tmp_path, corpus, capsys):
    assert "unknown engine 'spark'" in _bad(["check", str(corpus), "--engine", "spark"], capsys)
    assert "not tcp://HOST:PORT" in _bad(["check", str(corpus), "--engine", "dask", "--scheduler", "nowhere"], capsys)
    (tmp_path / "empty").mkdir()
    assert "has no data files" in _bad(["check", str(tmp_path / "empty")], capsys)
    assert "no files match" in _bad(["check", str(tmp_path / "nothing-*.jsonl")], capsys)
    liar = tmp_path / "liar"
    liar.mkdir()
    (liar / "a.jsonl").write_text('{"text": "hello there"}\n')
    (liar / "b.parquet").write_text('{"text": "not parquet at all"}\n')
    err = _bad(["check", str(liar)], capsys)
    assert "b.parquet" in err and "Parquet" in err and "shard 2 of 2" in err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.jsonl").write_text('{"text": "hello there", "label": "x"}\n')
    (mixed / "b.jsonl").write_text('{"body": "hello there", "label": "x"}\n')
    err = _bad(["check", str(mixed)], capsys)
    assert "mixed schemas" in err and "b.jsonl" in err and "'text'" in err and "'body'" in err


def test_unreachable_scheduler_gives_up_within_about_ten_seconds_and_says_where(corpus, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    t = time.monotonic()
    err = _bad(["check", str(corpus), "--engine", "dask", "--scheduler", address], capsys)
    assert address in err and "no Dask scheduler answered" in err
    assert time.monotonic() - t < 15
