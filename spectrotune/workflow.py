"""prepare -> train -> evaluate in one call: what ``jobs/pipeline.py``, ``spectrotune pipeline`` and the demo run.

Layout of ``out``: ``dataset/`` (prepared shards), ``run/`` (checkpoints, curves, ``bundle/``) and
``run/report/`` (report.json, report.md, plots). ``out`` may be a URI (``s3://bucket/run1``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spectrotune import storage
from spectrotune.config import Config


def run_pipeline(
    source: str | Path,
    out: str | Path,
    *,
    config: Config,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    steps: tuple[str, str, str] = ("[1/3]", "[2/3]", "[3/3]"),
) -> dict:
    """Prepare ``source`` into ``out/dataset``, train into ``out/run``, evaluate into ``out/run/report``.

    With ``overwrite`` an existing ``out/dataset`` is replaced and, once the new one is written, ``out/run`` is
    removed: its checkpoints were trained on the old data. Without it an existing dataset is refused.

    Returns the evaluation report (see :func:`spectrotune.evaluate.evaluate`).
    """
    from spectrotune.evaluate import evaluate, headline
    from spectrotune.pipeline import prepare
    from spectrotune.train import train

    out = storage.norm(out)
    dataset, run, report_dir = storage.join(out, "dataset"), storage.join(out, "run"), storage.join(out, "run", "report")
    log(f"{steps[0]} preparing {source} with Ray Data")
    prepared = prepare(source, dataset, config=config, overwrite=overwrite, progress=progress, log=log)
    log(prepared.summary())
    if overwrite and storage.exists(run):
        # Starting over: the old run's checkpoints, bundle and report belong to the data just replaced.
        storage.delete(run)
    log(f"{steps[1]} training {config.model.name} with Ray Train for up to {config.train.epochs} epochs")
    trained = train(dataset, run, config=config, progress=progress, log=log)
    log(f"{steps[2]} evaluating on the test split (robustness to noise, classical baselines)")
    report = evaluate(trained.bundle, dataset, out=report_dir, config=config.evaluate, log=log)
    log(headline(report))
    log(f"report: {storage.join(report_dir, 'report.md')}   bundle: {trained.bundle}")
    return report
