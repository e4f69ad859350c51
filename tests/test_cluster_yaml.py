"""cluster.yaml: what the Ray cluster launcher requires, that its Ray version is the one pyproject.toml pins, and
that its setup commands install the project without replacing (or needlessly downloading) torch.

No cloud access: the file is parsed with yaml.safe_load and, when jsonschema and Ray are installed, validated
against the launcher's own schema (ray/autoscaler/ray-schema.json, located without importing Ray). The setup
commands run through bash against stand-ins for ``pip`` (records its arguments; "installing" torch writes a
stand-in torch package), ``python`` (this interpreter with ``-S``: only the stand-in torch, if any, is importable)
and ``nvidia-smi`` (a GPU or none), for an image without torch, with or without a GPU, and an image with torch.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
PYPROJECT = ROOT / "pyproject.toml"


def ray_pin() -> str:
    """The X in the ``ray[...]==X`` dependency of pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib

        deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
        pins = [m.group(1) for d in deps if (m := re.fullmatch(r"\s*ray(?:\[[^\]]*\])?\s*==\s*([^\s;,]+).*", d))]
    else:  # tomllib is 3.11+; the dependency line is simple enough for a regex
        pins = re.findall(r"""["']ray(?:\[[^\]]*\])?\s*==\s*([^"'\s;,]+)""", PYPROJECT.read_text(encoding="utf-8"))
    assert len(pins) == 1, f"expected one ray==X pin in pyproject.toml, found {pins}"
    return pins[0]


@pytest.fixture(scope="module")
def text() -> str:
    return CLUSTER_YAML.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def config(text) -> dict:
    return yaml.safe_load(text)


def test_top_level_keys_the_launcher_requires(config):
    assert config["cluster_name"] == "spectrotune"
    assert config["provider"]["type"] == "aws"
    assert config["provider"]["region"] == "us-west-2"
    assert config["auth"]["ssh_user"] == "ubuntu"
    assert isinstance(config["max_workers"], int) and config["max_workers"] >= 1


def test_every_node_type_is_complete(config):
    types = config["available_node_types"]
    assert types
    for name, spec in types.items():
        for key in ("node_config", "resources", "min_workers", "max_workers"):
            assert key in spec, f"{name} lacks {key}"
        assert spec["node_config"].get("InstanceType"), name
        assert 0 <= spec["min_workers"] <= spec["max_workers"] <= config["max_workers"], name
        assert all(isinstance(v, int) and v >= 0 for v in spec["resources"].values()), name


def test_head_node_type_is_one_of_the_node_types(config):
    assert config["head_node_type"] == "ray.head.default"
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["ray.head.default"]["resources"].get("GPU", 0) == 0


def test_gpu_worker_group_autoscales(config):
    gpu = config["available_node_types"]["ray.worker.gpu"]
    assert gpu["node_config"]["InstanceType"] == "g5.xlarge"
    assert gpu["resources"]["GPU"] >= 1
    assert gpu["min_workers"] == 0 and gpu["max_workers"] > gpu["min_workers"]


def test_worker_minimums_fit_under_max_workers(config):
    heads = config["head_node_type"]
    total_min = sum(t["min_workers"] for n, t in config["available_node_types"].items() if n != heads)
    assert total_min <= config["max_workers"]


def _mentioned_ray_versions(text: str) -> set[str]:
    found = set(re.findall(r"rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)", text))
    found |= set(re.findall(r"\bray(?:\[[^\]]*\])?==(\d+\.\d+\.\d+)", text))
    found |= set(re.findall(r"rayVersion:\s*[\"']?(\d+\.\d+\.\d+)", text))
    return found


def test_every_ray_version_matches_the_pyproject_pin(text, config):
    pin = ray_pin()
    assert _mentioned_ray_versions(text) == {pin}  # comments included: the KubeRay notes must not drift either
    docker = config["docker"]
    images = [docker[k] for k in ("image", "head_image", "worker_image") if k in docker]
    assert images and all(img.split(":", 1)[1].startswith(pin + "-") for img in images), images
    assert any(f"=={pin}" in cmd for cmd in config["setup_commands"])


def test_version_check_would_catch_a_drifted_tag(text):
    drifted = text.replace("rayproject/ray:2.60.0-py311-gpu", "rayproject/ray:2.59.0-py311-gpu")
    assert drifted != text
    assert len(_mentioned_ray_versions(drifted)) == 2


def test_images_are_published_ones_and_gpu_workers_get_a_cuda_image(config):
    docker = config["docker"]
    # rayproject/ray-ml stopped being published with Ray 2.50; only rayproject/ray exists for this version.
    for key in ("head_image", "worker_image"):
        assert docker[key].startswith("rayproject/ray:"), docker[key]
    tag = docker["worker_image"].split(":", 1)[1]
    assert tag.endswith("-gpu") or re.search(r"-cu\d+$", tag), tag


def torch_requirement() -> str:
    """pyproject.toml's torch requirement, e.g. ``torch>=2.3``."""
    found = re.findall(r"""["'](torch\s*[<>=!~][^"']*)["']""", PYPROJECT.read_text(encoding="utf-8"))
    assert len(found) == 1, f"expected one torch requirement in pyproject.toml, found {found}"
    return found[0]


def test_project_is_mounted_and_installed(config):
    assert config["file_mounts"] == {"~/spectrotune": "."}
    assert any("pip install" in c and "-e ~/spectrotune" in c for c in config["setup_commands"])


def test_torch_is_installed_with_pyprojects_spec_only(config):
    commands = " ".join(config["setup_commands"])
    specs = re.findall(r'pip install --quiet "(torch\b[^"]*)"', commands)
    assert specs and set(specs) == {torch_requirement()}, specs


CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAND_IN_PIP = r"""#!/bin/bash
printf '%s\n' "$*" >> "$PIP_LOG"
for arg in "$@"; do
  case "$arg" in
    torch|torch[\<\>=~!]*)
      if [[ " $* " == *" CPU_INDEX "* ]]; then version=2.13.0+cpu; else version=2.13.0; fi
      mkdir -p "$SITE/torch" && echo "__version__ = '$version'" > "$SITE/torch/__init__.py" ;;
  esac
done
""".replace("CPU_INDEX", CPU_INDEX)


def run_setup_commands(config, tmp_path, *, gpu: bool, image_torch: str | None) -> tuple[list[str], str]:
    """Run cluster.yaml's setup_commands as the launcher does (bash, one by one, stopping at the first failure)
    against the stand-ins; return pip's argument lines and the constraint file the commands wrote."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("cluster.yaml's setup commands are bash: no bash on PATH")
    home, bin_dir, site = tmp_path / "home", tmp_path / "bin", tmp_path / "site"
    for d in (home / "spectrotune", bin_dir, site):
        d.mkdir(parents=True)
    if image_torch:
        (site / "torch").mkdir()
        (site / "torch" / "__init__.py").write_text(f"__version__ = {image_torch!r}\n")
    stand_ins = {"pip": STAND_IN_PIP,
                 "python": f'#!/bin/bash\nexec {sys.executable} -S "$@"\n',
                 "nvidia-smi": f"#!/bin/bash\nexit {0 if gpu else 9}\n"}
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(site),
           "PIP_LOG": str(tmp_path / "pip.log"), "SITE": str(site)}
    for cmd in config["setup_commands"]:
        done = subprocess.run([bash, "-c", cmd], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{cmd}\n{done.stdout}{done.stderr}"
    log = (tmp_path / "pip.log").read_text().splitlines()
    constraint = home / "torch-constraint.txt"
    return [line.replace(str(home), "~") for line in log], constraint.read_text().strip() if constraint.exists() else ""


def ray_requirement() -> str:
    """pyproject.toml's ray requirement, extras included, e.g. ``ray[default,data,train,tune]==2.60.0``."""
    found = re.findall(r"""["'](ray(?:\[[^\]]*\])?\s*==[^"']+)["']""", PYPROJECT.read_text(encoding="utf-8"))
    assert len(found) == 1, f"expected one ray requirement in pyproject.toml, found {found}"
    return found[0]


def _ray_line() -> str:
    assert ray_pin() in ray_requirement()
    return f"install --quiet {ray_requirement()}"


PROJECT_LINE = "install --quiet -c ~/torch-constraint.txt -e ~/spectrotune"


def test_setup_without_torch_and_without_gpu_installs_the_cpu_build(config, tmp_path):
    pip, constraint = run_setup_commands(config, tmp_path, gpu=False, image_torch=None)
    assert pip == [_ray_line(), f"install --quiet {torch_requirement()} --index-url {CPU_INDEX}", PROJECT_LINE]
    assert constraint == "torch==2.13.0+cpu"  # the project's install cannot replace it


def test_setup_without_torch_on_a_gpu_node_installs_the_default_cuda_build(config, tmp_path):
    pip, constraint = run_setup_commands(config, tmp_path, gpu=True, image_torch=None)
    assert pip == [_ray_line(), f"install --quiet {torch_requirement()}", PROJECT_LINE]
    assert constraint == "torch==2.13.0"


@pytest.mark.parametrize("gpu", [False, True])
def test_setup_keeps_the_images_torch(config, tmp_path, gpu):
    pip, constraint = run_setup_commands(config, tmp_path, gpu=gpu, image_torch="2.5.1+cu121")
    assert pip == [_ray_line(), PROJECT_LINE]  # no torch download at all
    assert constraint == "torch==2.5.1+cu121"


def test_dashboard_binds_to_loopback(config):
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in head
    assert "--head" in head and "--port=6379" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])


def _rsync_regex(pattern: str) -> str:
    return re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")


def _rsync_match(pattern: str, path: str, is_dir: bool) -> bool:
    """rsync's exclude rule for one pattern and one path relative to the transfer root (see rsync(1), exclude.c)."""
    if pattern.endswith("/"):  # folders only
        if not is_dir:
            return False
        pattern = pattern[:-1]
    parts = path.split("/")
    if pattern.startswith("/"):  # anchored at the transfer root
        return re.fullmatch(_rsync_regex(pattern[1:]), path) is not None
    if "**" in pattern:  # matched against the whole path; a leading "**/" may also match nothing
        return re.fullmatch(_rsync_regex(pattern), path) is not None or (
            pattern.startswith("**/") and re.fullmatch(_rsync_regex(pattern[3:]), path) is not None)
    if "/" in pattern:  # matched against as many trailing components as the pattern has
        return re.fullmatch(_rsync_regex(pattern), "/".join(parts[-(pattern.count("/") + 1):])) is not None
    return re.fullmatch(_rsync_regex(pattern), parts[-1]) is not None


def _rsync_excluded(path: str, patterns: list[str], *, is_dir: bool) -> bool:
    parts = path.split("/")
    # rsync does not descend into an excluded folder, so an excluded ancestor excludes the path.
    return any(_rsync_match(p, "/".join(parts[:i]), i < len(parts) or is_dir)
               for i in range(1, len(parts) + 1) for p in patterns)


@pytest.mark.parametrize(("path", "is_dir", "excluded"), [
    (".git", True, True),
    (".git/objects/ab", False, True),
    ("data", True, True),
    ("data/gtzan/genres/blues/blues.00000.au", False, True),
    ("outputs", True, True),
    ("runs/exp1/checkpoint", True, True),
    (".venv", True, True),
    ("venv/bin/python", False, True),
    ("spectrotune/__pycache__/fetch.cpython-311.pyc", False, True),
    ("spectrotune/data", True, False),  # package data (fault-filtered split lists) must reach the cluster
    ("spectrotune/data/gtzan_fault_filtered/train.txt", False, False),
    ("spectrotune/sources/fetch.py", False, False),
    ("configs/gtzan.yaml", False, False),
    ("pyproject.toml", False, False),
])
def test_rsync_exclude_skips_data_outputs_git_and_venvs_only(config, path, is_dir, excluded):
    assert _rsync_excluded(path, config["rsync_exclude"], is_dir=is_dir) is excluded


def test_valid_against_the_launchers_schema(config):
    import jsonschema  # comes with ray

    spec = importlib.util.find_spec("ray")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("ray is not installed: the launcher schema ships with it")
    schema_path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    if not schema_path.is_file():
        pytest.fail(f"no launcher schema at {schema_path}")
    jsonschema.validate(config, json.loads(schema_path.read_text(encoding="utf-8")))
