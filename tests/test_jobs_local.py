"""The README's first cluster-section line, ``python jobs/pipeline.py CONFIG --source DIR --out DIR``: a job script
run locally starts its own Ray and does what the CLI does. Run as a user would (its own process, no Ray variables),
with the shipped ``demo`` config on a synthetic corpus instead of GTZAN, which no test machine has."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from spectrotune.sources.synth.corpus import generate_corpus

pytestmark = pytest.mark.integration  # the job starts a local Ray

REPO = Path(__file__).resolve().parents[1]
TINY = ["train.epochs=1", "model.width=8", "model.depth=2", "features.n_mels=32", "evaluate.snr_db=[10]",
        "evaluate.noise_kinds=[white]", "noise.variants=[{kind: white, snr_db: 10}]"]


def test_pipeline_job_runs_locally_as_the_readme_shows(tmp_path):
    generate_corpus(tmp_path / "data", genres=3, tracks=4, seconds=6.0, seed=5, borrow=0.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    ray_tmp = tempfile.mkdtemp(prefix="st-job-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env["RAY_TMPDIR"] = ray_tmp
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "jobs" / "pipeline.py"), "demo", "--source", str(tmp_path / "data"),
             "--out", str(tmp_path / "out"), *(a for kv in TINY for a in ("--set", kv))],
            capture_output=True, text=True, timeout=420, env=env, cwd=tmp_path, check=False, start_new_session=True)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "dataset" / "manifest.json").read_text())
    assert manifest["counts"]["tracks"] == 12
    assert json.loads((tmp_path / "out" / "run" / "bundle" / "bundle.json").read_text())["labels"] == manifest["labels"]
    report = json.loads((tmp_path / "out" / "run" / "report" / "report.json").read_text())
    assert 0.0 <= report["clip_accuracy"] <= 1.0
