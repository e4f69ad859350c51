"""One batch of files through the prepare task, without Ray: shards, counts, errors, and rows equal to the shared
audio chain (so predict and evaluate, which run that chain, rebuild them bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from spectrotune import dataset as D
from spectrotune.config import load_config
from spectrotune.prepare.task import BatchResult, merge_results, process_batch
from spectrotune.sources.kinds import AUDIO, SPOTIFY, LogMel, Windowing, cut_windows, noisy_copies
from spectrotune.sources.listing import SourceItem

SR = 22050
OVERRIDES = ["features.n_mels=16", "features.n_fft=512", "features.hop_length=256", "audio.segment_seconds=1.0",
             "audio.min_seconds=0.5", "features.handcrafted=false", "noise.variants=[{kind: white, snr_db: 10}]"]


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)
            + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    files = {"blues.00000": (2.5, 110.0), "jazz.00000": (0.6, 220.0)}  # 2 windows; shorter than one: padded
    items = []
    for track, (seconds, freq) in files.items():
        path = root / "corpus" / track.split(".")[0] / f"{track}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(seconds, freq), SR, subtype="FLOAT")
        items.append(SourceItem(path=str(path), genre=track.split(".")[0], track_id=track))
    bad = root / "corpus" / "jazz" / "jazz.00001.wav"
    bad.write_text("this is not audio\n" * 20)
    items.append(SourceItem(path=str(bad), genre="jazz", track_id="jazz.00001"))
    config = load_config("demo", overrides=OVERRIDES)
    kwargs = {"splits": {i.track_id: "train" for i in items}, "labels": {"blues": 0, "jazz": 1}, "config": config,
              "kind": AUDIO, "shard_name": "part-00000"}
    result = process_batch(items, out_dir=root / "out", **kwargs)
    return {"root": root, "items": items, "config": config, "kwargs": kwargs, "result": result}


def _shard(out: Path):
    return pq.read_table(out / D.SHARDS / "split=train" / "train-part-00000.parquet")


def test_one_shard_per_split_with_the_dataset_schema(batch):
    result = batch["result"]
    assert result.files == ["data/split=train/train-part-00000.parquet"]
    table = _shard(batch["root"] / "out")
    schema = D.segment_schema(n_mels=16, n_frames=AUDIO.mel_shape(batch["config"])[1], labels=["blues", "jazz"])
    assert table.schema == schema and table.schema.metadata == schema.metadata  # the datasets features too
    assert table.column(D.FEATURES).null_count == table.num_rows  # handcrafted features off


def test_counts_padding_and_the_bad_file(batch):
    result = batch["result"]
    assert result.rows == {"train|blues|clean": 2, "train|blues|white@10dB": 2, "train|jazz|clean": 1,
                           "train|jazz|white@10dB": 1}
    assert result.tracks == {"train": 2} and result.padded_clips == 1
    assert [(e["track_id"], e["stage"]) for e in result.errors] == [("jazz.00001", "decode")]
    assert "not a readable audio file" in result.errors[0]["reason"]
    assert set(result.seconds) == {"decode", "noise", "log_mel", "features", "write"}


def test_rows_are_the_shared_audio_chain_bit_for_bit(batch):
    config = batch["config"]
    table = _shard(batch["root"] / "out")
    mel = D.mel_array(table)
    windowing = Windowing.from_config(config.audio, split="train")
    log_mel = LogMel.from_config(config.features, sample_rate=config.audio.sample_rate)
    for item in batch["items"][:2]:  # jazz: one padded window, so its clean and noisy rows are one each
        segs, _ = cut_windows(item.path, windowing)
        (noisy,) = noisy_copies(segs, [("white", 10.0)], seed=config.seed, track_id=item.track_id)
        for variant, audio in ((D.CLEAN, segs), (noisy.name, noisy.audio)):
            rows = [i for i, (t, v) in enumerate(zip(table.column(D.TRACK_ID).to_pylist(),
                                                     table.column(D.VARIANT).to_pylist())) if (t, v) == (item.track_id, variant)]
            assert np.array_equal(mel[rows], log_mel(audio)), (item.track_id, variant)


def test_the_same_batch_again_writes_the_same_rows(batch, tmp_path):
    again = process_batch(batch["items"], out_dir=tmp_path, **batch["kwargs"])
    assert again.rows == batch["result"].rows
    assert _shard(tmp_path).equals(_shard(batch["root"] / "out"))


def test_a_rerun_of_the_task_removes_what_an_unfinished_attempt_left(batch, tmp_path):
    """A retried or resumed task: a half-written shard of a split it writes, and one of a split it no longer
    writes, are both gone; the split it writes holds exactly its rows."""
    stale_valid = tmp_path / D.SHARDS / "split=valid" / "valid-part-00000.parquet"
    for path in (stale_valid, tmp_path / D.SHARDS / "split=train" / "train-part-00000.parquet"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a shard")
    process_batch(batch["items"], out_dir=tmp_path, **batch["kwargs"])
    assert not stale_valid.exists()
    assert _shard(tmp_path).equals(_shard(batch["root"] / "out"))


def test_uri_items_are_downloaded_and_give_the_local_rows(batch, tmp_path, monkeypatch):
    """``--source s3://...``: each object is read into a temporary file of the same suffix; an object that cannot
    be read, or does not decode, is recorded under its URI."""
    from spectrotune import storage
    from spectrotune.errors import StorageError

    uri_of = {f"s3://bucket/corpus/{Path(i.path).parent.name}/{Path(i.path).name}": i.path for i in batch["items"]}
    gone = "s3://bucket/corpus/jazz/jazz.00002.wav"

    def read_bytes(path):
        if path == gone:
            raise StorageError(f"{path}: cannot read: connection reset")
        return Path(uri_of[path]).read_bytes()

    monkeypatch.setattr(storage, "read_bytes", read_bytes)
    items = [SourceItem(path=uri, genre=Path(uri).parent.name, track_id=Path(uri).stem) for uri in uri_of]
    items.append(SourceItem(path=gone, genre="jazz", track_id="jazz.00002"))
    kwargs = {**batch["kwargs"], "splits": {**batch["kwargs"]["splits"], "jazz.00002": "train"}}
    result = process_batch(items, out_dir=tmp_path, **kwargs)
    assert _shard(tmp_path).equals(_shard(batch["root"] / "out"))
    assert result.rows == batch["result"].rows and "download" in result.seconds
    bad, unreadable = result.errors
    assert bad["path"] == "s3://bucket/corpus/jazz/jazz.00001.wav" and bad["stage"] == "decode"
    assert bad["reason"] == batch["result"].errors[0]["reason"]  # no temporary path in the reason
    assert unreadable == {"path": gone, "track_id": "jazz.00002", "genre": "jazz", "stage": "read",
                          "reason": "cannot read the object: cannot read: connection reset"}


def test_images_give_one_clean_row_per_file(tmp_path):
    from spectrotune.sources.spotify_render import render_spotify_image

    path = tmp_path / "pop" / "song_3.jpg"
    render_spotify_image(_tone(3.0, 440.0), path)
    item = SourceItem(path=str(path), genre="pop", track_id="song", clip=3)
    config = load_config("spotify", overrides=["features.n_mels=32", "image.n_frames=40"])
    result = process_batch([item], splits={"song": "valid"}, labels={"pop": 0}, config=config, kind=SPOTIFY,
                           out_dir=tmp_path / "out", shard_name="part-00007")
    assert result.rows == {"valid|pop|clean": 1} and not result.errors
    table = pq.read_table(tmp_path / "out" / D.SHARDS / "split=valid" / "valid-part-00007.parquet")
    assert table.column(D.SEGMENT).to_pylist() == [3] and D.mel_array(table).shape == (1, 32, 40)


def test_merge_results_adds_up_the_tasks():
    a = BatchResult(rows={"train|a|clean": 2}, tracks={"train": 1}, silent_segments=1, padded_clips=0,
                    errors=[{"path": "x"}], seconds={"decode": 1.0}, node_id="n1")
    b = BatchResult(rows={"train|a|clean": 3, "test|a|clean": 1}, tracks={"train": 1, "test": 1}, padded_clips=1,
                    seconds={"decode": 0.5, "write": 0.1}, node_id="n1")
    merged = merge_results([a, b])
    assert merged["rows"] == {"train|a|clean": 5, "test|a|clean": 1} and merged["tracks"] == {"train": 2, "test": 1}
    assert merged["seconds"] == {"decode": 1.5, "write": 0.1} and merged["nodes"] == {"n1": 2}
    assert (merged["silent_segments"], merged["padded_clips"], len(merged["errors"])) == (1, 1, 1)
