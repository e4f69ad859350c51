"""The ``spectrotune`` command line: thin subcommands over the package functions.

Each command parses its options, builds the config (:func:`spectrotune.config.load_config` with ``--set``) and calls
the package function of its stage, imported inside the command so ``--help`` loads neither torch nor Ray:

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
fetch      :func:`spectrotune.sources.fetch.fetch`
=========  =======================================================================================================

``python -m spectrotune`` and the ``jobs/*.py`` Ray job scripts run this same :func:`main`. Expected user errors
(:class:`~spectrotune.errors.SpectrotuneError`) are printed as one line and exit with code 2, without a traceback;
anything else is a bug and keeps its traceback. ``spectrotune <command> --help`` documents each command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from spectrotune import __version__
from spectrotune.errors import SpectrotuneError
from spectrotune.schema import SCORE

EXIT_USER_ERROR = 2


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="YAML config path or shipped config name (gtzan, spotify, demo); defaults if omitted")
    p.add_argument("--config", dest="config_opt", default=None, metavar="CONFIG", help="same as the positional")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set noise.enabled=false (repeatable)")


def _add_prepare_args(p: argparse.ArgumentParser, *, out_help: str) -> None:
    """Options of every command that prepares a corpus (prepare, pipeline)."""
    _add_config_args(p)
    p.add_argument("--source", required=True, help="corpus folder (GTZAN/audio <genre>/ folders or Spotify images)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared dataset")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any input failed to prepare")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _config(args: argparse.Namespace, **base):
    from spectrotune.config import load_config

    if args.config and args.config_opt and args.config != args.config_opt:
        raise SpectrotuneError(f"two configs given: {args.config!r} and --config {args.config_opt!r}")
    return load_config(args.config or args.config_opt, overrides=args.overrides, base=base)


def cmd_synth(args: argparse.Namespace) -> int:
    from spectrotune.sources.synth.corpus import generate_corpus

    paths = generate_corpus(args.out, genres=args.genres, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                            sr=args.sample_rate)
    print(f"wrote {len(paths)} clips to {Path(args.out) / 'genres_original'}")
    if args.images:
        from spectrotune.sources.spotify_render import render_spotify_corpus

        images = render_spotify_corpus(Path(args.out) / "genres_original", args.images, seed=args.seed,
                                       sr=args.sample_rate, max_clips=args.max_clips)
        print(f"wrote {len(images)} Spotify-style images to {args.images}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from spectrotune.prepare.driver import prepare

    base = {"prepare.strict": True} if args.strict else {}
    config = _config(args, **base)
    result = prepare(args.source, args.out, config=config, overwrite=args.overwrite, progress=not args.no_progress)
    print(result.summary())
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from spectrotune.prepare.inspect import inspect_dataset

    print(inspect_dataset(args.data, out=args.out, export_audio=args.export_audio, seed=args.seed))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from spectrotune.training.driver import train

    result = train(args.data, args.out, config=_config(args), progress=not args.no_progress)
    best = result.metrics
    print(f"best epoch {best.get('epoch')}: valid clip accuracy {best.get(SCORE, float('nan')):.3f}; "
          f"bundle: {result.bundle}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from spectrotune.tuning.cv import cross_validate
    from spectrotune.tuning.sweep import tune

    config = _config(args)
    folds = getattr(args, "folds", None) or args.cv
    if folds:
        cross_validate(config, out=args.out, folds=folds, source=args.source, resume=args.resume,
                       progress=not args.no_progress)
    else:
        if args.source:
            raise SpectrotuneError("--source is for cross-validation (--cv K); a sweep's sources are tune.space.source")
        tune(config, out=args.out, resume=args.resume, progress=not args.no_progress)
    return 0


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from spectrotune.config import EvaluateConfig
    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.evaluation.report import headline

    config = EvaluateConfig(baselines=not args.no_baselines)
    report = evaluate(args.bundle, args.data, out=args.out, config=config)
    print(headline(report))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from spectrotune.predict.core import format_predictions
    from spectrotune.predict.driver import predict

    use_ray = True if args.ray else (False if args.no_ray else None)
    result = predict(args.bundle, args.paths, top_k=args.top_k, timeline=args.timeline, output=args.output,
                     use_ray=use_ray)
    print(format_predictions(result.rows, result.top_k))
    print(result.summary())
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from spectrotune.evaluation.baseline_data import load_dataset_features
    from spectrotune.evaluation.baselines import run_baselines, write_baseline_report
    from spectrotune.evaluation.kaggle_csv import load_kaggle_csv
    from spectrotune.evaluation.report import baselines_markdown

    from spectrotune import storage

    if bool(args.data) == bool(args.kaggle_csv):
        raise SpectrotuneError("give exactly one of --data DIR or --kaggle-csv FILE")
    if args.data:
        tracks = load_dataset_features(args.data)
        out = args.out or storage.join(args.data, "_baselines")
    else:
        tracks = load_kaggle_csv(args.kaggle_csv, split=args.split, seed=args.seed)
        out = Path(args.out) if args.out else Path(args.kaggle_csv).with_suffix("").parent / "baselines"
    results = run_baselines(tracks, seed=args.seed)
    write_baseline_report(results, out)
    print(baselines_markdown(results))
    print(f"written to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from spectrotune.bundle import load_bundle
    from spectrotune.models.export import export_onnx

    bundle = load_bundle(args.bundle)
    n_mels, n_frames = bundle.input_shape
    path = export_onnx(bundle.model, args.onnx, n_mels=n_mels, n_frames=n_frames)
    print(f"wrote {path} (input 'mel' [batch, {n_mels}, {n_frames}], output 'logits' [batch, {len(bundle.labels)}])")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from spectrotune.flows import run_pipeline

    base = {"prepare.strict": True} if args.strict else {}
    run_pipeline(args.source, args.out, config=_config(args, **base), overwrite=args.overwrite,
                 progress=not args.no_progress)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from spectrotune.flows import run_demo

    run_demo(args.out, genres=args.genres, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
             overrides=args.overrides, overwrite=args.overwrite, progress=not args.no_progress)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from spectrotune.sources.fetch import fetch

    dest = fetch(args.name, args.dest, url=args.url, sha256=args.sha256, progress=not args.no_progress,
                 keep_archive=args.keep_archive)
    print(f"{args.name} is in {dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectrotune", description="Music-genre classification on Ray: "
                                     "prepare, train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"spectrotune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prepare", help="Ray Data pipeline: corpus folder -> Parquet dataset",
                       description="Decode, segment, add noise, compute log-mel and features on Ray Data; write "
                                   "Parquet shards partitioned by split with manifest.json and errors.parquet.")
    _add_prepare_args(p, out_help="output dataset folder")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("inspect", help="summarise a prepared dataset, render examples, export noisy audio",
                       description="Print the manifest summary, render clean-vs-noisy spectrograms to a PNG and "
                                   "optionally export noisy clips as WAV.")
    p.add_argument("data", help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", default=None, help="where to write the PNG/WAVs (default DATA/_inspect)")
    p.add_argument("--export-audio", type=int, default=0, metavar="N", help="write N noisy clips (and their clean "
                   "originals) as WAV, rebuilt bit-identically from the source and seeds")
    p.add_argument("--seed", type=int, default=0, help="which examples to show")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="train a CNN on a prepared dataset with Ray Train; export a model bundle",
                       description="Train config.model on the prepared dataset with Ray Train (CPU or GPUs, DDP, "
                                   "AMP on CUDA, checkpoints, resume). Rerunning with the same run name resumes. "
                                   "The best model is exported to OUT/bundle.")
    _add_config_args(p)
    p.add_argument("--data", required=True, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, curves, bundle/)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="hyperparameter sweep (Ray Tune, ASHA) over prepared datasets; --cv K: K-fold CV",
                       description="Sweep tune.space over the prepared datasets in sources (e.g. --set "
                                   "sources.gtzan=data/gtzan), each trial a Ray Train run; writes results.csv/.md, "
                                   "plots and the best model per source as a bundle with its test evaluation. "
                                   "With --cv K: K-fold cross-validation by track of the fixed config, CNN and "
                                   "baselines.")
    _add_tune_args(p)
    p.add_argument("--cv", type=int, default=None, metavar="K", help="K-fold cross-validation instead of a sweep")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("cv", help="K-fold cross-validation by track (same as tune --cv K)",
                       description="K folds by track, stratified by genre, over the train+valid tracks (test held "
                                   "out); each fold a parallel trial; mean ± std and per-fold clip accuracy for the "
                                   "CNN and the classical baselines in OUT/cv.json and cv.md.")
    _add_tune_args(p)
    p.add_argument("--folds", type=int, default=10, metavar="K", help="number of folds (default 10)")
    p.set_defaults(func=cmd_tune, cv=None)

    p = sub.add_parser("evaluate", help="test-split report: accuracy, F1, confusion matrix, robustness, baselines",
                       description="Evaluate a bundle on the test split of a prepared dataset; writes report.json, "
                                   "report.md and plots.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--data", required=True, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--out", default=None, help="report folder (default: next to the bundle, report/)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="genres of audio files or folders with a bundle",
                       description="Top-k genres per file; folders run as Ray Data batch inference.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--timeline", action="store_true", help="also per-segment predictions")
    p.add_argument("--output", default=None, help="write rows to FILE.csv or FILE.parquet")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ray", action="store_true", help="always use Ray Data")
    g.add_argument("--no-ray", action="store_true", help="never use Ray Data")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("baseline", help="classical baselines (RF, SVM, kNN, logistic regression)",
                       description="Fit the classical baselines on per-track handcrafted features of a prepared "
                                   "dataset, or on Kaggle's features_30_sec.csv / features_3_sec.csv (grouped by "
                                   "track so no track crosses splits).")
    p.add_argument("--data", default=None, help="prepared dataset: a folder or a URI (s3://...)")
    p.add_argument("--kaggle-csv", default=None, help="Kaggle GTZAN features CSV instead of a dataset")
    p.add_argument("--split", default="fault_filtered", choices=["fault_filtered", "stratified"],
                   help="with --kaggle-csv: how tracks are split (default fault_filtered)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where baselines.json/.md go")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("export", help="export a bundle's model to ONNX (needs spectrotune[onnx])",
                       description="Write an ONNX model with a dynamic batch axis.")
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("pipeline", help="prepare -> train -> evaluate in one go",
                       description="Prepare SOURCE into OUT/dataset, train into OUT/run (bundle in OUT/run/bundle), "
                                   "evaluate into OUT/run/report, with one config.")
    _add_prepare_args(p, out_help="output folder (dataset/, run/, run/report/)")
    p.set_defaults(func=cmd_pipeline)

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
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fetch", help="download and safely extract a dataset (gtzan)",
                       description="Download a dataset archive (resuming an interrupted download), verify its "
                                   "checksum when known and extract it safely into DEST. The Spotify set is on "
                                   "Kaggle and needs credentials: see README.")
    p.add_argument("name", choices=["gtzan"], help="dataset name")
    p.add_argument("--dest", required=True, help="destination folder")
    p.add_argument("--url", default=None, help="download from this URL instead (a mirror, or file:// of a local copy)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extraction")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_fetch)
    return parser


def command_names() -> tuple[str, ...]:
    """Names of every subcommand of :func:`build_parser`, sorted (``("baseline", "cv", "demo", ...)``)."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return tuple(sorted(commands.choices))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpectrotuneError as e:
        print(f"spectrotune: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("spectrotune: interrupted", file=sys.stderr)
        return 130
    finally:
        if "spectrotune.runtime" in sys.modules:  # only commands that ran on Ray imported it
            sys.modules["spectrotune.runtime"].shutdown_ray()


if __name__ == "__main__":
    sys.exit(main())
