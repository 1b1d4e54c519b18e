"""Who may do what: the read-only demo mode.

A founder who shares a demo link must not let visitors upload files, start training or calibration, delete
runs or edit scenarios in the shared workspace. With ``PREFLIGHT_DEMO=1`` (or ``true``/``yes``/``on``) in the
environment, every write path in the engine calls :func:`require_write` first and refuses with one line;
the estimators, the inference demo and the reports keep working. Pages hide the controls too, but the
refusal lives here, so a crafted request or the CLI cannot get around it.
"""

from __future__ import annotations

import os

from engine.errors import ValidationError

DEMO_ENV = "PREFLIGHT_DEMO"
_TRUE = {"1", "true", "yes", "on"}


def demo_mode() -> bool:
    """True when this process runs as a read-only demo (read from the environment on every call)."""
    return os.environ.get(DEMO_ENV, "").strip().lower() in _TRUE


def require_write(action: str) -> None:
    """Refuse ``action`` (e.g. "uploading a file") in demo mode with a one-line ValidationError."""
    if demo_mode():
        raise ValidationError(f"{action} is turned off: this Preflight is a read-only demo ({DEMO_ENV} is set)")
