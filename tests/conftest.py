"""Shared fixtures: one local Ray for all integration tests (starting Ray costs ~5 s on 2 cores)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Helpers shared by tests of several rooms (e.g. librosa_reference) live at the top of tests/.
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs on loopback, shared by every test that needs Ray."""
    import ray

    from spectrotune.runtime import keep_loopback_node_address

    if not ray.is_initialized():
        with keep_loopback_node_address():  # every service of the shared test Ray on 127.0.0.1, like the CLI's own
            ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                     logging_level="warning", log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def musicnn_cache(tmp_path_factory):
    """The pretrained musicnn models, fetched once per session as a user does: ``spectrotune fetch musicnn --dest
    ROOT/musicnn --keep-wheel`` (pip downloads the 29 MB wheel). Returns ROOT, a cache root to use as
    ``SPECTROTUNE_CACHE``. Fails, naming pip's reason, when the package index cannot be reached: never skips."""
    import subprocess

    root = tmp_path_factory.mktemp("spectrotune-cache")
    cmd = [sys.executable, "-m", "spectrotune", "fetch", "musicnn", "--dest", str(root / "musicnn"), "--keep-wheel"]
    env = {k: v for k, v in os.environ.items() if k != "SPECTROTUNE_CACHE"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(cmd[1:])}` failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}",
                    pytrace=False)
    return root


def pytest_collection_modifyitems(config, items):
    """Every test that starts Ray through the shared fixture must carry the ``integration`` marker, so that
    ``pytest -m "not integration"`` stays fast and Ray-free; a test that forgets it fails collection, naming it."""
    unmarked = [item.nodeid for item in items
                if "ray_session" in getattr(item, "fixturenames", ()) and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError("tests that use ray_session need @pytest.mark.integration:\n  " + "\n  ".join(unmarked))
