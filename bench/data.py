"""Real data at real size: a grid's memory on a CelebA-sized set, folder load times, MNIST SWD.

Prints one JSON object on stdout (progress on stderr):
- `grid_memory`: a synthetic CelebA-sized set written to disk (200,000 images of 3x64x64 uint8,
  2.46 GB, one `.npy` written in chunks; `data.name: array`) trained one generation by a 3x3
  grid of tiny DCGANs on Ray with `resources.cells_per_actor` 1 (9 actors) and 9 (1 actor).
  `after`: measured once the generation ran: the driver's and each actor's memory (RSS, PSS,
  USS and the shared-memory pages they map, MiB), the object store's growth (/dev/shm) and the
  sum over the processes; beside it raygan's estimate (`raygan.engine.capacity`). `before`:
  the code before issue 29, estimated, not run (it cannot fit a 24 GiB machine): every actor
  loaded the whole set as float32 (9.8 GB) and every cell copied its float32 shard again.
- `folder_load`: a folder of 10,000 PNGs (3x64x64 noise, in 10 sub-folders) written here,
  loaded by `data.name: folder` twice: the first load decodes every file into the cache, the
  second maps the cache (the files were just written, so the first load reads them from the
  page cache: a cold disk adds its read time).
- `swd_mnist5k`: the default run of README (`raygan train`, tune_configs/default.yaml: a 2x2
  grid of MLPs, 60 generations) with `swd` among its metrics, as a plain run here; its best
  mixture's SWD and the real-data floor (`swd_floor`: two disjoint real samples), x 1e3.
- `machine`: cores, load average, versions, device.

Memory: RSS counts every page a process maps, so the object store's one copy of the data shows
in the RSS of each process that read it; PSS splits each shared page between the processes
mapping it (summed over processes it is the memory in use), USS counts only pages no other
process maps. The driver wrote the data into the object store, so the pages no actor read yet
count in its USS and PSS.

Usage: python bench/data.py [--quick] [--only SECTION ...] [--dir DIR]
(`--quick`: 20,000 images, 1,000 PNGs, 6 generations of the default run; `--dir`: where the
data is written, default a temporary directory, removed at the end)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import CONFIGS, cpu_share, emit, log, machine  # noqa: E402

from raygan.config import DataConfig, RunConfig, config_from_dict, load_config  # noqa: E402

SECTIONS = ("grid_memory", "folder_load", "swd_mnist5k")
MIB = 2**20
SIDE = 64
CHUNK = 10_000  # images written at a time (123 MB)


def write_array(path: Path, n: int) -> None:
    """`n` random (3, 64, 64) uint8 images as one `.npy`, written in chunks (NCHW: the array
    source keeps a memory map of it as it is)."""
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 3, SIDE, SIDE))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        x[start:stop] = rng.integers(0, 256, size=(stop - start, 3, SIDE, SIDE), dtype=np.uint8)
    x.flush()
    del x


def memory_of(pid: int) -> dict[str, float]:
    """RSS, PSS, USS and resident shared memory (object-store pages) of a process, MiB."""
    import psutil  # Ray's own copy, on sys.path once ray is imported

    info = psutil.Process(pid).memory_full_info()
    shmem = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            shmem = int(line.split()[1]) * 1024
    return {"rss": round(info.rss / MIB, 1), "pss": round(info.pss / MIB, 1),
            "uss": round(info.uss / MIB, 1), "shmem": round(shmem / MIB, 1)}


def shm_used() -> int:
    """Bytes in use on /dev/shm (where the object store's memory lives)."""
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def grid_config(path: Path, per_actor: int) -> RunConfig:
    """A 3x3 grid of tiny DCGANs on the array, one generation of 2 batches measured (the
    evaluation is due at generation 2, which is never run)."""
    return config_from_dict({
        "name": "bench_data", "seed": 0,
        "data": {"name": "array", "path": str(path)},
        "networks": {"kind": "dcgan", "dcgan_width": 8, "latent_dim": 16},
        "grid": {"rows": 3, "cols": 3},
        "evolution": {"fitness_sample_size": 64},
        "mixture": {"samples": 64},
        "metrics": {"every": 2, "samples": 64, "names": ["swd"]},
        "training": {"generations": 2, "max_batches": 2, "batch_size": 16, "device": "cpu"},
        "resources": {"backend": "ray", "cells_per_actor": per_actor,
                      "cpus_per_cell": cpu_share(2.0, 9), "torch_threads": 1},
    })


def before_estimate(n: int, cells: int, per_actor: int, baseline_mib: float) -> dict[str, Any]:
    """The old code's memory: each actor held the whole set as float32 and each cell a float32
    copy of its shard (`data.sharding: split`), on top of the process itself (`baseline_mib`,
    the measured actor's private memory without any data)."""
    sample = 3 * SIDE * SIDE * 4
    actors = cells // per_actor
    whole, shard = n * sample, n // cells * sample
    per_actor_bytes = baseline_mib * MIB + whole + per_actor * shard
    return {"run": False, "actors": actors, "per_actor_gib": round(per_actor_bytes / 2**30, 2),
            "whole_set_float32_gib": round(whole / 2**30, 2),
            "shard_float32_gib": round(shard / 2**30, 3),
            "total_gib": round(actors * per_actor_bytes / 2**30, 1),
            "driver": "no data (the old driver did not load it for Ray cells)"}


def grid_memory(quick: bool, workdir: Path) -> dict[str, Any]:
    """Memory of a 3x3 grid on a CelebA-sized array with 1 and 9 cells per actor."""
    import ray

    from raygan.distributed import RayCellPool, ensure_ray
    from raygan.engine.capacity import estimate_memory
    from raygan.engine.controller import Controller
    from raygan.engine.task import prepare

    n = 20_000 if quick else 200_000
    path = workdir / "celeba_sized.npy"
    t0 = time.perf_counter()
    write_array(path, n)
    log(f"grid_memory: wrote {path.stat().st_size / 2**30:.2f} GiB in "
        f"{time.perf_counter() - t0:.0f} s")
    out: dict[str, Any] = {"images": n, "shape": [3, SIDE, SIDE], "dtype": "uint8",
                           "file_bytes": path.stat().st_size, "grid": "3x3",
                           "networks": "dcgan, width 8", "settings": []}
    for per_actor in (1, 9):
        # a fresh Ray each time: the object store keeps freed pages resident in the processes
        # that touched them, which would count the previous setting's copy
        ensure_ray(logging_level="ERROR")
        config = grid_config(path, per_actor)
        shm0 = shm_used()
        t0 = time.perf_counter()
        config, dataset = prepare(config, cells_here=False)
        load_s = time.perf_counter() - t0
        estimate = estimate_memory(config, ray=True, tune=False, dataset=dataset)
        t0 = time.perf_counter()
        pool = RayCellPool(config, dataset=dataset)
        del dataset  # as `train` does: the object store holds the data, the driver lets go
        start_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            Controller(config, pool).step()
            step_s = time.perf_counter() - t0
            actors = [memory_of(ray.get(a.ping.remote())["pid"]) for a in pool.actors]
            driver = memory_of(os.getpid())
            store = shm_used() - shm0
        finally:
            pool.close()
            ray.shutdown()
        pss = driver["pss"] + sum(a["pss"] for a in actors)
        setting = {
            "cells_per_actor": per_actor, "actors": len(actors),
            "after": {"driver_mib": driver, "actors_mib": actors,
                      "object_store_growth_mib": round(store / MIB, 1),
                      "driver_and_actors_pss_gib": round(pss / 1024, 2),
                      "load_s": round(load_s, 2), "pool_start_s": round(start_s, 2),
                      "generation_s": round(step_s, 2)},
            "estimate_after_gib": round(estimate.total / 2**30, 2),
            "estimate": estimate.describe(),
            "before": before_estimate(n, 9, per_actor, min(a["uss"] for a in actors)),
        }
        log(f"grid_memory: {per_actor} per actor: {json.dumps(setting['after'])}")
        out["settings"].append(setting)
    path.unlink()
    return out


def write_pngs(root: Path, n: int) -> None:
    """`n` 64x64 RGB noise PNGs in 10 sub-folders."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(n):
        folder = root / f"{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def folder_load(quick: bool, workdir: Path) -> dict[str, Any]:
    """First (decoding) and cached load of a PNG folder."""
    from raygan.data import load_dataset

    n = 1_000 if quick else 10_000
    root, cache = workdir / "pngs", workdir / "cache"
    t0 = time.perf_counter()
    write_pngs(root, n)
    log(f"folder_load: wrote {n} PNGs in {time.perf_counter() - t0:.0f} s")
    cfg = DataConfig(name="folder", root=str(root), cache_dir=str(cache))
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        dataset = load_dataset(cfg, 0)
        times.append(time.perf_counter() - t0)
        shape, stored = list(dataset.store.shape), dataset.nbytes
        del dataset
    log(f"folder_load: first {times[0]:.1f} s, cached {times[1]:.2f} s")
    files = sum(1 for p in root.rglob("*.png"))
    return {"files": files, "png_bytes": sum(p.stat().st_size for p in root.rglob("*.png")),
            "store_shape": shape, "store_bytes": stored, "first_s": round(times[0], 2),
            "cached_s": round(times[1], 3), "first_files_per_s": round(files / times[0], 1),
            "speedup": round(times[0] / times[1], 1)}


def swd_mnist5k(quick: bool, workdir: Path) -> dict[str, Any]:
    """README's default run with `swd` added to its metrics: SWD and its real-data floor."""
    from raygan.engine.run import train

    config = load_config(CONFIGS / "default.yaml")
    names = [*config.metric_names, "swd"]
    overrides: dict[str, Any] = {"metrics.names": names}
    if quick:
        overrides.update({"training.generations": 6, "metrics.every": 3})
    config = config.replace(**overrides)
    out_dir = workdir / "default_run"
    t0 = time.perf_counter()
    train(config, out_dir, progress=False)
    seconds = time.perf_counter() - t0
    final = json.loads((out_dir / "final.json").read_text())
    best = {k.removeprefix("best/"): v for k, v in final.items() if k.startswith("best/")}
    log(f"swd_mnist5k: {best}")
    t = config.training
    return {"config": "tune_configs/default.yaml", "generations": t.generations,
            "steps_per_network": t.generations * (t.max_batches or 0),
            "full_default_run": not quick, "seconds": round(seconds, 1),
            "swd_x1e3": best.get("swd"), "swd_floor_x1e3": best.get("swd_floor"),
            "best_scores": best}


def main(argv: list[str] | None = None) -> int:
    """Run the sections and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, shorter run")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--dir", help="where the data is written (default: a temporary one)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="raygan-bench-data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sections = {"grid_memory": grid_memory, "folder_load": folder_load,
                "swd_mnist5k": swd_mnist5k}
    result: dict[str, Any] = {"quick": args.quick}
    try:
        for name in args.only or SECTIONS:
            result[name] = sections[name](args.quick, workdir)
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = machine()
    result["seconds"] = round(time.perf_counter() - start, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
