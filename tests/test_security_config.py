"""The deployed app's hardened settings stay on, and no password or secret is kept in the repository."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_streamlit_config_keeps_xsrf_on_and_limits_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert 1 <= config["server"]["maxUploadSize"] <= 1000  # MB; the browser refuses larger files with a message
    assert config["client"]["showErrorDetails"] == "none"


def test_an_upload_over_the_limit_is_one_clear_message(tmp_path):
    import pytest

    from engine.tabular import open_dataset
    from engine.errors import ValidationError

    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1,2\n" * 1000)
    with pytest.raises(ValidationError, match=r"big\.csv is .* over the .* upload limit"):
        open_dataset(path, max_bytes=100)


def test_no_secrets_in_the_repository():
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in tracked if f.endswith("secrets.toml")]
