"""The README's two fresh-machine commands: CI runs exactly the test command the README gives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fenced_block_after(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.S)
    assert block, f"no bash block after {heading!r} in README.md"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    (command,) = _fenced_block_after("Run the tests")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert command in ci, f".ci/run does not run the README's test command:\n{command}"


def test_the_readme_demo_command_sets_up_and_runs_the_demo():
    (command,) = _fenced_block_after("Run the whole flow")
    assert "pip install" in command and command.endswith("spectrotune demo")


def test_every_test_the_reliability_table_names_exists():
    """Each row of README's Reliability table points at the tests that prove it: ``tests/x.py::test_name`` or
    ``tests/x.py`` (`part`, ...), where each part is a piece of one test's name in that file."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Reliability"):]
    section = section[:section.index("\n## ", 3)]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| fault")]
    assert len(rows) >= 15
    for row in rows:
        cell = row.rsplit("|", 2)[1]
        refs = list(re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`(?: \(([^)]*)\))?", cell))
        assert refs, f"a Reliability row names no test: {row[:80]}"
        for ref in refs:
            path, name, parts = ref.groups()
            assert (ROOT / path).is_file(), f"README Reliability names {path}, which does not exist"
            tests = re.findall(r"^def (test_\w+)\(", (ROOT / path).read_text(), flags=re.M)
            if name:
                assert name in tests, f"README Reliability names {path}::{name}, which does not exist"
            for part in re.findall(r"`(\w+)`", parts or ""):
                assert any(part in t for t in tests), f"README Reliability: no test in {path} matches {part!r}"
