"""Cluster files on disk: loading their YAML documents and sending each to its rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from raygan.cluster_check.common import REPO_ROOT, Problem, pinned_ray_version
from raygan.cluster_check.kuberay import check_kuberay
from raygan.cluster_check.launcher import check_launcher


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file (KubeRay files may hold several).

    Raises:
        ValueError: if a document is not a mapping.
    """
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a document is not a mapping")
    return docs


def check_document(
    doc: dict[str, Any], ray_version: str, repo_root: Path | None = REPO_ROOT
) -> list[Problem]:
    """Launcher rules for a document with `provider`, KubeRay rules for one with `apiVersion`."""
    if "apiVersion" in doc or "kind" in doc:
        return check_kuberay(doc, ray_version, repo_root)
    if "provider" in doc:
        return check_launcher(doc, ray_version)
    return [Problem("kuberay-api", "neither a launcher config (provider) nor a KubeRay resource")]


def check_file(
    path: Path, ray_version: str | None = None, repo_root: Path | None = REPO_ROOT
) -> list[Problem]:
    """Every rule for every document of one file; [] when it passes."""
    version = ray_version or pinned_ray_version()
    try:
        docs = load_documents(path)
    except (yaml.YAMLError, ValueError, OSError) as exc:
        return [Problem("yaml", str(exc))]
    if not docs:
        return [Problem("yaml", f"{path}: empty")]
    return [p for doc in docs for p in check_document(doc, version, repo_root)]


def default_files(root: Path = REPO_ROOT) -> list[Path]:
    """The shipped cluster files: `cluster/*.yaml` and `cluster/kuberay/*.yaml`.

    Runtime env files (`runtime_env*.yaml`) are not cluster files and are left out.
    """
    files = sorted((root / "cluster").glob("*.yaml")) + sorted(
        (root / "cluster" / "kuberay").glob("*.yaml")
    )
    return [f for f in files if not f.name.startswith("runtime_env")]
