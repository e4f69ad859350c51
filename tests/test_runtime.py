"""spectrotune.runtime: a local Ray listens on loopback only; joining ``RAY_ADDRESS`` keeps Ray's own addresses.

The integration test runs ``spectrotune prepare`` in a child process (the command's own Ray, a private
``RAY_TMPDIR`` holding the stale address file of a head that is gone, no Ray variables from this environment)
and, while it runs, lists with psutil every listening TCP socket and every unconnected UDP socket of that process
and all its descendants: the driver, the GCS, the raylet, the workers, the dashboard and runtime-env agents, the
autoscaler monitor and the dashboard process. Any address that is not loopback fails the test, naming the process
and the port. The fast tests pin the logic of :func:`spectrotune.runtime.init_ray`
with ``ray.init`` replaced (nothing starts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from ray_processes import end_group, exposed, is_loopback

from spectrotune import runtime
from spectrotune.schema import MANIFEST
from spectrotune.sources.synth.corpus import generate_corpus

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 240
POLL_S = 0.25
# Processes of a local Ray that always own a listening socket, by a piece of their command line (Ray's agents and
# workers rename theirs to ray::NAME): the driver, the GCS, the raylet, both agents and a worker. The autoscaler
# monitor and the dashboard process listen too, on fixed metrics ports (44217, 44227) that only the first Ray on a
# machine gets: checked whenever they are there, not required.
EXPECTED_LISTENERS = ("spectrotune prepare", "gcs_server", "raylet/raylet", "ray::DashboardAgent",
                      "ray::RuntimeEnvAgent", "ray::IDLE")


def test_loopback_classifier():
    assert all(is_loopback(ip) for ip in ("127.0.0.1", "127.0.1.1", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(ip) for ip in ("0.0.0.0", "::", "192.0.2.2", "10.0.0.5", "::ffff:192.0.2.2", "fe80::1"))


def _clean_env(ray_tmp: Path) -> dict[str, str]:
    """This environment without any Ray variable (no RAY_ADDRESS, no loopback switch), a private RAY_TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_TMPDIR"] = str(ray_tmp)
    return env


@pytest.fixture
def ray_tmp():
    path = Path(tempfile.mkdtemp(prefix="st-rt-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.integration
def test_a_command_s_own_ray_listens_on_loopback_only(tmp_path, ray_tmp):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, genres=3, tracks=3, seconds=6.0, seed=0)
    # What a `ray start --head` ended without `ray stop` leaves behind: a plain ray.init() would try to join it.
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")
    cmd = [sys.executable, "-m", "spectrotune", "prepare", "demo", "--source", str(corpus), "--out",
           str(tmp_path / "prepared"), "--no-progress", "--set", "noise.enabled=false",
           "--set", "features.handcrafted=false"]
    log = tmp_path / "prepare.log"
    seen: dict[tuple[str, str, int], str] = {}  # (kind, ip, port) -> process label
    bad: set[str] = set()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=_clean_env(ray_tmp), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    tree: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                for p in [root, *root.children(recursive=True)]:
                    tree.setdefault(p.pid, p)
            except psutil.Error:
                pass
            now, lines = exposed(list(tree.values()))
            for sock, who in now.items():
                seen.setdefault(sock, who)
            bad.update(lines)
            time.sleep(POLL_S)
        assert proc.poll() is not None, f"prepare still running after {RUN_TIMEOUT_S} s"
    finally:
        end_group(proc.pid, also=tree.values())
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert json.loads((tmp_path / "prepared" / MANIFEST).read_text())["counts"]["tracks"] == 9

    missing = [name for name in EXPECTED_LISTENERS if not any(name in label for label in seen.values())]
    assert not missing, f"no listening socket seen for {missing}; seen: {sorted(set(seen.values()))}"
    assert not bad, "Ray listens beyond loopback:\n" + "\n".join(sorted(bad))


# ------------------------------------------------------------------------------ init_ray's logic, nothing starts


class _FakeRay:
    """Records what init_ray asks of Ray: the ray.init arguments and Ray's loopback switch during the call."""

    def __init__(self, monkeypatch, node_ip: str = "127.0.0.1"):
        import ray
        from ray._private import ray_constants

        self.calls: list[tuple[dict, bool]] = []
        self.shutdowns = 0
        self.up = False
        self.constants = ray_constants
        monkeypatch.setattr(ray, "is_initialized", lambda: self.up)
        monkeypatch.setattr(ray, "init", self.init)
        monkeypatch.setattr(ray, "shutdown", self.shutdown)
        monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: node_ip)
        monkeypatch.setattr(runtime, "_STARTED_LOCAL", False)

    def init(self, **kwargs):
        self.calls.append((kwargs, self.constants.ENABLE_RAY_CLUSTER))
        self.up = True

    def shutdown(self):
        self.shutdowns += 1
        self.up = False


def test_local_ray_keeps_its_loopback_node_address_and_the_switch_is_restored(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = _FakeRay(monkeypatch)
    before = fake.constants.ENABLE_RAY_CLUSTER
    runtime.init_ray(num_cpus=1)
    (kwargs, cluster_mode), = fake.calls
    assert kwargs["_node_ip_address"] == "127.0.0.1" and kwargs["include_dashboard"] is False
    assert kwargs["address"] == "local"  # its own Ray, never a head that `ray start` left on the machine
    assert cluster_mode is False  # Ray does not swap 127.0.0.1 for the machine's address during the start
    assert fake.constants.ENABLE_RAY_CLUSTER == before
    assert runtime._STARTED_LOCAL


def test_joining_a_cluster_keeps_ray_s_own_choices(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.5:10001")
    fake = _FakeRay(monkeypatch, node_ip="10.0.0.7")
    before = fake.constants.ENABLE_RAY_CLUSTER
    runtime.init_ray()
    (kwargs, cluster_mode), = fake.calls
    assert kwargs["address"] == "ray://10.0.0.5:10001" and "_node_ip_address" not in kwargs
    assert cluster_mode == before
    assert not runtime._STARTED_LOCAL


def test_a_local_ray_on_another_address_is_ended_and_refused(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = _FakeRay(monkeypatch, node_ip="192.0.2.2")
    with pytest.raises(RuntimeError, match=r"node address 192\.0\.2\.2, not 127\.0\.0\.1"):
        runtime.init_ray()
    assert fake.shutdowns == 1 and not runtime._STARTED_LOCAL and not fake.up
