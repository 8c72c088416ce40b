"""`python -m raygan.cluster_check [FILE ...] [--strict]` entry point."""

from raygan.cluster_check.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
