"""Command line: `raygan train [CONFIG]`, `raygan resume DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raygan.config import ConfigError, RunConfig, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "tune_configs" / "default.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raygan", description="Population-based GAN training.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a grid of GANs")
    t.add_argument("config", nargs="?", help=f"YAML run config (default: {DEFAULT_CONFIG.name})")
    t.add_argument("--backend", choices=["local", "ray"], help="overrides resources.backend")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set grid.rows=3 (repeatable)",
    )
    t.add_argument("--out", help="output directory (default: output.dir/name)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    r = sub.add_parser("resume", help="continue an interrupted run from its checkpoint")
    r.add_argument("dir", help="the run's output directory")
    r.add_argument("--generations", type=int, help="new total number of generations")
    r.add_argument("--backend", choices=["local", "ray"])
    r.add_argument("--quiet", action="store_true")
    return p


def _pool_factory(backend: str):  # type: ignore[no-untyped-def]
    if backend == "ray":
        from raygan.distributed import RayCellPool

        return RayCellPool
    from raygan.engine.pool import LocalCellPool

    return LocalCellPool


def _train(args: argparse.Namespace) -> int:
    from raygan.engine.run import train

    path = args.config or DEFAULT_CONFIG
    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"resources.backend={args.backend}")
    config = load_config(path, overrides)
    out = Path(args.out) if args.out else Path(config.output.dir) / config.name
    print(
        f"raygan: training {config.name} ({config.grid.rows}x{config.grid.cols} grid, "
        f"{config.data.name}, {config.resources.backend}) -> {out}",
        file=sys.stderr,
    )
    controller = train(
        config, out, pool_factory=_pool_factory(config.resources.backend), progress=not args.quiet
    )
    _print_final(controller.config, controller.summaries[-1] if controller.summaries else {})
    return 0


def _resume(args: argparse.Namespace) -> int:
    from raygan.engine.checkpoint import load_checkpoint
    from raygan.engine.run import CHECKPOINT, train

    out = Path(args.dir)
    config, _, _ = load_checkpoint(out / CHECKPOINT)
    if args.generations:
        config = config.replace(**{"training.generations": args.generations})
    backend = args.backend or config.resources.backend
    controller = train(
        config, out, pool_factory=_pool_factory(backend), resume=True, progress=not args.quiet
    )
    _print_final(controller.config, controller.summaries[-1] if controller.summaries else {})
    return 0


def _print_final(config: RunConfig, summary: dict[str, object]) -> None:
    scores = {k[5:]: v for k, v in summary.items() if k.startswith("best/")}
    text = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items()
    )
    print(f"raygan: {config.name} finished; best mixture (cell {summary.get('best_cell')}): {text}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `raygan` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _resume(args)
    except (ConfigError, FileNotFoundError, FileExistsError) as exc:
        print(f"raygan: error: {exc}", file=sys.stderr)
        return 2
