"""``spectrotune demo``: the whole flow offline on the synthetic corpus.

synth -> prepare (Ray Data) -> train (Ray Train) -> evaluate (+ classical baselines), with the shipped ``demo``
config, in a few minutes on a 2-core laptop. The synthetic genres are made to be learnable but not trivial, so the
numbers show the pipeline works — they say nothing about accuracy on real music.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spectrotune.config import load_config
from spectrotune.errors import OutputExistsError

# Class overlap of the demo corpus: high enough that the CNN is clearly imperfect, low enough to beat chance widely.
DEMO_BORROW = 1.4
DISCLAIMER = ("Note: the demo corpus is synthetic; these accuracies show the pipeline works and say nothing about "
              "accuracy on real music.")


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
    log: Callable[[str], None] = print,
) -> dict:
    """Run the demo into ``out`` (corpus/, dataset/, run/ with run/bundle and run/report). Returns the report."""
    from spectrotune.synth import generate_corpus
    from spectrotune.workflow import run_pipeline

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
