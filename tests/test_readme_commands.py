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
