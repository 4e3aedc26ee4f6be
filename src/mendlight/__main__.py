"""``python -m mendlight`` is the same as the ``mendlight`` command (exit status included)."""

from mendlight.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
