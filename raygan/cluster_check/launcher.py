"""Cluster launcher files (`cluster/aws-gpu.yaml`, `cluster/gcp-gpu.yaml`).

A file goes through Ray's own validation first, the part of `ray up` that runs before it
contacts the cloud (`ray_validate`), then through raygan's rules (`LAUNCHER_CHECKS`) on the
config Ray prepared.
"""

from __future__ import annotations

import copy
import logging
import re
import shlex
from typing import Any

from raygan.cluster_check.common import RAY_IMAGE, Problem, image_problem, pip_problems

# every rule, in the order they are reported
LAUNCHER_CHECKS: tuple[str, ...] = (
    "ray-schema",
    "workers-min-max",
    "gpu-workers",
    "spot",
    "ray-version",
    "head-resources",
    "dashboard-localhost",
    "storage",
    "bucket-access",
)
LOCALHOST = ("127.0.0.1", "localhost", "::1")
STORAGE_SCHEMES = {"aws": "s3://", "gcp": "gs://"}


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """Run the offline half of `ray up` on a launcher config and return the prepared config.

    `prepare_config` merges the provider's defaults (a file shipped with Ray) and fills
    per-type min/max workers; `validate_config` checks the result against Ray's JSON schema
    and cross-field rules. Neither contacts the cloud (`bootstrap_config`, which does, is not
    called).

    Raises:
        jsonschema.ValidationError, ValueError: what Ray raises for an invalid config.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    util_logger = logging.getLogger("ray.autoscaler._private.util")
    level = util_logger.level
    util_logger.setLevel(logging.WARNING)  # "setting max workers for head node type to 0"
    try:
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    finally:
        util_logger.setLevel(level)
    return prepared


# -- reading a node type and a command ------------------------------------------------------
def _number(value: Any) -> float:
    """A YAML number as a float; 0 for anything else (missing, bool, string)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _spot(provider: str, node_config: dict[str, Any]) -> bool:
    """Whether a node type's `node_config` asks for spot (preemptible) instances."""
    if provider == "aws":
        market = node_config.get("InstanceMarketOptions") or {}
        return str(market.get("MarketType", "")).lower() == "spot"
    if provider == "gcp":
        scheduling = node_config.get("scheduling") or {}
        entries = scheduling if isinstance(scheduling, list) else [scheduling]
        return any(
            isinstance(e, dict)
            and (e.get("preemptible") is True or str(e.get("provisioningModel")) == "SPOT")
            for e in entries
        )
    return True  # other providers: no spot rule


def _bucket_access(provider: str, node_config: dict[str, Any]) -> bool:
    """Whether a node type's instances get credentials that can write to the bucket."""
    if provider == "aws":
        profile = node_config.get("IamInstanceProfile") or {}
        return bool(profile.get("Name") or profile.get("Arn"))
    if provider == "gcp":
        storage_scopes = (
            "https://www.googleapis.com/auth/cloud-platform",
            "https://www.googleapis.com/auth/devstorage.read_write",
            "https://www.googleapis.com/auth/devstorage.full_control",
        )
        accounts = node_config.get("serviceAccounts") or []
        return any(
            account.get("email") and any(s in storage_scopes for s in account.get("scopes", []))
            for account in accounts
            if isinstance(account, dict)
        )
    return True


def _start_flags(command: str) -> dict[str, str]:
    """`--flag=value` / `--flag value` pairs of the `ray start` in a shell command."""
    flags: dict[str, str] = {}
    for part in re.split(r"[;&|]+", command):
        try:
            tokens = shlex.split(part)
        except ValueError:
            tokens = part.split()
        if tokens[:2] != ["ray", "start"]:
            continue
        i = 2
        while i < len(tokens):
            token = tokens[i]
            if token.startswith("--"):
                name, sep, value = token[2:].partition("=")
                if not sep and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                    value = tokens[i + 1]
                    i += 1
                flags[name] = value if (sep or value) else "true"
            i += 1
    return flags


def _launcher_commands(config: dict[str, Any]) -> list[str]:
    """Every initialization and setup command of a config, global and per node type."""
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
    )
    commands = [c for key in keys for c in config.get(key) or []]
    for node_type in (config.get("available_node_types") or {}).values():
        for key in ("initialization_commands", "worker_setup_commands"):
            commands.extend(node_type.get(key) or [])
    return commands


# -- the rules ------------------------------------------------------------------------------
def _launcher_min_max(types: dict[str, dict[str, Any]]) -> list[Problem]:
    """workers-min-max: no node type with min_workers > max_workers."""
    problems = []
    for name, node_type in types.items():
        low, high = node_type.get("min_workers", 0), node_type.get("max_workers", 0)
        if low > high:
            problems.append(
                Problem("workers-min-max", f"{name}: min_workers {low} > max_workers {high}")
            )
    return problems


def _launcher_gpu_workers(
    provider: str, gpu_types: dict[str, dict[str, Any]]
) -> list[Problem]:
    """gpu-workers (some, each scaling from zero) and spot."""
    problems = []
    if not gpu_types:
        problems.append(Problem("gpu-workers", "no worker type offers a GPU (resources: GPU)"))
    for name, node_type in gpu_types.items():
        low, high = node_type.get("min_workers", 0), node_type.get("max_workers", 0)
        if low <= high and (low != 0 or high < 1):  # low > high: workers-min-max says so
            problems.append(
                Problem(
                    "gpu-workers",
                    f"{name}: a GPU type must scale from zero (min_workers 0, max_workers >= 1), "
                    f"got {low}..{high}",
                )
            )
        if not _spot(provider, node_type["node_config"]):
            what = (
                "InstanceMarketOptions: {MarketType: spot}"
                if provider == "aws"
                else "scheduling: {provisioningModel: SPOT}"
            )
            problems.append(Problem("spot", f"{name}: GPU workers are not spot ({what})"))
    return problems


def _launcher_ray_version(prepared: dict[str, Any], ray_version: str) -> list[Problem]:
    """Every rayproject/ray image and pip-installed ray at the pin, and at least one of them."""
    problems = []
    docker = prepared.get("docker") or {}
    images = [
        (f"docker.{key}", str(docker[key]))
        for key in ("image", "head_image", "worker_image")
        if docker.get(key)
    ]
    for name, node_type in prepared["available_node_types"].items():
        image = (node_type.get("docker") or {}).get("worker_image")
        if image:
            images.append((f"{name}.docker.worker_image", str(image)))
    pinned = 0
    for where, image in images:
        problem = image_problem(image, ray_version, where)
        if problem:
            problems.append(problem)
        elif RAY_IMAGE.search(image):
            pinned += 1
    pip_found, pip_pinned = pip_problems(
        _launcher_commands(prepared), ray_version, "setup commands"
    )
    problems.extend(pip_found)
    if not problems and pinned + pip_pinned == 0:
        problems.append(
            Problem(
                "ray-version",
                f"neither a rayproject/ray:{ray_version}-... image nor a setup command "
                f"`pip install ray[default]=={ray_version}` fixes the cluster's Ray version",
            )
        )
    return problems


def _launcher_head(prepared: dict[str, Any]) -> list[Problem]:
    """head-resources: the head offers no CPU or GPU, in its node type and its `ray start`."""
    problems = []
    head = prepared["head_node_type"]
    resources = prepared["available_node_types"][head].get("resources") or {}
    if "CPU" not in resources or _number(resources["CPU"]) != 0:
        problems.append(
            Problem(
                "head-resources",
                f"{head}: the head must offer no CPU to cells and trials (resources: {{CPU: 0}}), "
                f"got {resources}",
            )
        )
    if _number(resources.get("GPU")) != 0:
        problems.append(Problem("head-resources", f"{head}: the head offers GPUs to cells"))
    for command in prepared.get("head_start_ray_commands") or []:
        flags = _start_flags(command)
        for flag in ("num-cpus", "num-gpus"):
            if flag in flags and flags[flag] not in ("0", "0.0"):
                problems.append(
                    Problem("head-resources", f"head start command sets --{flag}={flags[flag]}")
                )
    return problems


def _launcher_dashboard(prepared: dict[str, Any]) -> list[Problem]:
    """dashboard-localhost: a `ray start --head`, its dashboard bound to localhost."""
    problems = []
    starts = [_start_flags(c) for c in prepared.get("head_start_ray_commands") or []]
    starts = [flags for flags in starts if "head" in flags]
    if not starts:
        problems.append(
            Problem("dashboard-localhost", "head_start_ray_commands has no `ray start --head`")
        )
    for flags in starts:
        host = flags.get("dashboard-host", "127.0.0.1")  # Ray's default is localhost
        if host not in LOCALHOST:
            problems.append(
                Problem(
                    "dashboard-localhost",
                    f"the dashboard listens on {host}; bind it to 127.0.0.1 and use "
                    "`ray dashboard CLUSTER.yaml` (an SSH tunnel)",
                )
            )
    return problems


def _launcher_storage(prepared: dict[str, Any], provider: str) -> list[Problem]:
    """storage: `metadata.raygan.storage_path` is a bucket URI of the provider's cloud."""
    scheme = STORAGE_SCHEMES.get(provider)
    storage = ((prepared.get("metadata") or {}).get("raygan") or {}).get("storage_path")
    if scheme and not (isinstance(storage, str) and storage.startswith(scheme)):
        return [
            Problem(
                "storage",
                f"metadata.raygan.storage_path must be a {scheme} URI on {provider}, "
                f"got {storage!r}",
            )
        ]
    return []


def _launcher_bucket_access(
    provider: str, gpu_types: dict[str, dict[str, Any]]
) -> list[Problem]:
    """Trials on the workers upload their results and checkpoints to the bucket themselves."""
    what = "IamInstanceProfile" if provider == "aws" else "serviceAccounts with a storage scope"
    return [
        Problem("bucket-access", f"{name}: workers cannot write to the bucket ({what})")
        for name, node_type in gpu_types.items()
        if not _bucket_access(provider, node_type["node_config"])
    ]


def check_launcher(config: dict[str, Any], ray_version: str) -> list[Problem]:
    """All launcher rules (`LAUNCHER_CHECKS`) for one loaded cluster launcher config.

    Ray's validation comes first; when Ray rejects the config, that is the only problem
    reported (the other rules read the config Ray prepared).
    """
    try:
        prepared = ray_validate(config)
    except Exception as exc:  # noqa: BLE001  (any rejection by Ray is a finding)
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        return [Problem("ray-schema", f"Ray {ray_version} rejects the config: {first_line}")]
    provider = str(prepared["provider"].get("type"))
    types: dict[str, dict[str, Any]] = prepared["available_node_types"]
    gpu_types = {
        name: node_type
        for name, node_type in types.items()
        if name != prepared["head_node_type"] and _number(node_type["resources"].get("GPU")) >= 1
    }
    return (
        _launcher_min_max(types)
        + _launcher_gpu_workers(provider, gpu_types)
        + _launcher_ray_version(prepared, ray_version)
        + _launcher_head(prepared)
        + _launcher_dashboard(prepared)
        + _launcher_storage(prepared, provider)
        + _launcher_bucket_access(provider, gpu_types)
    )
