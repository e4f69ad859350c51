"""Prepare and train on a two-node Ray cluster (``ray.cluster_utils.Cluster``, both nodes on 127.0.0.1).

The cluster runs in a child process (``tests/cluster_script.py``) with a private ``RAY_TMPDIR``, so the
session-wide local Ray of the other tests (``tests/conftest.py``) is neither joined nor disturbed. The two nodes
carry different custom resources (``head_res``, ``worker_res``), which is how the script tells them apart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "cluster_script.py"
TIMEOUT_S = 300
N_TRACKS = 12  # 3 genres x 4 tracks, one file per prepare task


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    """Run the cluster script once; its JSON summary (see ``tests/cluster_script.py``)."""
    # Short: Ray's socket paths live under RAY_TMPDIR and must stay under 108 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="st-cluster-", dir="/tmp" if os.path.isdir("/tmp") else None))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_TMPDIR=str(ray_tmp), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path_factory.mktemp("cluster"))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own group: the script and the Ray processes it started
        output, _ = proc.communicate()
        pytest.fail(f"cluster script still running after {TIMEOUT_S} s:\n{output[-4000:]}")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [line for line in output.splitlines() if line.startswith("SUMMARY ")]
    assert proc.returncode == 0 and lines, f"cluster script exited with {proc.returncode}:\n{output[-4000:]}"
    return json.loads(lines[-1].removeprefix("SUMMARY "))


def test_prepare_tasks_run_on_both_nodes(summary):
    nodes = summary["nodes"]
    assert set(nodes) == {"head", "worker"} and nodes["head"] != nodes["worker"]
    ran = summary["prepare_nodes"]  # the manifest's timings.nodes: node id -> tasks
    assert set(ran) == {nodes["head"], nodes["worker"]}
    assert sum(ran.values()) == N_TRACKS
    assert sum(summary["prepare_rows"].values()) > 0


def test_training_runs_two_workers_one_per_node(summary):
    nodes = summary["nodes"]
    workers = summary["train_workers"]
    assert len(workers) == 2
    assert {w["node_id"] for w in workers} == {nodes["head"], nodes["worker"]}  # one CPU per node
    assert [h["epoch"] for h in summary["history"]] == [1]
    assert Path(summary["bundle"], "model.safetensors").is_file()
