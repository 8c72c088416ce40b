"""KubeRay files (`cluster/kuberay/*.yaml`): RayCluster and RayJob resources.

A document is parsed (no Kubernetes needed) and held to raygan's rules (`KUBERAY_CHECKS`).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from raygan.cluster_check.common import RAY_IMAGE, REPO_ROOT, Problem, image_problem

# every rule, in the order they are reported
KUBERAY_CHECKS: tuple[str, ...] = (
    "kuberay-api",
    "ray-version",
    "autoscaling",
    "workers-min-max",
    "gpu-workers",
    "head-resources",
    "dev-shm",
    "auth-token",
    "entrypoint",
)


# -- reading a resource ---------------------------------------------------------------------
def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The RayCluster spec: a RayCluster's `spec`, a RayJob's `spec.rayClusterSpec`."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayJob":
        return spec.get("rayClusterSpec")
    return spec


def _pod_spec(group: dict[str, Any]) -> dict[str, Any]:
    """The pod spec (`template.spec`) of a head or worker group; {} if it has none."""
    return ((group.get("template") or {}).get("spec")) or {}


def _gpu_limit(container: dict[str, Any]) -> float:
    """A container's `nvidia.com/gpu` limit (else request); 0 if unset or not a number."""
    resources = container.get("resources") or {}
    for part in ("limits", "requests"):
        value = (resources.get(part) or {}).get("nvidia.com/gpu")
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                return 0
    return 0


def _has_dev_shm(pod: dict[str, Any]) -> bool:
    """Whether the pod's Ray container mounts an in-memory emptyDir volume at /dev/shm."""
    memory_volumes = {
        v.get("name")
        for v in pod.get("volumes") or []
        if isinstance(v, dict) and ((v.get("emptyDir") or {}).get("medium") == "Memory")
    }
    containers = pod.get("containers") or []
    return bool(containers) and all(
        any(
            m.get("mountPath") == "/dev/shm" and m.get("name") in memory_volumes
            for m in c.get("volumeMounts") or []
        )
        for c in containers[:1]  # the Ray container (KubeRay: the first one)
    )


# -- the rules ------------------------------------------------------------------------------
def _entrypoint_problems(doc: dict[str, Any], repo_root: Path | None) -> list[Problem]:
    """The entrypoint rule of a RayJob.

    The entrypoint runs `python -m raygan train CONFIG [--set K=V ...] --storage BUCKET`, the
    config (with its overrides) loads, and the runtime env brings the sources (working_dir).
    """
    spec = doc.get("spec") or {}
    entry = str(spec.get("entrypoint") or "")
    problems = []
    if "python -m raygan train" not in entry:
        problems.append(
            Problem(
                "entrypoint",
                f"the entrypoint must run `python -m raygan train CONFIG` (the cluster's "
                f"python, not a bare `raygan` or another script), got {entry!r}",
            )
        )
        return problems
    tokens = shlex.split(entry)
    rest = tokens[tokens.index("train") + 1:] if "train" in tokens else []
    config = next((t for t in rest if t.endswith((".yaml", ".yml"))), None)
    if config is None:
        problems.append(Problem("entrypoint", "the entrypoint names no YAML config"))
    elif repo_root is not None:
        from raygan.config import ConfigError, load_config

        overrides = [rest[i + 1] for i, t in enumerate(rest[:-1]) if t == "--set"]
        try:
            load_config(repo_root / config, overrides)
        except (ConfigError, OSError) as exc:
            problems.append(
                Problem("entrypoint", f"the entrypoint's config {config} does not load: {exc}")
            )
    storage = rest[rest.index("--storage") + 1] if "--storage" in rest[:-1] else next(
        (t.split("=", 1)[1] for t in rest if t.startswith("--storage=")), ""
    )
    if not storage.startswith(("s3://", "gs://")):
        problems.append(
            Problem(
                "entrypoint",
                f"the entrypoint must write to a bucket (--storage s3://... or gs://...), "
                f"got {storage!r}",
            )
        )
    try:
        runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "") or {}
    except yaml.YAMLError as exc:
        problems.append(Problem("entrypoint", f"runtimeEnvYAML is not YAML: {exc}"))
        return problems
    if not isinstance(runtime_env, dict) or not runtime_env.get("working_dir"):
        problems.append(
            Problem(
                "entrypoint",
                "runtimeEnvYAML must set working_dir (the raygan sources and tune_configs/)",
            )
        )
    return problems


def _kuberay_images(
    spec: dict[str, Any], pods: list[tuple[str, dict[str, Any]]], ray_version: str
) -> list[Problem]:
    """ray-version: `rayVersion` and every Ray image at the pin."""
    problems = []
    if str(spec.get("rayVersion")) != ray_version:
        problems.append(
            Problem(
                "ray-version",
                f"rayVersion is {spec.get('rayVersion')!r}, raygan pins ray=={ray_version}",
            )
        )
    for where, pod in pods:
        for i, container in enumerate(pod.get("containers") or []):
            image = str(container.get("image") or "")
            problem = image_problem(image, ray_version, f"{where} container {i}")
            if problem:
                problems.append(problem)
            elif i == 0 and not RAY_IMAGE.search(image):
                problems.append(
                    Problem(
                        "ray-version",
                        f"{where}: the Ray container runs {image!r}, not a rayproject/ray:"
                        f"{ray_version}-... image",
                    )
                )
    return problems


def _kuberay_groups(groups: list[dict[str, Any]]) -> list[Problem]:
    """workers-min-max and gpu-workers (some GPU group, scaling from zero)."""
    problems = []
    gpu_groups = 0
    for group in groups:
        name = group.get("groupName")
        low, high = group.get("minReplicas", 0), group.get("maxReplicas")
        replicas = group.get("replicas", low)
        bounds: tuple[int, int] | None = None
        if isinstance(low, int) and isinstance(high, int) and low <= high:
            bounds = (low, high)
        if bounds is None:
            problems.append(
                Problem(
                    "workers-min-max",
                    f"{name}: need minReplicas <= maxReplicas, got {low}..{high}",
                )
            )
        elif isinstance(replicas, int) and not bounds[0] <= replicas <= bounds[1]:
            problems.append(
                Problem("workers-min-max", f"{name}: replicas {replicas} outside {low}..{high}")
            )
        containers = _pod_spec(group).get("containers") or []
        if containers and _gpu_limit(containers[0]) >= 1:
            gpu_groups += 1
            # bounds None: workers-min-max says so
            if bounds is not None and (bounds[0] != 0 or bounds[1] < 1):
                problems.append(
                    Problem(
                        "gpu-workers",
                        f"{name}: a GPU group must scale from zero (minReplicas 0, "
                        f"maxReplicas >= 1), got {low}..{high}",
                    )
                )
    if not gpu_groups:
        problems.append(
            Problem("gpu-workers", "no worker group's Ray container has an nvidia.com/gpu limit")
        )
    return problems


def _kuberay_head(head: dict[str, Any]) -> list[Problem]:
    """head-resources: the head's `ray start` offers no CPU and no GPU."""
    problems = []
    params = {str(k): str(v) for k, v in (head.get("rayStartParams") or {}).items()}
    if params.get("num-cpus") != "0":
        problems.append(
            Problem(
                "head-resources",
                'headGroupSpec.rayStartParams must set num-cpus: "0" (no cells or trials on '
                f"the head), got {params.get('num-cpus')!r}",
            )
        )
    if params.get("num-gpus", "0") != "0":
        problems.append(Problem("head-resources", "the head offers GPUs to cells"))
    return problems


def check_kuberay(
    doc: dict[str, Any], ray_version: str, repo_root: Path | None = REPO_ROOT
) -> list[Problem]:
    """All KubeRay rules (`KUBERAY_CHECKS`) for one RayCluster or RayJob document.

    Args:
        doc: the loaded resource.
        ray_version: the Ray version raygan pins.
        repo_root: where a RayJob's config path is looked up; None skips loading it.
    """
    kind = doc.get("kind")
    if doc.get("apiVersion") != "ray.io/v1" or kind not in ("RayCluster", "RayJob"):
        return [
            Problem(
                "kuberay-api",
                f"expected apiVersion ray.io/v1 and kind RayCluster or RayJob, got "
                f"{doc.get('apiVersion')!r} {kind!r}",
            )
        ]
    spec = _cluster_spec(doc)
    if not isinstance(spec, dict):
        return [Problem("kuberay-api", "a RayJob needs spec.rayClusterSpec (its own cluster)")]
    head = spec.get("headGroupSpec") or {}
    groups = [g for g in spec.get("workerGroupSpecs") or [] if isinstance(g, dict)]
    pods = [("head", _pod_spec(head))] + [
        (f"worker group {g.get('groupName')}", _pod_spec(g)) for g in groups
    ]
    problems = _kuberay_images(spec, pods, ray_version)
    if spec.get("enableInTreeAutoscaling") is not True:
        problems.append(Problem("autoscaling", "enableInTreeAutoscaling must be true"))
    problems += _kuberay_groups(groups) + _kuberay_head(head)
    problems += [
        Problem(
            "dev-shm",
            f"{where}: mount an emptyDir volume with medium Memory at /dev/shm in the Ray "
            "container (the object store and torch use shared memory)",
        )
        for where, pod in pods
        if not _has_dev_shm(pod)
    ]
    if (spec.get("authOptions") or {}).get("mode") != "token":
        problems.append(Problem("auth-token", "authOptions.mode must be token"))
    if kind == "RayJob":
        problems += _entrypoint_problems(doc, repo_root)
    return problems
