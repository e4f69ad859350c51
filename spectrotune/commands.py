"""The commands of ``spectrotune``: one function per subcommand, each calling its stage's package function.

:mod:`spectrotune.cli` parses the options and hands the ``argparse.Namespace`` to the command (its ``func``). A
command imports its package function inside itself, so ``spectrotune --help`` loads neither torch nor Ray; it
prints its result on stdout (messages go to the ``spectrotune`` logger, :mod:`spectrotune.console`), returns 0, and
raises :class:`~spectrotune.errors.SpectrotuneError` (exit 2) or :class:`~spectrotune.errors.InputsFailedError`
(exit 1) to fail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spectrotune.errors import ConfigError, InputsFailedError, SpectrotuneError
from spectrotune.schema import SCORE


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
    result = prepare(args.source, args.out, config=config, overwrite=args.overwrite, resume=args.resume,
                     progress=not args.no_progress)
    print(result.summary())
    if result.all_failed:
        raise InputsFailedError(f"every input failed ({result.n_failed}); nothing was prepared")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from spectrotune.prepare.inspect import inspect_dataset

    print(inspect_dataset(args.data, out=args.out, export_audio=args.export_audio, seed=args.seed))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from spectrotune.training.driver import train

    base = {"tracking.strict": True} if args.strict_tracking else {}
    result = train(args.data, args.out, config=_config(args, **base), progress=not args.no_progress)
    best = result.metrics
    print(f"best epoch {best.get('epoch')}: valid clip accuracy {best.get(SCORE, float('nan')):.3f}; "
          f"bundle: {result.bundle}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from spectrotune.tuning.cv import cross_validate
    from spectrotune.tuning.sweep import tune

    config = _config(args, **({"tracking.strict": True} if args.strict_tracking else {}))
    folds = getattr(args, "folds", None) or args.cv
    if folds:
        cross_validate(config, out=args.out, folds=folds, source=args.source, resume=args.resume,
                       progress=not args.no_progress)
    else:
        if args.source:
            raise SpectrotuneError("--source is for cross-validation (--cv K); a sweep's sources are tune.space.source")
        tune(config, out=args.out, resume=args.resume, progress=not args.no_progress)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from spectrotune.config import EvaluateConfig
    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.evaluation.report import headline

    config = EvaluateConfig(baselines=not args.no_baselines, embeddings=args.embeddings,
                            embedding_model=args.embedding_model)
    report = evaluate(args.bundle, args.data, out=args.out, config=config, log_to=args.log_to,
                      tracking_uri=args.tracking_uri, strict_tracking=args.strict_tracking)
    print(headline(report))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from spectrotune.predict.driver import predict
    from spectrotune.predict.files import render

    if args.format == "csv" and args.timeline and not args.output:
        raise ConfigError("--timeline with --format csv: the timeline is a second table; write both with --output "
                          "FILE.csv (the timeline goes to FILE.timeline.csv), or use --format json")
    use_ray = True if args.ray else (False if args.no_ray else None)
    result = predict(args.bundle, args.paths, top_k=args.top_k, timeline=args.timeline, output=args.output,
                     use_ray=use_ray)
    sys.stdout.write(render(result.rows, result.timeline if args.timeline else None, top_k=result.top_k,
                            fmt=args.format))
    sys.stdout.flush()
    failed = sum(1 for row in result.rows if row["status"] == "error")
    if failed == len(result.rows) or (failed and args.strict):
        raise InputsFailedError(f"{failed} of {len(result.rows)} file(s) could not be predicted"
                                + ("" if args.strict else " (every one)") + "; each is listed with its reason")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from spectrotune.serving.app import serve_bundle
    from spectrotune.serving.options import ServeOptions

    options = ServeOptions(host=args.host, port=args.port, replicas=args.replicas, max_batch_size=args.max_batch_size,
                           max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                           max_concurrent_uploads=args.max_concurrent_uploads, num_cpus=args.num_cpus,
                           num_gpus=args.num_gpus)
    serve_bundle(args.bundle, options)
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from spectrotune.errors import DatasetError
    from spectrotune.evaluation.baseline_data import load_dataset_features
    from spectrotune.evaluation.baselines import run_baselines, write_baseline_report
    from spectrotune.evaluation.kaggle_csv import load_kaggle_csv
    from spectrotune.evaluation.report import baselines_markdown

    from spectrotune import storage

    if bool(args.data) == bool(args.kaggle_csv):
        raise SpectrotuneError("give exactly one of --data DIR or --kaggle-csv FILE")
    notes: list[str] = []
    if args.data:
        from spectrotune.evaluation.embeddings import embedding_baselines

        out = args.out or storage.join(args.data, "_baselines")
        try:
            results = run_baselines(load_dataset_features(args.data), seed=args.seed)
        except DatasetError as e:  # e.g. features.handcrafted: false; the embeddings may still run
            results, notes = {}, [f"handcrafted-feature baselines not run: {e}."]
        # the musicnn embeddings of the dataset's tracks beside the handcrafted features (Ray Data)
        emb = embedding_baselines(args.data, model=args.embedding_model, layer=args.embeddings, seed=args.seed)
        results |= emb.get("results", {})
        notes += [] if emb["available"] else [f"musicnn embeddings not run: {emb['reason']}."]
        if not results:
            raise DatasetError(" ".join(notes))
    else:
        tracks = load_kaggle_csv(args.kaggle_csv, split=args.split, seed=args.seed)
        out = Path(args.out) if args.out else Path(args.kaggle_csv).with_suffix("").parent / "baselines"
        results = run_baselines(tracks, seed=args.seed)
        if args.embeddings != "none":
            notes = ["musicnn embeddings not run: a feature CSV has no audio (they need --data DIR)."]
    write_baseline_report(results, out, notes=notes)
    print(baselines_markdown(results, notes=notes))
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
    run_pipeline(args.source, args.out, config=_config(args, **base), overwrite=args.overwrite, resume=args.resume,
                 progress=not args.no_progress)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from spectrotune.flows import run_demo

    run_demo(args.out, genres=args.genres, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
             overrides=args.overrides, overwrite=args.overwrite, progress=not args.no_progress)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    if args.name == "musicnn":
        from spectrotune.sources.musicnn_fetch import fetch_musicnn

        if args.url or args.sha256:
            raise ConfigError("fetch musicnn: --url/--sha256 are for datasets; the wheel comes from pip or --wheel")
        print(f"musicnn models are in {fetch_musicnn(wheel=args.wheel, dest=args.dest, keep_wheel=args.keep_wheel)}")
        return 0
    if args.dest is None or args.wheel or args.keep_wheel:
        raise ConfigError(f"fetch {args.name}: --dest DIR is required, and --wheel/--keep-wheel are for musicnn")
    from spectrotune.sources.fetch import fetch

    dest = fetch(args.name, args.dest, url=args.url, sha256=args.sha256, progress=not args.no_progress,
                 keep_archive=args.keep_archive)
    print(f"{args.name} is in {dest}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from spectrotune.predict.tag import format_tags, tag

    use_ray = True if args.ray else (False if args.no_ray else None)
    result = tag(args.paths, model=args.model, top_k=args.top_k, cache=args.cache, output=args.output,
                 use_ray=use_ray)
    print(format_tags(result.rows, result.top_k, windows=result.windows if args.windows else None, tags=result.tags))
    if all(r["status"] != "ok" for r in result.rows):
        raise InputsFailedError(f"none of the {len(result.rows)} file(s) could be tagged; each is listed with its "
                                "reason")
    return 0
