"""Resumable prepare without Ray: the staging folder, the state file, the plan, and when a resume is refused.

The interruptions here are a ``KeyboardInterrupt`` raised where the Ray Data tasks would run (what Ctrl-C does to
the driver); the real kills from outside (a SIGKILLed driver, a SIGKILLed Ray worker) are in
tests/prepare/test_faults.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import spectrotune.prepare.driver as driver
from spectrotune import storage
from spectrotune.config import load_config
from spectrotune.errors import ConfigError, DatasetError, OutputExistsError
from spectrotune.prepare import resume
from spectrotune.prepare.driver import prepare
from spectrotune.prepare.task import BatchResult
from spectrotune.schema import PREPARE_STATE
from spectrotune.sources.listing import SourceItem, list_source
from spectrotune.sources.synth.corpus import generate_corpus

FAST = ["prepare.files_per_task=1", "features.handcrafted=false"]


def _items(*tracks: str) -> list[SourceItem]:
    return [SourceItem(path=f"/c/{t.split('/')[0]}/{t}.wav", genre="g", track_id=t.split("/")[-1]) for t in tracks]


@pytest.mark.parametrize(("out", "staging"), [("/data/gtzan", "/data/.gtzan.partial"),
                                              ("s3://bucket/runs/gtzan/", "s3://bucket/runs/.gtzan.partial")])
def test_the_staging_folder_is_the_same_on_every_run(out, staging):
    assert str(resume.staging_dir(storage.norm(out))) == staging == str(resume.staging_dir(storage.norm(out)))
    assert str(resume.staged_dataset(staging)) == f"{staging}/dataset"


def test_the_plan_never_splits_a_track_and_keeps_its_files_in_listing_order():
    items = _items("a", "b", "c", "d", "e")
    items.insert(1, SourceItem(path="/c/a/a-2.wav", genre="g", track_id="a"))  # a second file of track a
    plan = resume.plan_tasks(items, 2, seed=0)
    order = resume.track_order(["a", "b", "c", "d", "e"], seed=0)
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert [i.track_id for batch in plan.values() for i in batch] == [t for t in order for _ in range(1 + (t == "a"))]
    assert all(len({i.track_id for i in batch}) <= 2 and len(batch) >= 2 for batch in list(plan.values())[:-1])
    paths = [i.path for batch in plan.values() for i in batch]
    assert paths.index("/c/a/a.wav") + 1 == paths.index("/c/a/a-2.wav")  # one track's files together, in order
    assert [len(b) for b in resume.plan_tasks(items, 1, seed=0).values()] == [1 + (t == "a") for t in order]
    assert resume.plan_tasks(items, 2, seed=0) == plan == resume.plan_tasks(list(reversed(items[2:])) + items[:2], 2,
                                                                            seed=0)


def test_the_plan_mixes_genres_in_an_order_drawn_from_the_seed():
    # GTZAN lists its tracks genre by genre: listing order gave every shard one or two genres.
    genres = [f"g{g}" for g in range(10)]
    items = [SourceItem(path=f"/c/{g}/{g}.{t:05d}.wav", genre=g, track_id=f"{g}.{t:05d}")
             for g in genres for t in range(20)]
    plan = resume.plan_tasks(items, 20, seed=0)
    assert sorted(i.path for batch in plan.values() for i in batch) == sorted(i.path for i in items)
    assert min(len({i.genre for i in batch}) for batch in plan.values()) >= 5
    other = resume.plan_tasks(items, 20, seed=1)
    assert other != plan and resume.track_order([i.track_id for i in items], seed=1) != [i.track_id for i in items]
    assert resume.plan_tasks(items[::-1], 20, seed=0) == plan  # the listing's order does not matter


def test_state_file_round_trips_and_a_foreign_one_is_refused(tmp_path):
    config = load_config("demo")
    plan = resume.plan_tasks(_items("a", "b", "c"), 2, seed=0)
    state = resume.new_state(out=tmp_path / "out", source="/c", config=config, files={"/c/a/a.wav": (10, 5)},
                             plan=plan)
    state.write(tmp_path)
    back = resume.PrepareState.read(tmp_path)
    assert back == state and back.tasks == {s: tuple(i.path for i in b) for s, b in plan.items()}
    assert sorted(p for paths in back.tasks.values() for p in paths) == ["/c/a/a.wav", "/c/b/b.wav", "/c/c/c.wav"]
    assert back.files == {"/c/a/a.wav": (10, 5)} and back.config_hash == config.hash()
    assert resume.PrepareState.read(tmp_path / "elsewhere") is None
    (tmp_path / PREPARE_STATE).write_text(json.dumps({**state.to_dict(), "format": "other/9"}))
    with pytest.raises(DatasetError, match=r"prepare_state.json: unsupported prepare state format 'other/9'"):
        resume.PrepareState.read(tmp_path)


def test_difference_names_changed_config_keys_and_source_files():
    config = load_config("demo")
    files = {"/c/a.wav": (10, 1), "/c/b.wav": (20, 2), "/c/c.wav": (30, 3)}
    state = resume.new_state(out="/o", source="/c", config=config, files=files, plan={})
    assert resume.difference(state, config=config, source="/c", files=files) == ""
    assert resume.difference(state, config=load_config("demo", overrides=["tracking.experiment=other"]), source="/c",
                             files=files) == ""  # tracking is not part of what a prepare makes
    changed = load_config("demo", overrides=["audio.segment_seconds=2.0", "noise.enabled=false"])
    what = resume.difference(state, config=changed, source="/c", files=files)
    assert what.startswith("config keys changed: ")
    assert "audio.segment_seconds (run: 3.0, now: 2.0)" in what and "noise.enabled (run: True, now: False)" in what
    now = {"/c/a.wav": (10, 1), "/c/b.wav": (21, 2), "/c/d.wav": (1, 1)}
    what = resume.difference(state, config=config, source="/c", files=now)
    assert what == ("source files added: /c/d.wav; source files removed: /c/c.wav; "
                    "source files changed (size or modification time): /c/b.wav")
    assert resume.difference(state, config=config, source="/other", files=files) == (
        "another source (run: /c, now: /other)")


def test_done_markers_hold_the_task_reports(tmp_path):
    report = BatchResult(rows={"train|g|clean": 3}, tracks={"train": 1}, files=["data/x.parquet"], shard="part-00001")
    resume.write_done(tmp_path, report)
    resume.write_done(tmp_path, BatchResult(shard="part-00009"))  # not in this plan: ignored
    assert resume.done_tasks(tmp_path, ["part-00000", "part-00001"]) == {"part-00001": report}
    assert resume.done_tasks(tmp_path / "none", ["part-00000"]) == {}


@pytest.fixture
def corpus(tmp_path):
    generate_corpus(tmp_path / "corpus", genres=2, tracks=3, seconds=3.0, seed=3, borrow=0.0)
    return tmp_path / "corpus"


def _interrupt_after(n_done: int):
    """A stand-in for the Ray Data tasks: the first ``n_done`` tasks finish (shard and marker), then Ctrl-C."""
    def run(plan, *, staging, **kwargs):
        for shard in list(plan)[:n_done]:
            rel = f"data/split=train/train-{shard}.parquet"
            _touch(Path(resume.staged_dataset(staging)) / rel)
            resume.write_done(staging, BatchResult(shard=shard, files=[rel]))
        raise KeyboardInterrupt
    return run


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a shard")


def test_an_interrupted_prepare_keeps_its_staging_and_a_plain_rerun_says_what_to_do(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(2))
    config = load_config("demo", overrides=FAST)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, progress=False, log=lines.append)
    staging = tmp_path / ".out.partial"
    assert not (tmp_path / "out").exists() and (staging / PREPARE_STATE).is_file()
    assert f"the finished tasks are kept in {staging}: run the same command with --resume" in lines[-1]
    state = resume.PrepareState.read(staging)
    assert len(state.tasks) == 6 and sorted(p for ps in state.tasks.values() for p in ps) == sorted(
        i.path for i in list_source(corpus).items)
    with pytest.raises(OutputExistsError, match=r"\.out\.partial: an unfinished prepare into .*out is there \(2 of 6 "
                                                r"tasks done\); pass --resume to finish it, or --overwrite"):
        prepare(corpus, tmp_path / "out", config=config, progress=False, log=lines.append)
    # --overwrite without --resume starts again: the old state goes, a new plan is written
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(0))
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, overwrite=True, progress=False, log=lines.append)
    assert resume.done_tasks(staging, list(state.tasks)) == {}


def test_resume_refuses_a_changed_config_naming_the_key(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(1))
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=load_config("demo", overrides=FAST), progress=False,
                log=lambda _: None)
    changed = load_config("demo", overrides=[*FAST, "audio.hop_seconds.train=1.5"])
    with pytest.raises(ConfigError, match=r"cannot resume the unfinished prepare in .*\.out\.partial: config keys "
                                          r"changed: audio\.hop_seconds\.train \(run: None, now: 1\.5\); run it with "
                                          r"the same config and source, or pass --overwrite without --resume"):
        prepare(corpus, tmp_path / "out", config=changed, resume=True, progress=False, log=lambda _: None)
    assert (tmp_path / ".out.partial" / PREPARE_STATE).is_file()  # refused: nothing was touched


def test_resume_refuses_a_changed_source_naming_the_file(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(1))
    config = load_config("demo", overrides=FAST)
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, progress=False, log=lambda _: None)
    wavs = sorted(corpus.rglob("*.wav"))
    extra = wavs[0].with_name("extra.00099.wav")
    extra.write_bytes(wavs[0].read_bytes())
    with pytest.raises(ConfigError, match=rf"source files added: {extra}"):
        prepare(corpus, tmp_path / "out", config=config, resume=True, progress=False, log=lambda _: None)
    extra.unlink()
    os.utime(wavs[1], ns=(1, 1))  # the same name, another modification time: another file
    with pytest.raises(ConfigError, match=rf"source files changed \(size or modification time\): {wavs[1]}"):
        prepare(corpus, tmp_path / "out", config=config, resume=True, progress=False, log=lambda _: None)


def test_resume_without_an_unfinished_run_prepares_from_the_start(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(0))
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=load_config("demo", overrides=FAST), resume=True, progress=False,
                log=lines.append)
    assert f"nothing to resume at {tmp_path / '.out.partial'}; preparing from the start" in lines
    assert Path(tmp_path / ".out.partial" / PREPARE_STATE).is_file()


def test_the_cli_keeps_an_interrupted_pipeline_dataset_and_names_resume(corpus, tmp_path, monkeypatch, capsys):
    """``spectrotune pipeline`` prepares through the same driver, so it takes ``--resume`` too."""
    from spectrotune.cli import main as cli_main

    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(1))
    args = ["pipeline", "demo", "--source", str(corpus), "--out", str(tmp_path / "flow"), "--no-progress",
            *(a for kv in FAST for a in ("--set", kv))]
    assert cli_main(args) == 130
    assert "run the same command with --resume to finish it" in capsys.readouterr().err
    assert cli_main(args) == 2
    assert "pass --resume to finish it, or --overwrite" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"config keys changed: noise\.enabled \(run: True, now: False\)"):
        from spectrotune.flows import run_pipeline

        run_pipeline(corpus, tmp_path / "flow", config=load_config("demo", overrides=[*FAST, "noise.enabled=false"]),
                     resume=True, progress=False, log=lambda _: None)


def test_resume_runs_the_recorded_plan_less_the_finished_tasks(corpus, tmp_path, monkeypatch):
    """The plan is read back, not made again: a resuming cluster of another size runs the same shards."""
    monkeypatch.setattr(driver, "_files_per_task", lambda config, n: 1)
    monkeypatch.setattr(driver, "_run_tasks", _interrupt_after(2))
    config = load_config("demo", overrides=FAST)
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, progress=False, log=lambda _: None)
    recorded = resume.PrepareState.read(tmp_path / ".out.partial").tasks

    def another_cluster(config, n):
        raise AssertionError("a resumed prepare must not plan again")

    ran: dict[str, list[str]] = {}

    def run(plan, *, staging, **kwargs):
        ran.update({shard: [i.path for i in batch] for shard, batch in plan.items()})
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "_files_per_task", another_cluster)
    monkeypatch.setattr(driver, "_run_tasks", run)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, resume=True, progress=False, log=lines.append)
    assert "resuming: 2 of 6 tasks done, running 4" in lines
    assert ran == {shard: list(paths) for shard, paths in list(recorded.items())[2:]}
    # a marker whose shard is gone (removed by hand, or by a publish cut short) does not count
    (tmp_path / ".out.partial" / "dataset" / "data" / "split=train" / "train-part-00001.parquet").unlink()
    ran.clear()
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, resume=True, progress=False, log=lines.append)
    assert "resuming: 1 of 6 tasks done, running 5" in lines[-3:] and "part-00001" in ran
