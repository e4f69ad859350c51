"""Helper for ``tests/test_multinode.py``: prepare and train on a ``ray.cluster_utils.Cluster``, and lose a worker
node during each.

Run as ``python tests/cluster_script.py WORK_DIR`` in its own process (never inside pytest's process, whose
session-wide local Ray it must not disturb). One cluster serves every step (starting one costs ~10 s on 2 cores):

1. A head node (1 CPU, custom resource ``head_res``) and a worker node (1 CPU, ``worker_res``), both on 127.0.0.1;
   a tiny synthetic corpus; :func:`spectrotune.prepare.driver.prepare` with one file per task, so the tasks spread
   over both nodes.
2. The same prepare into a second folder, while the worker node is lost the moment one of its worker processes
   runs a prepare task; the head alone finishes, and the shards are compared byte for byte with step 1's.
3. Two fresh worker nodes join (as an autoscaler would provide them: the restart below needs two CPUs besides the
   head's, and ``Cluster.add_node`` cannot run in the killing thread); training with ``train.num_workers=2`` (one
   CPU each), ``train.max_failures=1`` and 2 epochs; the moment rank 0's ``epoch 1/2:`` line appears in Ray's
   worker logs, a worker node that runs a training worker is lost. The run must go on from epoch 2.

Every loss comes from outside the code under test: a thread of this script watches a progress signal and SIGKILLs
the node's raylet together with every worker process under it (``fault_helpers.kill_tree``), then lets
``Cluster.remove_node`` end the node's remaining agents. The head is never killed: the driver, Train's controller
and the training data live there. At the end the cluster is shut down and one line ``SUMMARY {json}`` printed for
the test to read.

The caller should set ``RAY_TMPDIR`` to a private folder: ``Cluster`` records its address in
``$RAY_TMPDIR/ray/ray_current_cluster``, and under the default ``/tmp/ray`` any ``ray.init()`` started meanwhile
on the machine would join this cluster instead of starting its own.

``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray on loopback: ``ray.init(address="127.0.0.1:PORT")`` otherwise
rewrites the loopback address to the machine's outward-facing IP (ray-project/ray#59110), where a node bound to
127.0.0.1 does not listen, and the driver waits for the GCS forever.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/: fault_helpers
from fault_helpers import KillOnLine, kill_tree  # noqa: E402

SUMMARY = "SUMMARY "
OVERRIDES = (
    "noise.enabled=false",
    "features.handcrafted=false",
    "prepare.files_per_task=1",
    "train.epochs=2",
    "train.max_failures=1",
    "train.num_workers=2",
    "train.cpus_per_worker=1",
    "train.batch_size=8",
    "model.width=4",
    "model.depth=2",
)
WORKER_NODE = {"num_cpus": 1, "resources": {"worker_res": 1}, "node_ip_address": "127.0.0.1"}
KILL_TIMEOUT_S = 120
# The GCS declares a node dead after this many failed health checks this far apart (Ray's defaults, 5 x 3 s, make
# a lost node's tasks wait ~15 s before they are retried elsewhere; the test cluster notices in ~1.5 s).
NODE_HEALTH_CHECK = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


def main(work: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from spectrotune.config import load_config
    from spectrotune.prepare.driver import prepare
    from spectrotune.sources.synth.corpus import generate_corpus

    work.mkdir(parents=True, exist_ok=True)
    generate_corpus(work / "corpus", genres=3, tracks=4, seconds=6.0, seed=0)
    config = load_config("demo", overrides=list(OVERRIDES))

    loopback = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "resources": {"head_res": 1}, **loopback,
                                      "_system_config": NODE_HEALTH_CHECK})
    try:
        cluster.add_node(**WORKER_NODE)
        cluster.wait_for_nodes(timeout=60)
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", logging_level="warning",
                 log_to_driver=False)
        nodes = {}
        for node in ray.nodes():
            if node["Alive"]:
                role = "head" if "head_res" in node["Resources"] else "worker"
                nodes[role] = node["NodeID"]

        t0 = time.perf_counter()
        prepared = prepare(work / "corpus", work / "dataset", config=config, progress=False, log=lambda _: None)
        t1 = time.perf_counter()
        summary = {"nodes": nodes, "prepare_nodes": prepared.manifest.timings.nodes,
                   "prepare_rows": prepared.manifest.counts.rows_per_split,
                   "prepare_node_kill": prepare_with_node_kill(cluster, work, config, reference=work / "dataset")}
        t2 = time.perf_counter()
        summary["train_node_kill"] = train_with_node_kill(cluster, work, config)
        summary["seconds"] = {"prepare": t1 - t0, "prepare_node_kill": t2 - t1,
                              "train_node_kill": time.perf_counter() - t2}
        summary["clip"] = str(sorted((work / "corpus").rglob("*.wav"))[0])
        return summary
    finally:
        ray.shutdown()
        cluster.shutdown()


def raylet_pid(node) -> int:
    """The pid of ``node``'s raylet (a ``ray._private.node.Node`` of the cluster)."""
    from ray._private import ray_constants

    return node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def kill_node(cluster, node) -> dict:
    """Lose ``node`` as a machine is lost: SIGKILL its raylet and every worker process under it at once, then let
    ``Cluster`` end what is left of it (log monitor, agents) and forget it."""
    killed = kill_tree(raylet_pid(node), expect="raylet")
    cluster.remove_node(node, allow_graceful=False)
    return {"node_id": node.node_id, "processes_killed": len(killed)}


def busy_workers(node) -> list[str]:
    """Titles of ``node``'s worker processes that run a task now (Ray titles a worker ``ray::IDLE`` between tasks
    and ``ray::<task>`` while it runs one; the raylet's other children are its ``ray::...Agent`` processes)."""
    import psutil

    titles = []
    for proc in psutil.Process(raylet_pid(node)).children():
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if title.startswith("ray::") and not title.startswith("ray::IDLE") and "Agent" not in title:
            titles.append(title.strip()[:80])
    return titles


def shard_files(dataset: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every Parquet shard under ``dataset/data``."""
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted((dataset / "data").rglob("*.parquet"))}


def prepare_with_node_kill(cluster, work: Path, config, *, reference: Path) -> dict:
    """Prepare the corpus again into ``dataset-node-kill``; lose the worker node the moment it runs a task."""
    from spectrotune.prepare.driver import prepare

    out = work / "dataset-node-kill"
    (node,) = cluster.worker_nodes
    state: dict = {}
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            running = busy_workers(node)
            if running:
                # shards being written (the staging folder is a hidden sibling of OUT) or finished
                state["shards_at_kill"] = len(list(work.glob(f".{out.name}*/**/*.parquet")))
                state["running_at_kill"] = running
                state.update(kill_node(cluster, node))
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = prepare(work / "corpus", out, config=config, progress=False, log=lambda _: None)
    finally:
        stop.set()
        watcher.join()
    ours, theirs = shard_files(out), shard_files(reference)
    return {**state, "nodes": result.manifest.timings.nodes, "rows": result.manifest.counts.rows_per_split,
            "shards": sorted(ours), "reference_shards": sorted(theirs),
            "differing": sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))}


def train_with_node_kill(cluster, work: Path, config) -> dict:
    """Train on the head and two fresh worker nodes; lose a node that runs a training worker the moment rank 0's
    ``epoch 1/2:`` line appears. Returns the run's history and bundle and where its workers ran."""
    import psutil
    import ray
    from ray._private.state import actors

    from spectrotune.training.driver import train

    for _ in range(2):
        cluster.add_node(**WORKER_NODE)
    cluster.wait_for_nodes(timeout=60)
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())

    def train_workers() -> dict[str, str]:
        # Ray Train V2 runs each worker as a RayTrainWorker actor; the GCS keeps dead actors' records too.
        return {actor_id: a["Address"]["NodeID"] for actor_id, a in actors().items()
                if a.get("ActorClassName") == "RayTrainWorker"}

    def kill_a_training_node(_log: Path) -> dict:
        first = train_workers()
        raylets = {raylet_pid(node): node for node in cluster.worker_nodes}
        for proc in psutil.process_iter(["cmdline"]):
            if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []):
                for parent in proc.parents():
                    if parent.pid in raylets:
                        return {**kill_node(cluster, raylets[parent.pid]), "first_workers": first}
        raise AssertionError("no training worker runs on a worker node")

    killer = KillOnLine(logs, "epoch 1/2:", kill_a_training_node, timeout_s=KILL_TIMEOUT_S)
    killer.start()
    try:
        trained = train(work / "dataset", work / "run", config=config, progress=True, log=lambda _: None)
    finally:
        killer.stop.set()
        killer.join()
    if killer.error is not None:
        raise RuntimeError(f"the node kill failed: {killer.error!r}")
    killed = dict(killer.result)
    first = killed.pop("first_workers")
    return {"killed": killed, "first_workers": sorted(first.values()),
            "restarted_workers": sorted(n for a, n in train_workers().items() if a not in first),
            "history": trained.history, "bundle": str(trained.bundle)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/cluster_script.py WORK_DIR")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: see above
    summary = main(Path(sys.argv[1]))
    print(SUMMARY + json.dumps(summary), flush=True)
