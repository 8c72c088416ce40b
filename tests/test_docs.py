"""README.md is the pitch and links into docs/ (the MkDocs site, `mkdocs build --strict` in
.ci/run checks the links inside it); these check what mkdocs does not read."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
"""A markdown link's target and optional anchor."""


def _relative_links(page: Path) -> list[str]:
    return [t for t, _ in LINK.findall(page.read_text()) if "://" not in t]


def test_readme_links_into_every_docs_page_and_the_links_resolve() -> None:
    readme = REPO / "README.md"
    links = _relative_links(readme)
    assert [t for t in links if not (REPO / t).exists()] == []
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")}
    assert len(pages) >= 8 and pages <= set(links)
    assert "examples/README.md" in links
    for page in [REPO / "examples" / "README.md", REPO / "cluster" / "README.md"]:
        assert [t for t in _relative_links(page) if not (page.parent / t).exists()] == []


def test_readme_keeps_the_set_up_commands_and_a_python_example() -> None:
    text = (REPO / "README.md").read_text()
    for command in ("pip install torch==2.14.1 torchvision==0.29.1 && pip install -e '.[dev]' "
                    "&& raygan train",
                    "pip install torch==2.14.1 torchvision==0.29.1 && pip install -e '.[dev]' "
                    "&& python3 -m pytest -q"):
        assert f"```bash\n{command}\n```" in text
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    compile(code, "README.md", "exec")  # it parses
    for name in ("raygan.load_config(", "raygan.train(", ".export("):
        assert name in code
    assert len(text.splitlines()) < 120  # the reference lives in docs/


def test_the_site_lists_every_docs_page() -> None:
    site = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    listed = {page for entry in site["nav"] for page in entry.values()}
    assert listed == {p.name for p in (REPO / "docs").glob("*.md")}
    assert any("mkdocstrings" in str(p) for p in site["plugins"])
    assert "::: raygan.api.train" in (REPO / "docs" / "api.md").read_text()
