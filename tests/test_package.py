"""Package rules from the design notes: only the Ray rooms touch Ray, importing the package is cheap, and the tree
stays one room per stage with no module over ~400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import spectrotune

PACKAGE = Path(spectrotune.__file__).parent
ROOT = PACKAGE.parent


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_dotted(p) for p in PACKAGE.rglob("*.py") if _dotted(p))
# Only these start Ray or drive Ray Data / Train / Tune; everything else is pure numpy/torch and unit-testable without
# Ray. The CLI and the flows reach Ray only through them (and import them inside the functions that need them).
RAY_MODULES = {
    "runtime", "prepare.driver", "predict.batch", "training.trainer", "training.driver", "training.loop",
    "tuning.schedulers", "tuning.trial", "tuning.sweep", "tuning.cv",
    "predict.tag_batch",
    "evaluation.embeddings",
    "tracking.callbacks",
    "serving.app",
}
# Ray Tune modules that subclass Ray classes at import; every other module, Ray rooms included, imports Ray lazily.
IMPORTS_RAY_AT_LOAD = {"tuning.schedulers", "tuning.trial", "tracking.callbacks", "serving.app"}
PURE = [m for m in MODULES if m not in RAY_MODULES]


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _path(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_import_ray(module):
    assert "ray" not in _imported_roots(_path(module))  # not even inside a function


def test_importing_any_module_does_not_start_loading_ray():
    modules = [m for m in MODULES if m not in IMPORTS_RAY_AT_LOAD and m != "__main__"]
    code = ("import sys\n" + "".join(f"import spectrotune.{m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_is_over_400_lines(module):
    n = len(_path(module).read_text(encoding="utf-8").splitlines())
    assert n <= 420, f"{module}: {n} lines; split it by responsibility"


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"spectrotune" + (f".{_dotted(p.parent / 'x.py').rpartition('.')[0]}" if p.parent != PACKAGE else "")
             for p in PACKAGE.rglob("__init__.py")}
    found = {f.rstrip(".") for f in found} | {"spectrotune.configs"}
    assert listed == found
