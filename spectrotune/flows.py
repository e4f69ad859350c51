"""The flows that chain the stages: prepare -> train -> evaluate (:func:`run_pipeline`, what ``jobs/pipeline.py`` and
``spectrotune pipeline`` run) and ``spectrotune demo`` (:func:`run_demo`: synth first, then the same chain).

Layout of ``out``: ``dataset/`` (prepared shards), ``run/`` (checkpoints, curves, ``bundle/``) and
``run/report/`` (report.json, report.md, plots). ``out`` may be a URI (``s3://bucket/run1``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spectrotune import storage
from spectrotune.config import Config, load_config
from spectrotune.errors import InputsFailedError, OutputExistsError
from spectrotune.schema import ERRORS

logger = logging.getLogger(__name__)


# Class overlap of the demo corpus: high enough that the CNN is clearly imperfect, low enough to beat chance widely.
DEMO_BORROW = 1.4
DISCLAIMER = ("Note: the demo corpus is synthetic; these accuracies show the pipeline works and say nothing about "
              "accuracy on real music.")


def run_pipeline(
    source: str | Path,
    out: str | Path,
    *,
    config: Config,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
    steps: tuple[str, str, str] = ("[1/3]", "[2/3]", "[3/3]"),
) -> dict:
    """Prepare ``source`` into ``out/dataset``, train into ``out/run``, evaluate into ``out/run/report``.

    With ``overwrite`` an existing ``out/dataset`` is replaced and, once the new one is written, ``out/run`` is
    removed: its checkpoints were trained on the old data. Without it an existing dataset is refused. ``resume``
    finishes an interrupted prepare of ``out/dataset`` (:mod:`spectrotune.prepare.resume`).

    Returns the evaluation report (see :func:`spectrotune.evaluation.evaluate.evaluate`).
    """
    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.evaluation.report import headline
    from spectrotune.prepare.driver import prepare
    from spectrotune.training.driver import train

    out = storage.norm(out)
    dataset, run, report_dir = storage.join(out, "dataset"), storage.join(out, "run"), storage.join(out, "run", "report")
    log(f"{steps[0]} preparing {source} with Ray Data")
    prepared = prepare(source, dataset, config=config, overwrite=overwrite, resume=resume, progress=progress, log=log)
    log(prepared.summary())
    if prepared.all_failed:
        raise InputsFailedError(f"every input of {source} failed, nothing to train on; see "
                                f"{storage.join(prepared.out, ERRORS)}")
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


def run_demo(
    out: str | Path,
    *,
    genres: int = 10,
    tracks: int = 10,
    seconds: float = 30.0,
    seed: int = 0,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> dict:
    """``spectrotune demo``: the whole flow offline on the synthetic corpus, with the shipped ``demo`` config.

    synth -> prepare (Ray Data) -> train (Ray Train) -> evaluate (+ classical baselines), in a few minutes on a
    2-core laptop. The synthetic genres are learnable but not trivial, so the numbers show the pipeline works; they
    say nothing about accuracy on real music.

    Runs into ``out`` (corpus/, dataset/, run/ with run/bundle and run/report). Returns the report."""
    from spectrotune.sources.synth.corpus import generate_corpus

    out = Path(out).absolute()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: demo output exists; pass --overwrite to replace it")
    config = load_config("demo", overrides=[f"seed={seed}", *overrides])
    t0 = time.perf_counter()
    log(f"[1/4] synthesising {genres} genres x {tracks} tracks x {seconds:g} s into {out / 'corpus'}")
    generate_corpus(out / "corpus", genres=genres, tracks=tracks, seconds=seconds, seed=seed, borrow=DEMO_BORROW)
    report = run_pipeline(out / "corpus", out, config=config, overwrite=True, progress=progress, log=log,
                          steps=("[2/4]", "[3/4]", "[4/4]"))
    log(f"demo finished in {time.perf_counter() - t0:.0f} s")
    log(DISCLAIMER)
    return report
