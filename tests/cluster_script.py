"""Helper for ``tests/test_multinode.py``: prepare and train on a two-node ``ray.cluster_utils.Cluster``.

Run as ``python tests/cluster_script.py WORK_DIR`` in its own process (never inside pytest's process, whose
session-wide local Ray it must not disturb). It starts a head node (1 CPU, custom resource ``head_res``) and a
second node (1 CPU, ``worker_res``), both on 127.0.0.1; writes a tiny synthetic corpus; runs
:func:`spectrotune.prepare.driver.prepare` with one file per task, so the tasks spread over both nodes; trains with
``train.num_workers=2`` (one worker per node: each node has one CPU) for one epoch; shuts the cluster down and
prints one line ``SUMMARY {json}`` for the test to read.

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
import time
from pathlib import Path

SUMMARY = "SUMMARY "
OVERRIDES = (
    "noise.enabled=false",
    "features.handcrafted=false",
    "prepare.files_per_task=1",
    "train.epochs=1",
    "train.num_workers=2",
    "train.cpus_per_worker=1",
    "train.batch_size=8",
    "model.width=4",
    "model.depth=2",
)


def main(work: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from spectrotune.config import load_config
    from spectrotune.prepare.driver import prepare
    from spectrotune.sources.synth.corpus import generate_corpus
    from spectrotune.training.driver import train

    work.mkdir(parents=True, exist_ok=True)
    generate_corpus(work / "corpus", genres=3, tracks=4, seconds=6.0, seed=0)
    config = load_config("demo", overrides=list(OVERRIDES))

    loopback = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "resources": {"head_res": 1}, **loopback})
    try:
        cluster.add_node(num_cpus=1, resources={"worker_res": 1}, node_ip_address="127.0.0.1")
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
        trained = train(work / "dataset", work / "run", config=config, progress=False, log=lambda _: None)
        t2 = time.perf_counter()

        # Ray Train V2 runs each worker as a RayTrainWorker actor; the GCS keeps dead actors' records, so the
        # finished run still shows how many workers it had and where they ran.
        from ray._private.state import actors

        workers = [{"node_id": a["Address"]["NodeID"], "state": a["State"]}
                   for a in actors().values() if a.get("ActorClassName") == "RayTrainWorker"]
        return {
            "nodes": nodes,
            "prepare_nodes": prepared.manifest.timings.nodes,
            "prepare_rows": prepared.manifest.counts.rows_per_split,
            "train_workers": workers,
            "history": trained.history,
            "bundle": str(trained.bundle),
            "seconds": {"prepare": t1 - t0, "train": t2 - t1},
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/cluster_script.py WORK_DIR")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: see above
    summary = main(Path(sys.argv[1]))
    print(SUMMARY + json.dumps(summary), flush=True)
