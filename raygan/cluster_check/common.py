"""What the launcher and KubeRay rules share: `Problem`, the Ray pin, images, pip, placeholders."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
RAY_IMAGE = re.compile(r"rayproject/ray(?:-ml|-llm)?(?::(?P<tag>[\w.\-]+))?")
PLACEHOLDER = re.compile(r"YOUR[-_][A-Z0-9_-]+")
_PIP_INSTALL = re.compile(r"\bpip3?\s+install\b(?P<args>[^;&|]*)")
# `ray`, `ray[default]==2.60.0`, `ray[default] @ https://...` (not `raygan`, not `ray-foo`)
_RAY_REQUIREMENT = re.compile(
    r"^ray(?:\[[^\]]*\])?(?P<spec>(?:\s*(?:[=<>!~]=?|@|;).*)?)$", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class Problem:
    """One broken rule in one file."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


# -- the Ray version raygan pins ------------------------------------------------------------
def _ray_pin(requirements: list[str]) -> str | None:
    """The X of the first `ray[...]==X` among requirement strings, else None."""
    for text in requirements:
        match = re.match(r"^\s*ray(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)", text)
        if match:
            return match.group(1)
    return None


def pinned_ray_version(pyproject: Path | None = None) -> str:
    """The Ray version of the `ray[...]==X` requirement in raygan's dependencies.

    Read from `pyproject.toml` of the source checkout (or the file given), else from the
    installed package's metadata.

    Raises:
        LookupError: if no exact Ray pin is found.
    """
    path = pyproject or REPO_ROOT / "pyproject.toml"
    if path.is_file():
        data = tomllib.loads(path.read_text())
        pin = _ray_pin(list(data.get("project", {}).get("dependencies", [])))
        if pin:
            return pin
        raise LookupError(f"{path}: no `ray[...]==VERSION` in [project] dependencies")
    requirements = importlib.metadata.requires("raygan") or []
    pin = _ray_pin([r for r in requirements if "extra ==" not in r])
    if pin:
        return pin
    raise LookupError("raygan's metadata has no `ray[...]==VERSION` requirement")


# -- placeholders ---------------------------------------------------------------------------
def _strings(node: Any) -> Iterator[str]:
    """Every string in a loaded YAML tree (mapping values and list items, depth first)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def placeholders(node: Any) -> list[str]:
    """Placeholders such as `YOUR-BUCKET` left in a loaded file, each once, in order."""
    found: list[str] = []
    for text in _strings(node):
        for match in PLACEHOLDER.findall(text):
            if match not in found:
                found.append(match)
    return found


# -- Ray images and pip-installed Ray -------------------------------------------------------
def image_problem(image: str, ray_version: str, where: str) -> Problem | None:
    """A `ray-version` problem if `image` is a rayproject/ray image of another Ray version.

    Args:
        image: the container image, e.g. `rayproject/ray:2.60.0-py311-gpu`.
        ray_version: the Ray version raygan pins.
        where: the place of the image in the file, for the message.

    Returns:
        None for an image at the pin or one that is not a rayproject/ray image.
    """
    match = RAY_IMAGE.search(image)
    if not match:
        return None
    tag = match.group("tag") or "latest"
    if tag == ray_version or tag.startswith(ray_version + "-"):
        return None
    return Problem(
        "ray-version",
        f"{where}: image {image!r} is not Ray {ray_version} (raygan pins ray=={ray_version}; "
        f"use a tag such as {ray_version}-py311-gpu)",
    )


def _pip_ray_specs(command: str) -> list[str]:
    """The `ray...` requirements a shell command pip-installs, e.g. `['ray[default]==2.60.0']`."""
    specs = []
    for match in _PIP_INSTALL.finditer(command):
        try:
            tokens = shlex.split(match.group("args"))
        except ValueError:
            tokens = match.group("args").split()
        for token in tokens:
            if not token.startswith("-") and _RAY_REQUIREMENT.match(token.strip()):
                specs.append(token.strip())
    return specs


def pip_problems(commands: list[str], ray_version: str, where: str) -> tuple[list[Problem], int]:
    """`ray-version` problems of the Ray requirements that shell commands pip-install.

    Args:
        commands: shell commands (setup commands of a launcher file).
        ray_version: the Ray version raygan pins.
        where: the place of the commands in the file, for the messages.

    Returns:
        One problem per requirement not pinned to `ray_version`, and how many are pinned to it.
    """
    problems, pinned = [], 0
    for command in commands:
        for spec in _pip_ray_specs(command):
            found = _RAY_REQUIREMENT.match(spec)
            rest = found.group("spec").strip() if found else ""
            if re.fullmatch(rf"==\s*{re.escape(ray_version)}", rest):
                pinned += 1
            else:
                problems.append(
                    Problem(
                        "ray-version",
                        f"{where}: `{spec}` does not install Ray {ray_version} "
                        f"(write ray[default]=={ray_version})",
                    )
                )
    return problems, pinned
