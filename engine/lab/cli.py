"""CLI commands of engine.lab (registered by engine/cli.py). Heavy imports stay inside handlers."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's commands to the top-level parser."""
