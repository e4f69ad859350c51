"""``jobs/*.py`` and README.md's "Running on a Ray cluster": the documented lines, run as written.

``tests/readme_shell.py`` finds the section's lines and runs them through bash as a user in a new shell would,
varying only ports, paths, ``RAY_TMPDIR`` and ``HOME``; the jobs get tiny ``--set`` overrides appended.

``HOME`` holds the token that any earlier ``spectrotune`` command leaves in ``~/.ray/auth_token`` (its own Ray's
``ray.init`` creates it): with that file a head turns token authentication on by itself, which is where a
submission without ``RAY_AUTH_MODE=token`` fails with "Missing authentication token". One head serves the four
submissions; a second one checks the token step alone in an empty ``HOME``. Each head is started in a process
group of its own and ended by that group's id (and its members' descendants), never by ``ray stop``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from ray_processes import end_group, exposed, group_and_descendants
from readme_shell import (JOBS, LOCAL_ADDRESS, README, REPO, fresh_shell_env, job_api, local_head_lines,
                          section_blocks, start_head, submit_and_wait, tail, wait_for_job_api)

from spectrotune.bundle import load_bundle
from spectrotune.schema import BUNDLE_DIR, BUNDLE_META, MANIFEST, REPORT_JSON, RESULTS_CSV, SWEEP_JSON

pytestmark = pytest.mark.integration

RUNTIME_ENV = REPO / "jobs" / "runtime_env.yaml"
PYPROJECT = REPO / "pyproject.toml"
TRACKS = 12  # the README's synth line: 3 genres x 4 tracks
MAX_UPLOAD_BYTES = 5 * 2**20
TINY = (  # a few seconds of work per stage on 2 cores
    "noise.enabled=false",
    "features.handcrafted=false",
    "train.batch_size=8",
    "model.width=4",
    "model.depth=2",
    "evaluate.baselines=false",
    "evaluate.noise_kinds=[white]",
    "evaluate.snr_db=[10]",
)


def test_the_readme_lines_this_file_runs_are_there():
    lines = local_head_lines()
    assert "--no-wait" in lines.submit["prepare"]  # the line that status and logs follow
    for line in [lines.synth, *lines.submit.values()]:
        assert "$PWD/" in line, f"paths of a job must be absolute (the job runs in the uploaded copy): {line}"


@pytest.fixture(scope="module")
def ray_tmp():
    # Short and private: Ray's socket paths live under it and must stay under 108 characters.
    path = Path(tempfile.mkdtemp(prefix="st-jobs-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def readme_head(tmp_path_factory, ray_tmp):
    """The README's local head, started by its own lines in a new shell; yields the shell after them."""
    lines = local_head_lines()
    home = tmp_path_factory.mktemp("home")
    # What an earlier `spectrotune` command leaves there: its own Ray's ray.init creates ~/.ray/auth_token.
    made = subprocess.run(
        [sys.executable, "-c", "from ray._private.authentication.authentication_token_setup import "
                               "generate_and_save_token as g; g()"],
        env={**fresh_shell_env(home, ray_tmp), "PATH": os.environ.get("PATH", "")}, capture_output=True, text=True,
        timeout=120, check=False)
    assert made.returncode == 0 and (home / ".ray" / "auth_token").is_file(), made.stderr
    work = tmp_path_factory.mktemp("work")
    shell, pgid, rc, env_file = start_head(home, ray_tmp, work, lines.setup)
    try:
        if rc != 0:
            pytest.fail(f"the README's setup lines failed (exit {rc}):\n{tail(shell.log)}")
        shell.env = dict(kv.split("=", 1) for kv in env_file.read_text().split("\0") if "=" in kv)
        wait_for_job_api(shell, home)
        synth = shell.run(shell.adapt(lines.synth))
        assert synth.returncode == 0, synth.stdout[-2000:] + synth.stderr[-2000:]
        yield shell, lines, pgid
    finally:
        end_group(pgid)


def test_the_head_listens_on_loopback_only(readme_head):
    _, _, pgid = readme_head
    deadline = time.monotonic() + 60
    while True:  # the head's processes open their sockets in their own time (the client server last, under load)
        seen, bad = exposed(list(group_and_descendants(pgid).values()))
        client = any("ray_client_server" in who or "ray.util.client.server" in who for who in seen.values())
        if client or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert any("gcs_server" in who for who in seen.values()), sorted(set(seen.values()))
    assert client, seen
    assert not bad, "the README's head listens beyond loopback:\n" + "\n".join(bad)


def test_pipeline_job(readme_head):
    shell, lines, _ = readme_head
    _, logs = submit_and_wait(shell, lines, "pipeline", overrides=TINY)
    out = shell.work / "out" / "pipeline"
    manifest = json.loads((out / "dataset" / MANIFEST).read_text())
    assert manifest["counts"]["tracks"] == TRACKS
    assert len(manifest["timings"]["nodes"]) == 1  # the head is the only node
    bundle = load_bundle(out / "run" / BUNDLE_DIR)
    assert bundle.labels == list(manifest["labels"])
    report = json.loads((out / "run" / "report" / REPORT_JSON).read_text())
    assert 0.0 <= report["clip_accuracy"] <= 1.0
    assert f"{report['clip_accuracy']:.3f}" in logs  # the pipeline's headline, in the job's logs


@pytest.fixture(scope="module")
def prepared_job(readme_head):
    shell, lines, _ = readme_head
    job_id, logs = submit_and_wait(shell, lines, "prepare", overrides=TINY)
    return shell.work / "out" / "prepared", logs


def test_prepare_job_with_status_and_logs(prepared_job):
    out, logs = prepared_job
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["counts"]["tracks"] == TRACKS
    assert f"prepared {TRACKS} tracks" in logs  # the job's own summary line, through `ray job logs`


def test_train_job(readme_head, prepared_job):
    shell, lines, _ = readme_head
    submit_and_wait(shell, lines, "train", overrides=TINY)
    out = shell.work / "out" / "run"
    meta = json.loads((out / BUNDLE_DIR / BUNDLE_META).read_text())
    assert meta  # bundle.json is written last
    bundle = load_bundle(out / BUNDLE_DIR)
    assert bundle.labels == list(json.loads((prepared_job[0] / MANIFEST).read_text())["labels"])


def test_tune_job(readme_head, prepared_job):
    shell, lines, _ = readme_head
    submit_and_wait(shell, lines, "tune", overrides=TINY)
    out = shell.work / "out" / "sweep"
    rows = (out / RESULTS_CSV).read_text().splitlines()
    assert len(rows) == 2, rows  # header + the one trial
    summary = json.loads((out / SWEEP_JSON).read_text())
    best = summary["best"]["audio"]
    load_bundle(best["bundle"])
    assert (Path(best["bundle"]) / BUNDLE_META).is_file()
    report = json.loads((out / "best" / "audio" / "report" / REPORT_JSON).read_text())
    assert 0.0 <= report["clip_accuracy"] <= 1.0


def test_the_token_step_works_in_an_empty_home(tmp_path):
    """A brand-new machine: no ~/.ray yet. The README's setup lines make the token and the head asks for it."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="st-jobs-", dir="/tmp" if os.path.isdir("/tmp") else None))
    home = tmp_path / "home"
    home.mkdir()
    shell, pgid, rc, _ = start_head(home, ray_tmp, tmp_path, local_head_lines().setup)
    try:
        assert rc == 0, tail(shell.log)
        token_file = home / ".ray" / "auth_token"
        assert stat.S_IMODE(token_file.stat().st_mode) & 0o077 == 0, oct(token_file.stat().st_mode)  # owner only
        wait_for_job_api(shell, home)
        assert job_api(shell.address, None) == 401  # the head refuses a client without the token
        assert job_api(shell.address, "0" * 64) == 403
    finally:
        end_group(pgid)
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ the runtime environment and upload


def _requirements(specs: list[str]) -> dict[str, tuple]:
    from packaging.requirements import Requirement

    parsed = [Requirement(s) for s in specs]
    names = [r.name.lower().replace("_", "-") for r in parsed]
    assert len(set(names)) == len(names), f"a requirement is listed twice: {specs}"
    return {n: (frozenset(r.extras), str(r.specifier), str(r.marker or "")) for n, r in zip(names, parsed)}


def _pyproject_dependencies() -> list[str]:
    text = PYPROJECT.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the array of plain strings is simple enough to read directly
        block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M)
        assert block, "pyproject.toml: no dependencies array"
        return re.findall(r'"([^"]+)"', block.group(1))
    return tomllib.loads(text)["project"]["dependencies"]


def test_runtime_env_carries_every_dependency_of_pyproject():
    env = yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    deps = _pyproject_dependencies()
    assert _requirements(env["pip"]) == _requirements(deps)  # same requirements, same version specs
    assert "torch" in _requirements(env["pip"])
    assert env["working_dir"] == "."
    assert set(env) <= {"working_dir", "pip", "excludes"}, sorted(env)


def test_runtime_env_is_what_ray_job_submit_reads():
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
    from ray.dashboard.modules.job.cli import submit
    from ray.runtime_env import RuntimeEnv

    assert "--runtime-env" in [opt for p in submit.params for opt in p.opts]
    parsed = parse_runtime_env_args(runtime_env=str(RUNTIME_ENV))  # what `--runtime-env FILE` sends
    assert parsed == yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    checked = RuntimeEnv(**parsed)  # Ray's own validation of every field
    assert checked.pip_config()["packages"] == parsed["pip"]


def test_readme_cluster_commands_use_the_runtime_env():
    lines = [line for block in section_blocks(README.read_text(encoding="utf-8")) for line in block]
    cluster = [line for line in lines if line.startswith("ray job submit") and LOCAL_ADDRESS in line
               and "--runtime-env " in line]
    assert cluster and all("--runtime-env jobs/runtime_env.yaml " in line for line in cluster), cluster
    assert not any("--runtime-env-json" in line for line in lines)  # the partial pip list it once carried


def test_job_takes_the_cli_options():
    for job in JOBS:
        done = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "--config" in done.stdout and "--set" in done.stdout, job


def _package(root: Path, *, include_gitignore: bool, excludes: list[str], tmp: Path) -> zipfile.ZipFile:
    """The zip that ``ray job submit`` uploads for ``working_dir: root``, built by Ray's own packaging code."""
    from ray._private.runtime_env.packaging import create_package

    path = tmp / "package.zip"
    create_package(str(root), path, include_gitignore=include_gitignore, excludes=excludes)
    return zipfile.ZipFile(path)


def test_working_dir_upload_is_small(tmp_path):
    from ray._private import ray_constants

    env = yaml.safe_load(RUNTIME_ENV.read_text(encoding="utf-8"))
    # What the CLI does (dashboard_sdk): .gitignore unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1, Ray's default
    # excludes plus the runtime env's own, .rayignore.
    package = _package(REPO / env["working_dir"], include_gitignore=True, tmp=tmp_path,
                       excludes=ray_constants.get_runtime_env_default_excludes() + env.get("excludes", []))
    names = package.namelist()
    assert Path(package.filename).stat().st_size < MAX_UPLOAD_BYTES
    assert {"jobs/pipeline.py", "jobs/runtime_env.yaml", "spectrotune/cli.py", "configs/demo.yaml",
            "spectrotune/data/gtzan_fault_filtered/train.txt"} <= set(names)
    heavy = [n for n in names if n.split("/")[0] in (".git", ".venv", "venv", "spectrotune-demo", "out", "runs", "data")
             or "__pycache__" in n or n.endswith((".parquet", ".wav", ".pt", ".safetensors"))]
    assert heavy == []


def test_rayignore_alone_leaves_out_environments_and_data(tmp_path):
    root = tmp_path / "repo"
    kept = ["jobs/pipeline.py", "spectrotune/__init__.py", "spectrotune/data/gtzan_fault_filtered/train.txt",
            "configs/demo.yaml", ".rayignore"]
    dropped = [".git/HEAD", ".venv/lib/site.py", "venv/bin/python", "spectrotune/__pycache__/cli.cpython-311.pyc",
               "data/genres_original/blues/blues.00000.wav", "prepared/gtzan/data/split=train/part-00000.parquet",
               "runs/train-abc/checkpoint_epoch_0001/model.safetensors", "spectrotune-demo/run/bundle/model.pt",
               "spectrotune.egg-info/PKG-INFO", ".pytest_cache/v/cache/nodeids", "data/synth/genres_original/a.wav",
               "out/pipeline/dataset/manifest.json"]
    for rel in kept + dropped:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    shutil.copy(REPO / ".rayignore", root / ".rayignore")
    # No .gitignore and none of Ray's default excludes: .rayignore has to do it all.
    package = _package(root, include_gitignore=False, excludes=[], tmp=tmp_path)
    assert sorted(n for n in package.namelist() if not n.endswith("/")) == sorted(kept)
