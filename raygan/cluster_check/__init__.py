"""Offline checks of the cluster files in `cluster/`: no cloud account, no Kubernetes needed.

Cluster launcher files (`cluster/aws-gpu.yaml`, `cluster/gcp-gpu.yaml`) go through Ray's own
validation, the part of `ray up` that runs before it contacts the cloud
(`prepare_config` + `validate_config` of the installed Ray), then through raygan's rules.
KubeRay files (`cluster/kuberay/*.yaml`) are parsed and held to raygan's rules. Each rule has a
name, so a failure says which rule broke:

    python -m raygan.cluster_check                      # every file under cluster/
    python -m raygan.cluster_check cluster/aws-gpu.yaml --strict

`--strict` also fails on placeholders left in a file (`YOUR-BUCKET`, `YOUR-PROJECT-ID`): use
it on your edited copy before `ray up` or `kubectl apply`. Ray is imported only by the schema
check, so the rules themselves run without it.

Modules: `common` (`Problem`, the Ray pin, image and pip helpers, placeholders), `launcher`
(Ray's validation and the launcher rules), `kuberay` (the KubeRay rules), `files` (loading
a file and sending each document to its rules) and `cli` (the command).
"""

from __future__ import annotations

from raygan.cluster_check.cli import main
from raygan.cluster_check.common import (
    PLACEHOLDER,
    RAY_IMAGE,
    REPO_ROOT,
    Problem,
    pinned_ray_version,
    placeholders,
)
from raygan.cluster_check.files import check_document, check_file, default_files, load_documents
from raygan.cluster_check.kuberay import KUBERAY_CHECKS, check_kuberay
from raygan.cluster_check.launcher import (
    LAUNCHER_CHECKS,
    LOCALHOST,
    STORAGE_SCHEMES,
    check_launcher,
    ray_validate,
)

__all__ = [
    "KUBERAY_CHECKS",
    "LAUNCHER_CHECKS",
    "LOCALHOST",
    "PLACEHOLDER",
    "RAY_IMAGE",
    "REPO_ROOT",
    "STORAGE_SCHEMES",
    "Problem",
    "check_document",
    "check_file",
    "check_kuberay",
    "check_launcher",
    "default_files",
    "load_documents",
    "main",
    "pinned_ray_version",
    "placeholders",
    "ray_validate",
]
