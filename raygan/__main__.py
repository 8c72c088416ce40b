"""`python -m raygan` entry point (works under `ray job submit`)."""

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
