"""Splits (and K-fold folds) are assigned per track, never per segment; no track may appear in two splits."""

from __future__ import annotations

from collections import Counter

import pytest

from spectrotune.config import FractionsConfig, SplitConfig
from spectrotune.errors import ConfigError, InputError
from spectrotune.sources.listing import SourceItem
from spectrotune.sources.splits import assign_splits, fault_filtered_dir, read_lists, stratified, stratified_folds


def _items(genres=("blues", "jazz", "rock"), n=20):
    return [SourceItem(path=f"/x/{g}/{g}.{i:05d}.wav", genre=g, track_id=f"{g}.{i:05d}") for g in genres
            for i in range(n)]


def test_stratified_fractions_per_genre_and_deterministic():
    items = _items()
    splits, _ = assign_splits(items, config=SplitConfig(kind="stratified", seed=3))
    for genre in ("blues", "jazz", "rock"):
        counts = Counter(s for t, s in splits.items() if t.startswith(genre))
        assert counts == {"train": 14, "valid": 3, "test": 3}
    again, _ = assign_splits(list(reversed(items)), config=SplitConfig(kind="stratified", seed=3))
    assert again == splits
    other, _ = assign_splits(items, config=SplitConfig(kind="stratified", seed=4))
    assert other != splits


def test_stratified_small_genre_gets_every_split():
    out = stratified({f"t{i}": "g" for i in range(3)}, fractions=(0.8, 0.1, 0.1), seed=0)
    assert sorted(out.values()) == ["test", "train", "valid"]


def test_stratified_folds_are_disjoint_balanced_and_order_independent():
    tracks = {f"{g}.{i:05d}": g for g in ("a", "b", "c") for i in range(7)}
    folds = stratified_folds(tracks, k=3, seed=1)
    assert sorted(t for f in folds for t in f) == sorted(tracks)  # every track exactly once
    for genre in ("a", "b", "c"):
        counts = [sum(tracks[t] == genre for t in f) for f in folds]
        assert max(counts) - min(counts) <= 1
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert stratified_folds(dict(reversed(list(tracks.items()))), k=3, seed=1) == folds
    assert stratified_folds(tracks, k=3, seed=2) != folds
    for k in (1, 22):
        with pytest.raises(ConfigError, match=f"--cv {k}"):
            stratified_folds(tracks, k=k, seed=0)


def test_fault_filtered_lists_are_shipped_with_expected_sizes():
    lists = read_lists(fault_filtered_dir())
    assert Counter(lists.values()) == {"train": 443, "valid": 197, "test": 290}
    assert lists["jazz/jazz.00054"] == "train"


def test_fault_filtered_matches_au_files_and_reports_unlisted():
    items = [SourceItem(path="/g/blues/blues.00029.au", genre="blues", track_id="blues.00029"),
             SourceItem(path="/g/blues/blues.00000.au", genre="blues", track_id="blues.00000")]
    splits, info = assign_splits(items, config=SplitConfig(kind="fault_filtered"))
    assert splits["blues.00029"] == "train"
    if "blues.00000" not in splits:
        assert info["tracks_not_in_lists"] == 1


def test_user_lists_and_track_in_two_lists_is_an_error(tmp_path):
    (tmp_path / "train.txt").write_text("blues/blues.00000.wav\n")
    (tmp_path / "valid.txt").write_text("blues/blues.00001.wav\n")
    (tmp_path / "test.txt").write_text("# comment\nblues/blues.00002.wav\n")
    items = _items(genres=("blues",), n=4)
    splits, info = assign_splits(items, config=SplitConfig(kind="lists", dir=str(tmp_path)))
    assert splits == {"blues.00000": "train", "blues.00001": "valid", "blues.00002": "test"}
    assert info["tracks_not_in_lists"] == 1
    (tmp_path / "test.txt").write_text("blues/blues.00000.wav\n")
    with pytest.raises(InputError, match=r"test\.txt:1.*also listed in .*train\.txt"):
        assign_splits(items, config=SplitConfig(kind="lists", dir=str(tmp_path)))


def test_folders_kind_uses_spotify_folders():
    items = [SourceItem(path="/s/a.jpg", genre="rock", track_id="rock/a_0", clip=0, folder_split="valid")]
    splits, info = assign_splits(items, config=SplitConfig(kind="folders"))
    assert splits == {"rock/a_0": "valid"} and "leaky" in info


@pytest.mark.parametrize("kind", ["stratified", "by_song", "fault_filtered", "lists", "folders"])
def test_no_track_in_two_splits_for_every_kind(kind, tmp_path):
    items = _items(genres=("blues", "jazz"), n=40)
    items = [SourceItem(i.path, i.genre, i.track_id, clip=0, folder_split=("train", "valid", "test")[n % 3])
             for n, i in enumerate(items)]
    # every track has several segments/clips: duplicate the items like a song with several clips
    items = items + [SourceItem(i.path + "2", i.genre, i.track_id, clip=1, folder_split=i.folder_split)
                     for i in items]
    if kind == "lists":
        for n, split in enumerate(("train", "valid", "test")):
            (tmp_path / f"{split}.txt").write_text(
                "\n".join(f"{i.genre}/{i.track_id}.wav" for k, i in enumerate(items[:80]) if k % 3 == n))
    config = SplitConfig(kind=kind, dir=str(tmp_path), fractions=FractionsConfig(0.5, 0.25, 0.25))
    splits, _ = assign_splits(items, config=config)
    seen: dict[str, set[str]] = {}
    for item in items:
        if item.track_id in splits:
            seen.setdefault(item.track_id, set()).add(splits[item.track_id])
    assert all(len(s) == 1 for s in seen.values())
