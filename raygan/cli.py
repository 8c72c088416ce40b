"""Command line: `raygan train|tune|resume|sample|export|report`, a thin layer over the Python
API (`raygan.api`, `raygan.result`).

`train` and `tune` run Ray Tune experiments (`raygan.api.experiment`); `train --out DIR` is a
plain run in this process, without Tune (`raygan.api.run_plain`), and `resume` continues
either. Each command parses its arguments, calls the API and prints what it returns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raygan import api
from raygan.atomic import probe_writable
from raygan.config import ConfigError, RunConfig
from raygan.errors import ShippedFileError, check_run_name, storage_problem

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "tune_configs" / "default.yaml"


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["local", "ray"], help="overrides resources.backend")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set grid.rows=3 (repeatable)",
    )
    p.add_argument(
        "--storage", help="experiment storage: a directory or s3:// / gs:// URI "
        "(default: output.storage_path, ./results)"
    )
    p.add_argument("--name", help="experiment name (default: the config's name)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--force", action="store_true", help="run even where raygan estimates the "
                   "grid exceeds this machine's memory, or the CPUs of the Ray it starts here")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raygan", description="Population-based GAN training.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one grid (a Ray Tune experiment with one trial)")
    t.add_argument("config", nargs="?", help=f"YAML run config (default: {DEFAULT_CONFIG.name})")
    _config_args(t)
    t.add_argument("--out", help="plain run in this process without Tune, files in OUT")
    s = sub.add_parser("tune", help="sweep whole runs with the scheduler in the tune section")
    s.add_argument("config", help="YAML run config with a tune section")
    _config_args(s)
    s.add_argument("--num-samples", type=int, help="overrides tune.num_samples")
    r = sub.add_parser("resume", help="continue an interrupted experiment (or plain run)")
    r.add_argument("dir", help="the experiment directory (<storage>/<name>) or plain run dir")
    r.add_argument("--generations", type=int, help="plain runs: new total of generations")
    r.add_argument("--backend", choices=["local", "ray"], help="plain runs: where cells run")
    r.add_argument("--quiet", action="store_true", help="plain runs: no progress output")
    m = sub.add_parser("sample", help="write samples of the best mixture")
    m.add_argument("dir", help="experiment, trial or plain run directory, or a checkpoint file")
    m.add_argument("-n", type=int, default=1000, help="number of samples (default 1000)")
    m.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    m.add_argument("--out", help="output .npy path; a .png is written beside it "
                   "(default: DIR/samples_best.npy)")
    x = sub.add_parser("export", help="write the best mixture as one TorchScript file")
    x.add_argument("dir", help="experiment, trial or plain run directory, or a checkpoint file")
    x.add_argument("--out", help="output file (default: DIR/mixture.pt; with --format "
                   "state_dict DIR/mixture.json, the members' .safetensors beside it)")
    x.add_argument("--format", choices=["torchscript", "state_dict"], default="torchscript",
                   help="torchscript (default: torch.jit.load it, no raygan needed) or "
                   "state_dict (safetensors of each member plus a JSON of the mixture)")
    o = sub.add_parser("report", help="print the trials table and write an HTML report")
    o.add_argument("dir", help="the experiment directory")
    o.add_argument("--out", help="HTML file (default: DIR/report.html)")
    return p


def _load(args: argparse.Namespace, path: str | Path) -> RunConfig:
    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"resources.backend={args.backend}")
    if getattr(args, "num_samples", None) is not None:
        overrides.append(f"tune.num_samples={args.num_samples}")
    return api.load_config(path, overrides)


def _train(args: argparse.Namespace) -> int:
    config = _load(args, args.config or DEFAULT_CONFIG)
    what = api.describe(config)
    if args.out:
        controller = api.run_plain(config, args.out, force=args.force, progress=not args.quiet,
                                   what=what)
        _print_final(controller.config, controller.summaries[-1] if controller.summaries else {})
        return 0
    return _experiment(args, config, what, sweep=False)


def _tune(args: argparse.Namespace) -> int:
    config = _load(args, args.config)
    t = config.tune
    what = (f"{config.name}: {t.num_samples} sample(s) of {len(t.space)} knob(s), scheduler "
            f"{t.scheduler}")
    return _experiment(args, config, what, sweep=True)


def _experiment(args: argparse.Namespace, config: RunConfig, what: str, sweep: bool) -> int:
    if args.name is not None:
        check_run_name(args.name, "--name")
    path, results = api.experiment(config, sweep=sweep, storage=args.storage, name=args.name,
                                   quiet=args.quiet, force=args.force, what=what)
    return _finish(path, results)


def _finish(path: str, results: Any) -> int:
    from raygan.tuning.experiment import is_uri, storage_failure

    if not is_uri(path):
        from raygan.reporting.report import format_table, trial_rows
        from raygan.tuning.results import load_trials

        print(format_table(*trial_rows(load_trials(path))))
    errors = len(results.errors)
    full = next(filter(None, map(storage_failure, results.errors)), None)
    if full is not None:
        print(f"raygan: error: cannot write {full}", file=sys.stderr)
        return 2
    print(
        f"raygan: {len(results)} trial(s), {errors} failed; results in {path}\n"
        f"  raygan report {path}      # HTML page\n"
        f"  tensorboard --logdir {path}",
        file=sys.stderr,
    )
    return 1 if errors else 0


def _resume(args: argparse.Namespace) -> int:
    from raygan.engine.checkpoint import checkpoint_exists
    from raygan.engine.run import CHECKPOINT

    out = Path(args.dir)
    if "://" not in args.dir and not out.exists():
        raise FileNotFoundError(f"{out} does not exist; pass the directory `raygan train` or "
                                "`raygan tune` printed")
    if checkpoint_exists(out / CHECKPOINT):
        return _resume_plain(args, out)
    if args.generations is not None or args.backend:
        raise ConfigError(
            "--generations and --backend apply to plain runs only; a Tune experiment resumes "
            "with the settings it was started with"
        )
    from raygan.tuning.experiment import resume_experiment

    if out.is_dir():
        probe_writable(out)
    print(f"raygan: resuming {args.dir}", file=sys.stderr)
    return _finish(args.dir, resume_experiment(args.dir))


def _resume_plain(args: argparse.Namespace, out: Path) -> int:
    controller = api.resume_plain(out, generations=args.generations, backend=args.backend,
                                  progress=not args.quiet)
    if controller is not None:
        _print_final(controller.config,
                     controller.summaries[-1] if controller.summaries else {})
    return 0


def _sample(args: argparse.Namespace) -> int:
    from raygan.tuning.results import find_checkpoint, sample_best_mixture, write_samples

    if args.n < 1:
        raise ConfigError(f"-n: must be >= 1, got {args.n}")
    checkpoint = find_checkpoint(args.dir)
    target = Path(args.dir)
    out = Path(args.out) if args.out else (
        target if target.is_dir() else target.parent) / "samples_best.npy"
    probe_writable(out.parent)
    samples, config = sample_best_mixture(checkpoint, args.n, args.seed)
    written = write_samples(samples, config, out)
    print(f"raygan: {args.n} samples of {checkpoint} -> " + ", ".join(map(str, written)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from raygan.export import export_mixture

    target = Path(args.dir)
    name = "mixture.json" if args.format == "state_dict" else "mixture.pt"
    out = Path(args.out) if args.out else (target if target.is_dir() else target.parent) / name
    probe_writable(out.parent)
    written = export_mixture(args.dir, out, args.format)
    print(f"raygan: best mixture of {args.dir} -> {written} "
          f"({written.stat().st_size / 1e6:.2f} MB)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from raygan.reporting.report import write_report

    if args.out:
        probe_writable(Path(args.out).expanduser().parent)
    elif Path(args.dir).is_dir():
        probe_writable(args.dir)
    page, table = write_report(args.dir, args.out)
    print(table)
    print(f"raygan: report written to {page}", file=sys.stderr)
    return 0


def _print_final(config: RunConfig, summary: dict[str, object]) -> None:
    from raygan.config.catalog import best_scores, format_scores

    text = format_scores(best_scores(summary))
    print(f"raygan: {config.name} finished; best mixture (cell {summary.get('best_cell')}): {text}")


_COMMANDS = {
    "train": _train,
    "tune": _tune,
    "resume": _resume,
    "sample": _sample,
    "export": _export,
    "report": _report,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `raygan` console script."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except Exception as exc:
        storage = storage_problem(exc)
        if storage is not None:  # a full, read-only or forbidden disk: raygan's checkpoints
            # are written atomically, so the last one is intact and `raygan resume` continues
            print(f"raygan: error: cannot write {storage}", file=sys.stderr)
            return 2
        if not _is_user_error(exc):
            raise
        print(f"raygan: error: {exc}", file=sys.stderr)
        return 2


def _is_user_error(exc: Exception) -> bool:
    """A mistake the user can fix from one line (bad config, missing or damaged file)."""
    if isinstance(exc, (ConfigError, FileNotFoundError, FileExistsError, ShippedFileError)):
        return True
    from raygan.engine.checkpoint import CheckpointError  # torch: only once something failed

    return isinstance(exc, CheckpointError)
