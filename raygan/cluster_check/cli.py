"""The command: `python -m raygan.cluster_check [FILE ...] [--strict]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from raygan.cluster_check.common import pinned_ray_version, placeholders
from raygan.cluster_check.files import check_file, default_files, load_documents


def main(argv: list[str] | None = None) -> int:
    """`python -m raygan.cluster_check [FILE ...] [--strict]`; 0 when every file passes."""
    parser = argparse.ArgumentParser(
        prog="python -m raygan.cluster_check",
        description="Check cluster launcher and KubeRay files offline.",
    )
    parser.add_argument("files", nargs="*", help="default: cluster/*.yaml cluster/kuberay/*.yaml")
    parser.add_argument(
        "--strict", action="store_true", help="also fail on placeholders such as YOUR-BUCKET"
    )
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.files] or default_files()
    if not files:
        print("cluster_check: no files", file=sys.stderr)
        return 2
    version = pinned_ray_version()
    failed = False
    for path in files:
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        problems = check_file(path, version)
        try:
            left = [t for d in load_documents(path) for t in placeholders(d)]
        except (yaml.YAMLError, ValueError, OSError):
            left = []
        if problems:
            failed = True
            print(f"{shown}: FAILED")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"{shown}: ok (Ray {version})")
        if left:
            failed = failed or args.strict
            print(f"  {'error' if args.strict else 'note'}: edit the placeholders "
                  + ", ".join(left))
    return 1 if failed else 0
