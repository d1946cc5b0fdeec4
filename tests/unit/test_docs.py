"""The README and docs/*.md stand alone: every relative link resolves to a file of the repository
(and its #anchor to a heading of that file), nothing points outside the repository, no table is
split by a blank line, and the README stays a short front page."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            code = not code
            continue
        if not code:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for line in _prose(path.read_text())
            if (m := re.match(r"^#{1,6} (.*)", line))}


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_links_resolve_inside_the_repository(doc):
    text = "\n".join(_prose(doc.read_text()))
    assert "../shared" not in text and "DESIGN.md" not in text, "points outside the repository"
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        assert dest.is_relative_to(ROOT), f"{target}: outside the repository"
        assert dest.exists(), f"{target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{target}: no such heading in {dest.name}"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_no_table_split_by_a_blank_line(doc):
    lines = _prose(doc.read_text())
    for i in range(1, len(lines) - 1):
        if lines[i] == "" and lines[i - 1].startswith("|") and lines[i + 1].startswith("|"):
            assert re.match(r"^\|[-| :]+\|$", lines[i + 2] if i + 2 < len(lines) else ""), \
                f"{doc.name}:{i + 1}: a table split by a blank line"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 12_000
    first = [line for line in text.splitlines() if line.startswith("python3 -m venv")]
    assert first[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python run.py --sim",
        "python3 -m venv .venv && .venv/bin/pip install -q -r requirements-dev.txt && .venv/bin/python -m pytest -q"]
    # the README's test command is the one CI runs
    assert first[1] in (ROOT / ".ci" / "run").read_text()
    linked = set(LINK.findall(text))
    for doc in (ROOT / "docs").glob("*.md"):
        assert any(t.split("#")[0] == f"docs/{doc.name}" for t in linked), f"README does not link {doc.name}"
