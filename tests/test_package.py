"""Package rules from the design notes: the numpy/torch modules never touch Ray, and importing the package is cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spectrotune

PACKAGE = Path(spectrotune.__file__).parent
# Only these touch Ray (Ray Data prepare and batch inference, Ray Train, Ray Tune); everything else is unit-testable
# without it. The CLI and workflow reach Ray only through them.
RAY_MODULES = {"pipeline", "predict", "train", "tune"}
PURE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in RAY_MODULES | {"__init__"})


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_import_ray(module):
    assert "ray" not in _imported_roots(PACKAGE / f"{module}.py")  # not even inside a function


def test_importing_any_module_does_not_start_loading_ray():
    modules = [m for m in [*PURE, *RAY_MODULES] if m != "tune"]  # tune subclasses Ray Tune classes at import
    code = ("import sys\n" + "".join(f"import spectrotune.{m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
