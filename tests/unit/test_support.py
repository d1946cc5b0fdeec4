"""The test suite's own rules and helpers: no test module imports another test module (shared code
lives in tests/support or a conftest.py), `need` fails loudly under CI and skips locally, and
wait_for returns what it waited for or fails naming it."""
from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest

from tests.support import fixtures
from tests.support.wait import wait_for, wait_for_async

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(mod: str) -> bool:
    last = mod.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def _imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every module `path` (under the package dir `root`) imports, relative imports resolved,
    with its line. `from a import b` yields both a and a.b (b may be a module)."""
    pkg = ".".join(path.relative_to(root.parent).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                parts = parts[:len(parts) - node.level + 1]      # level 1 is the package itself
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def cross_imports(root: Path = TESTS) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for line, mod in _imported_modules(path, root):
            if mod.startswith("tests.") and _is_test_module(mod):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {mod}")
    return bad


def test_no_test_module_imports_another_test_module():
    bad = cross_imports()
    assert bad == [], "move what is shared to tests/support or a conftest.py:\n" + "\n".join(bad)


def test_the_cross_import_check_sees_every_form(tmp_path):
    pkg = tmp_path / "tests" / "unit"
    pkg.mkdir(parents=True)
    (pkg / "test_a.py").write_text("X = 1\n")
    (pkg / "test_b.py").write_text("from .test_a import X\n")
    (pkg / "test_c.py").write_text("from tests.unit import test_a\n")
    (pkg / "test_d.py").write_text("import tests.unit.conftest\n")
    (pkg / "test_e.py").write_text("from tests.support.wait import wait_for\nfrom . import helpers\n")
    assert cross_imports(tmp_path / "tests") == [
                   "tests/unit/test_b.py:1 imports tests.unit.test_a",
                   "tests/unit/test_c.py:1 imports tests.unit.test_a",
                   "tests/unit/test_d.py:1 imports tests.unit.conftest"]


# --- need: loud under CI, a skip locally --------------------------------------------------------

def test_need_returns_a_present_capture(tmp_path):
    p = tmp_path / "capture.log"
    p.write_bytes(b"x")
    assert fixtures.need(p) == p


def test_need_skips_locally_with_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    missing = tmp_path / "absent.log"
    with pytest.raises(pytest.skip.Exception, match=str(missing)):
        fixtures.need(missing)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_need_fails_under_ci_with_the_path(tmp_path, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    missing = tmp_path / "absent.log"
    with pytest.raises(pytest.fail.Exception, match=f"missing under CI: {missing}"):
        fixtures.need(missing)
    with pytest.raises(pytest.fail.Exception, match=str(missing)):
        fixtures.need(missing, module=True)


def test_ci_false_still_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        fixtures.need(tmp_path / "absent.log")


def test_fixture_paths_are_next_to_the_repo():
    assert fixtures.FIXTURES == TESTS.parent.parent / "shared" / "fixtures"
    assert (fixtures.BINANCE, fixtures.POLYMARKET) == (fixtures.FIXTURES / "binance",
                                                       fixtures.FIXTURES / "polymarket")


# --- wait_for ----------------------------------------------------------------------------------

def test_wait_for_returns_the_truthy_value_and_retries_errors():
    calls = []

    def cond():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not up yet")
        return len(calls) >= 5 and {"n": len(calls)}
    assert wait_for(cond, 5, "the fifth call", interval=0) == {"n": 5}


def test_wait_for_raises_a_failed_check_at_once():
    def cond():
        assert 1 == 2, "a verdict, not 'not yet'"
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="a verdict"):
        wait_for(cond, 30, "never")
    assert time.monotonic() - t0 < 1


def test_wait_for_fails_naming_what_and_the_last_error():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for the moon "
                                              r"\(last error: ValueError\('no'\)\)"):
        wait_for(lambda: (_ for _ in ()).throw(ValueError("no")), 0.2, "the moon")
    assert 0.2 <= time.monotonic() - t0 < 2


def test_wait_for_async_awaits_coroutine_conditions():
    async def main():
        box = []

        async def cond():
            box.append(1)
            return len(box) == 3 and "done"
        assert await wait_for_async(cond, 5, "three polls", interval=0) == "done"
        with pytest.raises(AssertionError, match="waiting for nothing"):
            await wait_for_async(lambda: None, 0.05, "nothing")
    asyncio.run(main())
