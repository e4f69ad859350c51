"""``spectrotune tag`` on a folder runs as Ray Data batch inference and gives exactly the in-process rows."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from spectrotune.predict.tag import Tagger, tag, tag_files


@pytest.mark.integration
def test_folder_goes_through_ray_data_with_the_in_process_results(ray_session, musicnn_cache, tmp_path):
    rng = np.random.default_rng(0)
    for i, seconds in enumerate((4.0, 2.0, 6.5)):
        path = tmp_path / "songs" / ("sub" if i == 2 else "") / f"song{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.2 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    (tmp_path / "songs" / "notes.txt").write_text("not audio, not picked up\n")
    (tmp_path / "songs" / "bad.wav").write_text("broken\n" * 100)

    cache = musicnn_cache / "musicnn"
    result = tag([tmp_path / "songs"], model="MTT_musicnn", top_k=4, cache=cache, log=lambda _: None)
    assert result.used_ray  # a folder: Ray Data
    names = [r["path"].rsplit("/", 1)[1] for r in result.rows]
    assert names == ["bad.wav", "song0.wav", "song1.wav", "song2.wav"]
    rows, windows = tag_files(Tagger("MTT_musicnn", cache=cache, top_k=4), [r["path"] for r in result.rows])
    for got, expected in zip(result.rows, rows, strict=True):  # floats may differ in the last bits across threads
        assert {k: v for k, v in got.items() if not k.startswith("p")} == \
               {k: v for k, v in expected.items() if not k.startswith("p")}
        assert all(abs(got[k] - expected[k]) < 1e-6 for k in got if k[0] == "p" and k[1:].isdigit() and got[k])
    assert [w["window"] for w in result.windows] == [0, 0, 0, 1] == [w["window"] for w in windows]
    for got, expected in zip(result.windows, windows):
        assert got.keys() == expected.keys()
        assert max(abs(got[t] - expected[t]) for t in result.tags) < 1e-6
