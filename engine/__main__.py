"""``python -m engine ...`` is the same CLI as the ``preflight`` console script."""

from engine.cli import entry

if __name__ == "__main__":
    entry()
