"""cluster.yaml: what the Ray cluster launcher requires, and that its Ray version is the one pyproject.toml pins.

No cloud access: the file is parsed with yaml.safe_load and, when jsonschema and Ray are installed, validated
against the launcher's own schema (ray/autoscaler/ray-schema.json, located without importing Ray).
"""

from __future__ import annotations

import importlib.util
import json
import re
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


def test_project_is_mounted_and_installed(config):
    assert config["file_mounts"] == {"~/spectrotune": "."}
    assert any("pip install" in c and "-e ~/spectrotune" in c for c in config["setup_commands"])


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
    jsonschema = pytest.importorskip("jsonschema")
    spec = importlib.util.find_spec("ray")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("ray is not installed: the launcher schema ships with it")
    schema_path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    if not schema_path.is_file():
        pytest.fail(f"no launcher schema at {schema_path}")
    jsonschema.validate(config, json.loads(schema_path.read_text(encoding="utf-8")))
