"""The project's pages as a reader meets them: short enough to read (the root README under 1,500 words,
each domain's under 1,200, the history kept in models/<domain>/results/), every relative link landing on
a file of the repository, and no page pointing outside it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOMAIN_READMES = sorted((ROOT / "models").glob("*/README.md"))
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "models").rglob("*.md")),
         *sorted((ROOT / "checkpoints").glob("*/README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def words(path: Path) -> int:
    return len(path.read_text().split())


def test_the_root_readme_is_short():
    assert words(ROOT / "README.md") < 1500


@pytest.mark.parametrize("readme", DOMAIN_READMES, ids=lambda p: p.parent.name)
def test_each_domain_readme_is_a_short_page(readme):
    assert words(readme) < 1200, f"{readme.relative_to(ROOT)}: {words(readme)} words (history goes in results/)"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_land_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the page
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.relative_to(ROOT)} links outside the repository: {target}"
        assert path.exists(), f"{page.relative_to(ROOT)} links to a missing file: {target}"
