"""Benchmark: the readiness page's first render and its rerun after an input change, with a populated
workspace and 2,000 Monte Carlo samples; and the engine's share of it.

    .venv/bin/python bench/readiness_page.py [--reruns N]

Populates a temporary workspace (a finished data check, a training run with metrics, a calibration
and two saved scenarios), then in a fresh subprocess:
- engine: ``assess()`` of the example profile with 2,000 samples (median of N), and the Monte Carlo
  alone;
- page, first render: the first ``AppTest`` run of views/readiness.py in that fresh process (imports,
  estimators, charts; AppTest's own overhead included, the browser's drawing not), and the median
  first run of a new session once the modules are loaded (a new visitor on a running server);
- page, rerun: the median of N ``AppTest`` reruns, each after a change of the daily users.
Prints one JSON object. Aims (issue 9): rerun < 300 ms, first render < 1.5 s; record ``uptime``'s
load with every figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_POPULATE = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from engine.datacheck import job
from engine.readiness.profile import example_profile
from engine.readiness.store import ScenarioStore
from engine.store import Registry
from dataclasses import replace
csv = Path({home!r}) / "d.csv"
csv.write_text("id,text,label\\n" + "".join(f"{{i}},review number {{i % 50}} was fine,{{i % 2}}\\n" for i in range(2000)))
job.start_check({{"path": str(csv)}}, inline=True)
reg = Registry()
reg.create_run("r1", {{"preset": "tiny"}}, Path({home!r}) / "runs" / "r1")
reg.log_metrics("r1", rows=[{{"step": s, "val_loss": 4.0 - s / 100}} for s in range(0, 200, 10)])
reg.set_status("r1", "finished", summary={{"val_loss": 2.1, "best_val_loss": 2.1, "tokens_per_s": 1000.0}})
reg.create_run("cal", {{}}, Path({home!r}) / "runs" / "cal", kind="calibrate", status="running")
reg.set_status("cal", "finished", summary={{"preset": "tiny", "device_name": "cpu", "mfu": 0.1, "tokens_per_s": 1.0,
                                            "achieved_tflops": 0.1}})
store = ScenarioStore()
store.save("base", example_profile())
store.save("bull", replace(example_profile(), daily_active_users=50_000))
"""

_MEASURE = """
import json, statistics, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({page!r}, default_timeout=120)
at.run()
first = time.perf_counter() - t0
assert not at.exception, [e.value for e in at.exception]
new_sessions = []
for _ in range(5):  # a new browser session on a running server: modules already imported
    t = time.perf_counter()
    fresh = AppTest.from_file({page!r}, default_timeout=120)
    fresh.run()
    new_sessions.append(time.perf_counter() - t)
    assert not fresh.exception
overview = []
for _ in range(5):  # the Overview (views/home.py), the landing page, for a new session
    t = time.perf_counter()
    home = AppTest.from_file({home_page!r}, default_timeout=120)
    home.run()
    overview.append(time.perf_counter() - t)
    assert not home.exception
reruns = []
for i in range({reruns}):
    at.number_input(key="rd_dau").set_value(5000 + 1000 * (i + 1))
    t = time.perf_counter()
    at.run()
    reruns.append(time.perf_counter() - t)
    assert not at.exception
from engine.readiness.assess import assess
from engine.readiness.finance import serving_basis, training_costs
from engine.readiness.montecarlo import PointCosts, run
from engine.readiness.profile import example_profile
p = example_profile()
engine, mc = [], []
for _ in range({reruns}):
    t = time.perf_counter(); assess(p, samples=2000); engine.append(time.perf_counter() - t)
runs = training_costs(p)
point = PointCosts(tuple(r["cost_usd"] for r in runs), tuple(r["mfu"] for r in runs), serving_basis(p),
                   tuple(r["mfu_free_cost_usd"] for r in runs))
for _ in range({reruns}):
    t = time.perf_counter(); run(p, point, samples=2000); mc.append(time.perf_counter() - t)
print(json.dumps({{"first_render_s": first, "new_session_render_median_s": statistics.median(new_sessions),
                  "overview_new_session_render_median_s": statistics.median(overview), "rerun_median_s": statistics.median(reruns), "rerun_max_s": max(reruns),
                  "assess_2000_median_s": statistics.median(engine), "montecarlo_2000_median_s": statistics.median(mc),
                  "reruns": {reruns}}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reruns", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflight-bench-home-") as home:
        env = {**os.environ, "PREFLIGHT_HOME": home, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", _POPULATE.format(repo=str(REPO), home=home)], env=env, check=True)
        out = subprocess.run([sys.executable, "-c", _MEASURE.format(repo=str(REPO), page=str(REPO / "views" / "readiness.py"),
                                                                    home_page=str(REPO / "views" / "home.py"),
                                                                    reruns=args.reruns)],
                             env=env, check=True, capture_output=True, text=True, cwd=REPO)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
