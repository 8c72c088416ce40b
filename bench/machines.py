"""How far two machines' runs of the same seed may differ: the default run under other CPUs.

The training is not bit-equal across CPUs: PyTorch picks its vectorised kernels (and oneDNN and
MKL theirs) by the instruction set of the machine, and sums of floats in another order round
differently; a GAN amplifies the difference from the first steps on. This script stands in for
"another machine" by limiting the instruction set on this one (`ATEN_CPU_CAPABILITY`,
`DNNL_MAX_CPU_ISA`, `MKL_ENABLE_INSTRUCTIONS`): the default run (`tune_configs/default.yaml`,
seed 0, the shipped reference classifier, so the metric itself is the same) runs once per
instruction set in a fresh process, and the JSON gives each one's final scores, the spread
between them, and the first generation whose losses differ.

    python bench/machines.py [--isas avx512 avx2 default] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CONFIGS, finish, log, machine  # noqa: E402

from raygan.engine.history import read_history  # noqa: E402

ISA_ENV = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "DNNL_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
"""Environment of each stand-in machine (the newest this CPU has first)."""

SCORES = ("fid", "tvd", "inception_score")


def run_once(isa: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """The default run in a fresh process limited to `isa`; its final scores and wall time."""
    env = {**os.environ, **ISA_ENV[isa]}
    command = [sys.executable, "-m", "raygan", "train", str(CONFIGS / "default.yaml"),
               "--out", str(out), "--quiet", *[a for o in overrides for a in ("--set", o)]]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=sys.stderr)  # stdout: the JSON only
    final = json.loads((out / "final.json").read_text())
    return {"isa": isa, "seconds": round(time.perf_counter() - start, 1),
            **{k: final.get(f"best/{k}") for k in (*SCORES, "fid_floor", "tvd_floor")}}


def first_difference(a: Path, b: Path) -> dict[str, Any]:
    """The first generation whose per-cell losses differ between runs `a` and `b`, and the
    largest relative difference of the losses over the whole run."""
    ha, hb = read_history(a / "history.parquet"), read_history(b / "history.parquet")
    keys = ["generation", "cell"]
    merged = ha.merge(hb, on=keys, suffixes=("_a", "_b"))
    first, worst = None, 0.0
    for column in ("g_train_loss", "d_train_loss"):
        x, y = merged[f"{column}_a"], merged[f"{column}_b"]
        rel = ((x - y).abs() / y.abs().clip(lower=1e-12)).fillna(0.0)
        worst = max(worst, float(rel.max()))
        moved = merged.loc[rel > 0, "generation"]
        if len(moved):
            first = int(moved.min()) if first is None else min(first, int(moved.min()))
    return {"first_generation_differing": first, "max_relative_loss_difference": worst}


def main() -> None:
    """Run the default once per instruction set and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isas", nargs="+", default=list(ISA_ENV), choices=list(ISA_ENV))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    start = time.perf_counter()
    runs, dirs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for isa in args.isas:
            log(f"default run with {isa} kernels")
            dirs[isa] = Path(tmp) / isa
            runs.append(run_once(isa, dirs[isa], args.set))
        base = args.isas[0]
        differences = {isa: first_difference(dirs[base], dirs[isa]) for isa in args.isas[1:]}
    spread = {k: {"min": min(r[k] for r in runs), "max": max(r[k] for r in runs),
                  "max_over_min": max(r[k] for r in runs) / min(r[k] for r in runs)}
              for k in SCORES}
    finish({"config": "tune_configs/default.yaml", "overrides": args.set, "runs": runs,
            "spread": spread, "against_" + base: differences, "machine": machine()}, start)


if __name__ == "__main__":
    main()
