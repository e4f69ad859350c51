"""Prepare and train on a multi-node Ray cluster (``ray.cluster_utils.Cluster``, all nodes on 127.0.0.1), and lose
a worker node during each.

The cluster runs in a child process (``tests/cluster_script.py``, which describes the steps) with a private
``RAY_TMPDIR``, so the session-wide local Ray of the other tests (``tests/conftest.py``) is neither joined nor
disturbed. The nodes carry custom resources (``head_res``, ``worker_res``), which is how the script tells the head
from the worker nodes. The node losses come from the script's watcher thread (SIGKILL of the node's raylet and
every worker process under it), never from the code under test.
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

import spectrotune

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


def test_losing_a_node_during_prepare_gives_the_same_dataset(summary):
    """The worker node is SIGKILLed while it runs a prepare task: its unfinished tasks run again on the head, and
    every shard is byte for byte the undisturbed run's."""
    nodes, lost = summary["nodes"], summary["prepare_node_kill"]
    assert lost["node_id"] == nodes["worker"] and lost["running_at_kill"]  # a task was in flight there
    assert lost["shards_at_kill"] < N_TRACKS  # the kill came while prepare still had work to do
    # Every task counted once; on the lost node only those that had finished before the kill (one shard a task).
    assert sum(lost["nodes"].values()) == N_TRACKS and set(lost["nodes"]) <= {nodes["head"], nodes["worker"]}
    assert lost["nodes"].get(nodes["worker"], 0) <= lost["shards_at_kill"]
    assert lost["rows"] == summary["prepare_rows"]
    assert len(lost["shards"]) >= 3 and lost["shards"] == lost["reference_shards"]
    assert lost["differing"] == []


def test_losing_a_training_node_resumes_from_the_last_checkpoint(summary, tmp_path):
    """``train.max_failures=1``; a node running one of the two workers is SIGKILLed the moment epoch 1's line
    appears: the restarted workers (on the surviving nodes) go on from epoch 2, and the bundle loads and predicts."""
    run, head = summary["train_node_kill"], summary["nodes"]["head"]
    assert len(run["first_workers"]) == 2 and len(set(run["first_workers"])) == 2  # one worker per node
    killed = run["killed"]["node_id"]
    assert killed != head and killed in run["first_workers"]
    assert len(run["restarted_workers"]) == 2 and killed not in run["restarted_workers"]
    assert [(h["epoch"], h["attempt"]) for h in run["history"]] == [(1, 1), (2, 2)]  # epoch 1 was not trained again
    model = spectrotune.load_bundle(run["bundle"])
    prediction = model.predict_file(summary["clip"])
    assert prediction.genre in model.labels and len(model.labels) == 3
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
