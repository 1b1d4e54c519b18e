"""Set up without PyTorch (PREFLIGHT_TORCH=skip), the model pages show engine.requires' one line and stop
(ui.widgets.stop_without_torch), their imports light enough to load. Run in a subprocess with torch made
unimportable (``sys.modules["torch"] = None``), as tests/lab/test_without_torch.py does for the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.modules["torch"] = None
from streamlit.testing.v1 import AppTest
out = {}
for page in ("views/lab.py", "views/tune.py", "views/infer.py"):
    at = AppTest.from_file(page, default_timeout=60)
    at.run()
    out[page] = {"exception": [e.value for e in at.exception], "error": [e.value for e in at.error],
                 "title": [t.value for t in at.title], "widgets": len(at.selectbox) + len(at.button)}
print(json.dumps(out))
"""


def test_model_pages_without_torch_say_so_and_stop(tmp_path):
    env = {"PREFLIGHT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    from engine.requires import TORCH_MISSING

    for page, shown in json.loads(run.stdout.strip().splitlines()[-1]).items():
        assert not shown["exception"], (page, shown["exception"])
        assert shown["error"] == [TORCH_MISSING], (page, shown["error"])
        assert len(shown["title"]) == 1 and shown["widgets"] == 0, (page, shown)
