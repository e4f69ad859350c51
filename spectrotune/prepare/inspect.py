"""``spectrotune inspect``: look at a prepared dataset the way a person would.

Prints the manifest summary, renders example spectrograms (clean next to each noisy variant of the same segment)
to ``examples.png``, and with ``export_audio=N`` writes N noisy segments and their clean originals as WAV so one
can listen to what the noise did. The audio is rebuilt from the source files and the per-segment seeds, so it is
bit-identical to what the pipeline computed; the source may be a folder or an object-store URI (``s3://``,
``gs://``), listed as prepare lists it and read through :func:`~spectrotune.sources.listing.local_copy` as prepare's
tasks read it. No ``ray``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.dataset import DatasetManifest
from spectrotune.errors import DatasetError
from spectrotune.sources.kinds import Windowing, cut_windows, noisy_copies, source_kind


def manifest_summary(manifest: DatasetManifest) -> str:
    """A few human-readable lines from ``manifest.json``."""
    c = manifest.counts
    n_mels, n_frames = manifest.input_shape
    lines = [
        f"source:   {manifest.source.path} ({manifest.source.kind})",
        f"labels:   {len(manifest.labels)}: {', '.join(manifest.labels)}",
        f"split:    {manifest.split.get('kind')}; tracks per split: "
        + ", ".join(f"{s} {n}" for s, n in c.tracks_per_split.items()),
        "rows:     " + ", ".join(f"{s} {n}" for s, n in c.rows_per_split.items()),
        f"variants: {', '.join(manifest.variants)}; noise {manifest.noise}",
        f"mel:      {n_mels} x {n_frames} ({manifest.mel.values})",
        f"silent segments: {c.silent_segments}; clips padded to one window: {c.padded_clips}",
        f"errors:   {manifest.errors.count}" + "".join(f"\n  - {e}" for e in manifest.errors.examples),
        f"config:   hash {manifest.config_hash}; took {manifest.timings.total_seconds:.1f} s",
    ]
    return "\n".join(lines)


def _examples(data: Path, manifest: DatasetManifest, *, n: int, seed: int):
    """Up to ``n`` (track_id, segment) pairs that have noisy variants (else clean-only examples)."""
    table = D.read_split(data, "train", columns=[D.TRACK_ID, D.SEGMENT, D.VARIANT, D.GENRE])
    noisy = [v for v in manifest.variants if v != D.CLEAN]
    rows = table.to_pylist()
    keys = sorted({(r["track_id"], r["segment"], r["genre"]) for r in rows if r["variant"] in noisy}) or sorted(
        {(r["track_id"], r["segment"], r["genre"]) for r in rows})
    if not keys:
        return [], noisy
    rng = np.random.default_rng(seed)
    picks = [keys[i] for i in sorted(rng.choice(len(keys), size=min(n, len(keys)), replace=False))]
    return picks, noisy


def render_examples(data: str | Path, path: str | Path, *, n: int = 4, seed: int = 0) -> Path:
    """Draw ``n`` train segments: clean next to each noisy variant. Returns the PNG path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = storage.norm(data)
    manifest = D.read_manifest(data)
    picks, noisy = _examples(data, manifest, n=n, seed=seed)
    if not picks:
        raise DatasetError(f"{data}: the train split is empty; nothing to draw")
    table = D.read_split(data, "train")
    index = {(r[D.TRACK_ID], r[D.SEGMENT], r[D.VARIANT]): i
             for i, r in enumerate(table.select([D.TRACK_ID, D.SEGMENT, D.VARIANT]).to_pylist())}
    mel = D.mel_array(table)
    columns = [D.CLEAN] + [v for v in noisy if any((t, s, v) in index for t, s, _ in picks)]
    fig = Figure(figsize=(3.2 * len(columns), 2.4 * len(picks)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(picks), len(columns), squeeze=False))
    for r, (track, seg, genre) in enumerate(picks):
        for c, variant in enumerate(columns):
            ax = axes[r, c]
            i = index.get((track, seg, variant))
            if i is None:
                ax.set_axis_off()
                continue
            ax.imshow(mel[i], origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{track} #{seg} ({genre})\n{variant}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def export_noisy_audio(data: str | Path, out: str | Path, *, n: int, seed: int = 0) -> list[Path]:
    """Write ``n`` noisy segments and their clean originals as WAV, rebuilt from the source and the seeds."""
    from spectrotune.audio import io as audio
    from spectrotune.audio import noise
    from spectrotune.sources.listing import list_source, local_copy

    data, out = storage.norm(data), Path(out)
    manifest = D.read_manifest(data)
    if not source_kind(manifest.source.kind).has_audio:
        raise DatasetError(f"{data}: --export-audio needs an audio source; this dataset was made from images")
    audio_config, noise_config = manifest.audio_config, manifest.noise_config
    picks, noisy = _examples(data, manifest, n=n, seed=seed)
    if not noisy:
        raise DatasetError(f"{data}: no noisy variants in the train split (noise was off)")
    source = storage.norm(manifest.source.path)
    if not storage.is_dir(source):
        raise DatasetError(f"{source}: source folder of this dataset is gone; cannot rebuild its audio")
    paths = {item.track_id: item.path for item in list_source(source, kind=manifest.source.kind).items}
    gone = sorted({track for track, _, _ in picks if track not in paths})
    if gone:
        raise DatasetError(f"{source}: track(s) {', '.join(gone)} of this dataset are no longer in its source; "
                           "cannot rebuild their audio")
    windowing = Windowing.from_config(audio_config, split="train")
    sr = windowing.sample_rate
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    background = None
    if any(noise.parse_variant(v)[0] == "file" for v in noisy):
        background = audio.decode(noise_config.background, sr=sr, min_seconds=0.1)
    for track, seg, _genre in picks:
        with local_copy(paths[track]) as local:
            clean = cut_windows(local, windowing)[0][seg : seg + 1]
        stem = f"{track}_seg{seg}"
        audio.write_wav(out / f"{stem}_clean.wav", clean[0], sr=sr)
        written.append(out / f"{stem}_clean.wav")
        copies = noisy_copies(clean, [noise.parse_variant(v) for v in noisy], seed=manifest.seed, track_id=track,
                              segment_indices=[seg], background=background)
        for variant, copy in zip(noisy, copies, strict=True):
            path = out / f"{stem}_{variant.replace('@', '_at_')}.wav"
            audio.write_wav(path, copy.audio[0], sr=sr)
            written.append(path)
    return written


def inspect_dataset(data: str | Path, *, out: str | Path | None = None, export_audio: int = 0, seed: int = 0) -> str:
    """Summary text; also writes ``examples.png`` (and WAVs when asked) under ``out`` (default DATA/_inspect).

    ``data`` may be a URI; ``out`` is a local folder (default ``./_inspect`` for a URI dataset).
    """
    data = storage.norm(data)
    manifest = D.read_manifest(data)
    if out is None:
        out = Path("_inspect").absolute() if storage.is_uri(data) else Path(data) / "_inspect"
    out = Path(out)
    text = manifest_summary(manifest)
    png = render_examples(data, out / "examples.png", seed=seed)
    text += f"\nexamples: {png}"
    if export_audio:
        wavs = export_noisy_audio(data, out / "audio", n=export_audio, seed=seed)
        text += f"\naudio:    {len(wavs)} WAV files in {out / 'audio'}"
    return text
