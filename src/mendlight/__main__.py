"""``python -m mendlight`` is the same as the ``mendlight`` command."""

from mendlight.cli import main

if __name__ == "__main__":
    main()
