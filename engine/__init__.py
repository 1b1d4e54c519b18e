"""Preflight engine: GPU cost & compute estimation (and, later, data checks and the model lab).

Pure Python, no UI. Every capability is a function over typed inputs, reachable from Python,
from the CLI (``python -m engine`` / ``preflight``) and from a Streamlit page.
"""

__version__ = "0.1.0"
