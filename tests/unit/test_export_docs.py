"""docs/export.md's examples run: each ```python block of its "Reading it" section, against a real
export of a recording of real captures (tests/support/recordings.py's), prints exactly the ```text
block that follows it. pandas, polars and DuckDB are the pinned ones of requirements-dev.txt."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.support.recordings import build_recording

DOC = Path(__file__).resolve().parents[2] / "docs" / "export.md"
BLOCK = re.compile(r"```python\n(.*?)```\s*```text\n(.*?)```", re.S)
PLACEHOLDER = 'OUT = "data/export"'


def examples() -> list[tuple[str, str]]:
    text = DOC.read_text()
    return BLOCK.findall(text[text.index("## Reading it"):])


def test_the_doc_has_one_example_per_library():
    libs = [re.search(r"^import (\w+)", code, re.M).group(1) for code, _ in examples()]
    assert libs == ["pandas", "polars", "duckdb"]
    assert all(PLACEHOLDER in code for code, _ in examples())


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    pytest.importorskip("pyarrow")
    from actors.tools.export import export
    tmp = tmp_path_factory.mktemp("docs")
    build_recording(tmp / "rec")
    export(tmp / "rec", tmp / "out", progress=False)
    return tmp / "out"


@pytest.mark.parametrize("i", range(3), ids=["pandas", "polars", "duckdb"])
def test_doc_example_prints_what_the_doc_says(export_dir, i):
    code, want = examples()[i]
    pytest.importorskip(re.search(r"^import (\w+)", code, re.M).group(1))
    code = code.replace(PLACEHOLDER, f"OUT = {str(export_dir)!r}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, f"docs/export.md example {i}", "exec"), {})
    assert buf.getvalue() == want
