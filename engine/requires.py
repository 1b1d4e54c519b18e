"""Optional packages a capability needs, checked before it starts, with the one-line answer a user can act on.

`PREFLIGHT_TORCH=skip` installs the estimator and the data checks without PyTorch; every command that needs
torch (train, calibrate, generate, and the inference, tuning and fine-tuning commands) calls
:func:`require_torch` first, so the CLI exits 2 with this line instead of a ModuleNotFoundError traceback, and
the pages show the same line with ``st.error``.
"""

from __future__ import annotations

import importlib.util

from engine.errors import ValidationError

TORCH_MISSING = ("PyTorch is not installed in this environment: run `bash scripts/setup.sh` "
                 "(without PREFLIGHT_TORCH=skip)")


def has_package(module: str) -> bool:
    """True when ``module`` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install, or sys.modules[module] = None
        return False


def require_torch(feature: str = "this command") -> None:
    """Raise the one-line ValidationError when PyTorch cannot be imported."""
    if not has_package("torch"):
        raise ValidationError(f"{feature} needs PyTorch. {TORCH_MISSING}")


def require_package(module: str, pip_name: str, feature: str) -> None:
    """Raise a one-line ValidationError naming what to install when an optional package is missing."""
    if not has_package(module):
        raise ValidationError(f"{feature} needs the Python package {pip_name!r}: pip install {pip_name}")
