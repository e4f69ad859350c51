"""The ``spectrotune`` command line: thin subcommands over the package functions.

This module parses the options; each command (:mod:`spectrotune.commands`) builds the config
(:func:`spectrotune.config.load_config` with ``--set``) and calls the package function of its stage, imported inside
the command so ``--help`` loads neither torch nor Ray:

=========  =======================================================================================================
synth      :func:`spectrotune.sources.synth.corpus.generate_corpus` (``--images``: ``sources.spotify_render``)
prepare    :func:`spectrotune.prepare.driver.prepare`
inspect    :func:`spectrotune.prepare.inspect.inspect_dataset`
train      :func:`spectrotune.training.driver.train`
tune, cv   :func:`spectrotune.tuning.sweep.tune`, :func:`spectrotune.tuning.cv.cross_validate` (``--cv K``)
evaluate   :func:`spectrotune.evaluation.evaluate.evaluate`
predict    :func:`spectrotune.predict.driver.predict`
baseline   :func:`spectrotune.evaluation.baselines.run_baselines`
export     :func:`spectrotune.models.export.export_onnx` on :func:`spectrotune.bundle.load_bundle`'s model
pipeline   :func:`spectrotune.flows.run_pipeline`
demo       :func:`spectrotune.flows.run_demo`
fetch      :func:`spectrotune.sources.fetch.fetch`;
           ``fetch musicnn``: :func:`spectrotune.sources.musicnn_fetch.fetch_musicnn`
tag        :func:`spectrotune.predict.tag.tag`
serve      :func:`spectrotune.serving.app.serve_bundle`
=========  =======================================================================================================

``python -m spectrotune`` and the ``jobs/*.py`` Ray job scripts run this same :func:`main`. Every command takes
``-q/--quiet`` and ``-v/--verbose``: messages go through :mod:`logging` to stderr (:mod:`spectrotune.console`),
results to stdout. Errors are one line on stderr with the exit status of :data:`spectrotune.console.EXIT_CODES`:
1 for inputs that failed (:class:`~spectrotune.errors.InputsFailedError`), 2 for usage and config errors
(:class:`~spectrotune.errors.SpectrotuneError`), 3 for anything unexpected (``-v`` adds the traceback), 130 for
Ctrl-C. ``spectrotune <command> --help`` documents each command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spectrotune import __version__, commands, console
from spectrotune.errors import InputsFailedError, SpectrotuneError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="YAML config path or shipped config name (gtzan, spotify, demo); defaults if omitted")
    p.add_argument("--config", dest="config_opt", default=None, metavar="CONFIG", help="same as the positional")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set noise.enabled=false (repeatable)")


def _add_prepare_args(p: argparse.ArgumentParser, *, out_help: str) -> None:
    """Options of every command that prepares a corpus (prepare, pipeline)."""
    _add_config_args(p)
    p.add_argument("--source", required=True, help="corpus folder or URI (s3://bucket/gtzan/): GTZAN/audio "
                   "<genre>/ folders or Spotify images")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared dataset")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted prepare of the dataset (same config and source): tasks that finished "
                        "are kept, the rest run; without one it prepares from the start")
    p.add_argument("--strict", action="store_true", help="exit 1 if any input failed to prepare (it always does when every input failed)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


_STRICT_TRACKING = ("fail when MLflow cannot be used (not installed, server unreachable, bad URI) instead of one "
                    "warning; same as --set tracking.strict=true")


def _add_tune_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p)
    p.add_argument("--out", default="spectrotune-tune",
                   help="output folder: results table, plots, best bundles; the Tune experiment in OUT/sweeps unless "
                        "tune.storage_path is set (default ./spectrotune-tune)")
    p.add_argument("--resume", metavar="NAME", default=None,
                   help="continue the interrupted sweep NAME (same --out / tune.storage_path); finished trials are "
                        "not run again")
    p.add_argument("--source", metavar="NAME", default=None, help="with cross-validation: only this source")
    p.add_argument("--no-progress", action="store_true", help="hide Tune's status table")
    p.add_argument("--strict-tracking", action="store_true", help=_STRICT_TRACKING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectrotune", description="Music-genre classification on Ray: "
                                     "prepare, train, evaluate, predict. Every command takes -q/--quiet and "
                                     "-v/--verbose; messages go to stderr, results to stdout.",
                                     epilog=console.exit_codes_text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"spectrotune {__version__}")
    sub = console.Subcommands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

    p = sub.add_parser("synth", help="write the synthetic corpus (GTZAN layout; optionally Spotify-style images)",
                       description="Write a synthetic GTZAN-layout corpus: OUT/genres_original/<genre>/*.wav.")
    p.add_argument("out", help="output folder")
    p.add_argument("--genres", type=int, default=10, help="number of genres (default 10)")
    p.add_argument("--tracks", type=int, default=20, help="tracks per genre (default 20)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per track (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--images", metavar="DIR", default=None,
                   help="also render the audio as Spotify-layout JPG images into DIR")
    p.add_argument("--max-clips", type=int, default=None, help="with --images: at most this many 3-s clips per track")
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("prepare", help="Ray Data pipeline: corpus folder -> Parquet dataset",
                       description="Decode, segment, add noise, compute log-mel and features on Ray Data; write "
                                   "Parquet shards partitioned by split with manifest.json and errors.parquet.")
    _add_prepare_args(p, out_help="output dataset folder")
    p.set_defaults(func=commands.cmd_prepare)

    p = sub.add_parser("inspect", help="summarise a prepared dataset, render examples, export noisy audio",
                       description="Print the manifest summary, render clean-vs-noisy spectrograms to a PNG and "
                                   "optionally export noisy clips as WAV.")
    p.add_argument("data", help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", default=None, help="where to write the PNG/WAVs (default DATA/_inspect)")
    p.add_argument("--export-audio", type=int, default=0, metavar="N", help="write N noisy clips (and their clean "
                   "originals) as WAV, rebuilt bit-identically from the source and seeds")
    p.add_argument("--seed", type=int, default=0, help="which examples to show")
    p.set_defaults(func=commands.cmd_inspect)

    p = sub.add_parser("train", help="train a CNN on a prepared dataset with Ray Train; export a model bundle",
                       description="Train config.model on the prepared dataset with Ray Train (CPU or GPUs, DDP, "
                                   "AMP on CUDA, checkpoints, resume). Rerunning with the same run name resumes. "
                                   "The best model is exported to OUT/bundle.")
    _add_config_args(p)
    p.add_argument("--data", required=True, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, curves, bundle/, tb/)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--strict-tracking", action="store_true", help=_STRICT_TRACKING)
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("tune", help="hyperparameter sweep (Ray Tune, ASHA) over prepared datasets; --cv K: K-fold CV",
                       description="Sweep tune.space over the prepared datasets in sources (e.g. --set "
                                   "sources.gtzan=data/gtzan), each trial a Ray Train run; writes results.csv/.md, "
                                   "plots and the best model per source as a bundle with its test evaluation. "
                                   "With --cv K: K-fold cross-validation by track of the fixed config, CNN and "
                                   "baselines.")
    _add_tune_args(p)
    p.add_argument("--cv", type=int, default=None, metavar="K", help="K-fold cross-validation instead of a sweep")
    p.set_defaults(func=commands.cmd_tune)

    p = sub.add_parser("cv", help="K-fold cross-validation by track (same as tune --cv K)",
                       description="K folds by track, stratified by genre, over the train+valid tracks (test held "
                                   "out); each fold a parallel trial; mean ± std and per-fold clip accuracy for the "
                                   "CNN and the classical baselines in OUT/cv.json and cv.md.")
    _add_tune_args(p)
    p.add_argument("--folds", type=int, default=10, metavar="K", help="number of folds (default 10)")
    p.set_defaults(func=commands.cmd_tune, cv=None)

    p = sub.add_parser("evaluate", help="test-split report: accuracy, F1, confusion matrix, robustness, baselines",
                       description="Evaluate a bundle on the test split of a prepared dataset; writes report.json, "
                                   "report.md and plots.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--data", required=True, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", default=None, help="report folder (default: next to the bundle, report/)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    _add_embedding_args(p)
    p.add_argument("--log-to", metavar="RUN_ID", default=None,
                   help="attach the report's metrics and plots to this MLflow run (default: the run that trained the "
                        "bundle, when it was tracked; 'none': attach nothing)")
    p.add_argument("--tracking-uri", metavar="URI", default=None,
                   help="MLflow tracking URI of that run (default: the one the bundle records)")
    p.add_argument("--strict-tracking", action="store_true", help=_STRICT_TRACKING.split(";")[0])
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("predict", help="genres of audio files or folders with a bundle",
                       description="Top-k genres per file; folders run as Ray Data batch inference.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--timeline", action="store_true", help="also per-segment predictions")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="how the rows go to stdout: aligned text (default), CSV (the columns of --output) or JSON "
                        "(with --timeline each file's segments too)")
    p.add_argument("--output", default=None, help="also write rows to FILE.csv or FILE.parquet")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any file could not be predicted (it always does when every file failed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ray", action="store_true", help="always use Ray Data")
    g.add_argument("--no-ray", action="store_true", help="never use Ray Data")
    p.set_defaults(func=commands.cmd_predict)

    p = sub.add_parser("serve", help="serve a bundle over HTTP on Ray Serve, with a web page to try it",
                       description="Ray Serve deployment of a bundle: POST /v1/predict (and /v1/embed), GET "
                                   "/v1/model, /healthz, and a web page at /. Runs until Ctrl-C.")
    p.add_argument("bundle", help="model bundle folder (or URI)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--replicas", type=int, default=1, help="model replicas, each with the bundle loaded (default 1)")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests one replica runs as one batch (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload in MB (default 50)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest audio accepted, in s (default 600)")
    p.add_argument("--max-concurrent-uploads", type=int, default=8,
                   help="uploads one replica handles at once; more get 429 (default 8)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per replica (default 1)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per replica (default 0)")
    p.set_defaults(func=commands.cmd_serve)

    p = sub.add_parser("baseline", help="classical baselines (RF, SVM, kNN, logistic regression)",
                       description="Fit the classical baselines on per-track handcrafted features of a prepared "
                                   "dataset (and an SVM and a logistic regression on its tracks' musicnn "
                                   "embeddings), or on Kaggle's features_30_sec.csv / features_3_sec.csv (grouped by "
                                   "track so no track crosses splits).")
    p.add_argument("--data", default=None, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--kaggle-csv", default=None, help="Kaggle GTZAN features CSV instead of a dataset")
    p.add_argument("--split", default="fault_filtered", choices=["fault_filtered", "stratified"],
                   help="with --kaggle-csv: how tracks are split (default fault_filtered)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where baselines.json/.md go")
    _add_embedding_args(p)
    p.set_defaults(func=commands.cmd_baseline)

    p = sub.add_parser("export", help="export a bundle's model to ONNX (needs spectrotune[onnx])",
                       description="Write an ONNX model with a dynamic batch axis.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("pipeline", help="prepare -> train -> evaluate in one go",
                       description="Prepare SOURCE into OUT/dataset, train into OUT/run (bundle in OUT/run/bundle), "
                                   "evaluate into OUT/run/report, with one config.")
    _add_prepare_args(p, out_help="output folder (dataset/, run/, run/report/)")
    p.set_defaults(func=commands.cmd_pipeline)

    p = sub.add_parser("demo", help="the whole flow on the synthetic corpus, offline",
                       description="synth -> prepare -> train -> evaluate (+ baselines) with the demo config.")
    p.add_argument("--out", default="spectrotune-demo", help="output folder (default ./spectrotune-demo)")
    p.add_argument("--genres", type=int, default=10)
    p.add_argument("--tracks", type=int, default=10, help="tracks per genre")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=commands.cmd_demo)

    p = sub.add_parser("fetch", help="download a dataset (gtzan) or the pretrained musicnn models (musicnn)",
                       description="gtzan: download a dataset archive (resuming an interrupted download), verify its "
                                   "checksum when known and extract it safely into DEST. The Spotify set is on "
                                   "Kaggle and needs credentials: see README. musicnn: get the musicnn 0.1.0 wheel "
                                   "(pip download, or --wheel FILE), verify its sha256 and convert its four "
                                   "pretrained models to safetensors in the cache (DEST, default "
                                   "$SPECTROTUNE_CACHE/musicnn or ~/.cache/spectrotune/musicnn); idempotent.")
    p.add_argument("name", choices=["gtzan", "musicnn"], help="what to fetch")
    p.add_argument("--dest", default=None, help="destination folder (required for gtzan)")
    p.add_argument("--wheel", default=None, metavar="FILE",
                   help="musicnn: use this musicnn-0.1.0-py3-none-any.whl instead of downloading it with pip")
    p.add_argument("--keep-wheel", action="store_true", help="musicnn: also keep the verified wheel in DEST")
    p.add_argument("--url", default=None, help="download from this URL instead (a mirror, or file:// of a local copy)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extraction")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=commands.cmd_fetch)

    p = sub.add_parser("tag", help="music tags of audio files with a pretrained musicnn model",
                       description="Tag probabilities per 3-s window (the taggram) and their mean per file, with "
                                   "one of the pretrained musicnn/vgg models (run `spectrotune fetch musicnn` "
                                   "first); folders run as Ray Data batch inference.")
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--model", default="MSD_musicnn",
                   choices=["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"], help="default MSD_musicnn")
    p.add_argument("--top-k", type=int, default=5, help="tags per file (default 5)")
    p.add_argument("--windows", action="store_true", help="also print each window's top tags")
    p.add_argument("--output", default=None,
                   help="write the file rows to FILE.csv or FILE.parquet and the taggram to FILE.taggram.<suffix>")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="the musicnn cache folder (what fetch musicnn --dest wrote; default $SPECTROTUNE_CACHE/musicnn"
                        " or ~/.cache/spectrotune/musicnn)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ray", action="store_true", help="always use Ray Data")
    g.add_argument("--no-ray", action="store_true", help="never use Ray Data")
    p.set_defaults(func=commands.cmd_tag)
    return parser


def command_names() -> tuple[str, ...]:
    """Names of every subcommand of :func:`build_parser`, sorted (``("baseline", "cv", "demo", ...)``)."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return tuple(sorted(commands.choices))


def _add_embedding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embeddings", choices=["pool", "penultimate", "none"], default="pool",
                   help="also fit an SVM and a logistic regression on musicnn embeddings of the tracks: max_pool + "
                        "mean_pool (default), the penultimate layer, or none (needs spectrotune fetch musicnn)")
    p.add_argument("--embedding-model", choices=["MSD_musicnn", "MTT_musicnn"], default="MSD_musicnn",
                   help="the pretrained model of --embeddings (default MSD_musicnn)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (:data:`spectrotune.console.EXIT_CODES`; a usage error raises
    ``SystemExit(2)`` from argparse, ``--help`` and ``--version`` ``SystemExit(0)``)."""
    args = build_parser().parse_args(argv)
    level = console.verbosity(quiet=args.quiet, verbose=args.verbose)
    console.configure(level).debug(f"spectrotune {__version__} on Python {sys.version.split()[0]}: "
                                   f"{' '.join(sys.argv[1:] if argv is None else argv)}")
    from spectrotune import runtime  # standard library only; imports ray when a command starts it

    runtime.show_ray_logs(level == console.VERBOSE)
    try:
        return int(args.func(args) or 0)
    except InputsFailedError as e:
        return console.report_error(e, console.EXIT_INPUTS_FAILED, verbose=args.verbose)
    except SpectrotuneError as e:
        return console.report_error(e, console.EXIT_USAGE, verbose=args.verbose)
    except KeyboardInterrupt:
        print("spectrotune: interrupted", file=sys.stderr)
        return console.EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - a runtime failure: one line (the traceback with -v), exit code 3
        return console.report_error(e, console.EXIT_RUNTIME, verbose=args.verbose, unexpected=True)
    finally:
        runtime.shutdown_ray()  # only a Ray that this command started


if __name__ == "__main__":
    sys.exit(main())
