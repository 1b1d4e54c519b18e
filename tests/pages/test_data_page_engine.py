"""The data-checks page's "Run on" choice in AppTest: this process (default), a local Dask cluster (the
job's input asks for it), a scheduler address (the check runs there and the report says so), and the bad
address answered with st.error (an unreachable one is the engine's, tested in tests/datacheck/test_distributed.py)."""

from __future__ import annotations

import json
import time

import pytest

from tests.pages.conftest import ROOT, assert_clean, metrics, run_page

pytest.importorskip("distributed")

PAGE = str(ROOT / "views/data.py")


def _wait(at, until, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while not until(at):
        assert time.monotonic() < deadline, "the page never got there"
        time.sleep(0.5)
        at.run()


def test_run_on_defaults_to_this_process():
    at = run_page(PAGE, timeout=120)
    assert at.radio(key="dc_run_on").value == "this process"
    assert "Readiness" in metrics(at)
    assert not any("Ran on Dask" in c.value for c in at.caption)


def test_a_scheduler_address_runs_the_check_there_and_the_report_says_so():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None, protocol="tcp",
                      host="127.0.0.1") as cluster:
        at = run_page(PAGE, timeout=120)
        at.radio(key="dc_run_on").set_value("a scheduler address").run()
        assert_clean(at)
        assert any("scheduler's address" in i.value for i in at.info)
        at.text_input(key="dc_scheduler").set_value(cluster.scheduler_address).run()
        _wait(at, lambda a: "Readiness" in metrics(a) or a.error)
        assert_clean(at)
        ran = [c.value for c in at.caption if "Ran on Dask" in c.value]
        assert ran and cluster.scheduler_address in ran[0] and "1 workers, 1 partitions" in ran[0]


def test_bad_scheduler_addresses_are_one_error():
    at = run_page(PAGE, timeout=120)
    at.radio(key="dc_run_on").set_value("a scheduler address").run()
    at.text_input(key="dc_scheduler").set_value("my-laptop").run()
    assert len(at.error) == 1 and "not tcp://HOST:PORT" in at.error[0].value


def test_a_local_cluster_is_asked_for_with_its_workers(tmp_path):
    from engine.datacheck import job

    at = run_page(PAGE, timeout=120)
    at.radio(key="dc_run_on").set_value("a local Dask cluster").run()
    at.number_input(key="dc_workers").set_value(3).run()
    job_id = at.session_state["dc_job"]
    fields = json.loads((job.jobs_dir() / job_id / "input.json").read_text())
    assert (fields["engine"], fields["workers"], fields["scheduler"]) == ("dask", 3, None)
    assert not at.exception
    job.cancel(job_id)  # its cluster's worker processes share the job's session and stop with it
