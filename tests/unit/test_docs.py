"""The repository stands alone: README, CONTRIBUTING and the docs link only files inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_stay_inside_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto: ... are not files
            continue
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT.resolve()), f"{page.name} links {target}, outside the repository"
        assert "shared" not in resolved.relative_to(ROOT.resolve()).parts[:1], f"{page.name} links {target}"
