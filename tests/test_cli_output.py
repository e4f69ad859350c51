"""What the command line prints and returns: predict's results on stdout as table, CSV or JSON and its messages on
stderr; the exit statuses 0, 1, 2, 3 and 130 through main(); -q/-v on every command; the help's exit-status list."""

from __future__ import annotations

import io
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from legacy_data import LEGACY_BUNDLE

from spectrotune import console
from spectrotune.cli import command_names, main
from spectrotune.predict.files import ROW_COLUMNS

SR = 22050


def _tone(seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips, a padded 0.4-s one, and a file that is not audio (the legacy bundle: 1-s windows, 3 genres)."""
    root = tmp_path_factory.mktemp("clips")
    for name, seconds, freq in (("low.wav", 2.5, 110.0), ("high.wav", 3.0, 880.0), ("short.wav", 0.4, 440.0)):
        sf.write(root / name, _tone(seconds, freq, seed=len(name)), SR, subtype="PCM_16")
    (root / "broken.wav").write_text("not audio\n" * 20)
    return root


def _predict(clips, *args: str, more: tuple[str, ...] = ()) -> list[str]:
    return ["predict", str(LEGACY_BUNDLE), str(clips / "low.wav"), str(clips / "high.wav"), str(clips / "short.wav"),
            *(str(clips / name) for name in more), "--no-ray", *args]


def test_predict_json_on_stdout_has_every_row_field_and_messages_stay_on_stderr(clips, capsys):
    assert main(_predict(clips, "--format", "json", "--top-k", "3", "--timeline")) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)  # stdout is nothing but the JSON document
    assert [r["path"] for r in rows] == [str(clips / n) for n in ("low.wav", "high.wav", "short.wav")]
    for row in rows:
        assert set(ROW_COLUMNS) <= set(row) and row["status"] == "ok" and row["reason"] == ""
        assert sorted(row[f"top{i}"] for i in (1, 2, 3)) == ["blues", "classical", "country"]
        assert sum(row[f"p{i}"] for i in (1, 2, 3)) == pytest.approx(1.0)
        assert [s["segment"] for s in row["timeline"]] == list(range(row["n_segments"]))
    assert [(r["n_segments"], r["padded"]) for r in rows] == [(2, False), (3, False), (1, True)]
    assert "predicting 3 file(s)" in err and "predicted 3 file(s)" in err


def test_predict_csv_on_stdout_reads_back_as_the_output_file(clips, tmp_path, capsys):
    assert main(_predict(clips, "--format", "csv", "--output", str(tmp_path / "p.csv"))) == 0
    out, _ = capsys.readouterr()
    printed = pd.read_csv(io.StringIO(out))
    pd.testing.assert_frame_equal(printed, pd.read_csv(tmp_path / "p.csv"))
    assert list(printed.columns) == [*ROW_COLUMNS, "top1", "p1", "top2", "p2", "top3", "p3"]
    assert printed["padded"].tolist() == [False, False, True]


def test_predict_table_is_the_terminal_text(clips, capsys):
    assert main(_predict(clips)) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and "(2 seg)" in lines[0] and "(1 seg, padded)" in lines[2]
    assert "predicted" not in out and "predicted 3 file(s)" in err


def test_predict_timeline_as_csv_on_stdout_is_refused_before_any_work(clips, capsys):
    assert main(_predict(clips, "--format", "csv", "--timeline")) == console.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--format json" in err


def test_quiet_keeps_the_results_and_drops_the_messages(clips, capsys):
    assert main(_predict(clips, "-q")) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3 and err == ""


def test_verbose_sets_the_spectrotune_logger_to_debug(clips, capsys):
    assert main(_predict(clips, "-v")) == 0
    assert logging.getLogger(console.LOGGER).getEffectiveLevel() == logging.DEBUG
    err = capsys.readouterr().err
    assert err.startswith("debug: spectrotune ") and "predict " in err.splitlines()[0]
    assert "predicted 3 file(s)" in err
    assert main(_predict(clips)) == 0
    assert logging.getLogger(console.LOGGER).getEffectiveLevel() == logging.INFO


@pytest.mark.parametrize("command", command_names())
def test_every_command_takes_quiet_and_verbose(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    usage = capsys.readouterr().out
    assert "-q, --quiet" in usage and "-v, --verbose" in usage
    with pytest.raises(SystemExit) as info:
        main([command, "-q", "-v"])  # one or the other
    assert info.value.code == console.EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


# -- exit statuses --------------------------------------------------------------------------------------------------


def test_exit_1_when_some_files_failed_with_strict(clips, capsys):
    argv = _predict(clips, more=("broken.wav",))
    assert main(argv) == console.EXIT_OK  # without --strict the others' results are what was asked for
    capsys.readouterr()
    assert main([*argv, "--strict"]) == console.EXIT_INPUTS_FAILED
    out, err = capsys.readouterr()
    assert "broken.wav: not a readable audio file" in out  # the failure is listed with the results
    assert err.splitlines()[-1] == ("spectrotune: error: 1 of 4 file(s) could not be predicted; each is listed "
                                    "with its reason")


def test_exit_1_when_every_file_failed_even_without_strict(clips, capsys):
    argv = ["predict", str(LEGACY_BUNDLE), str(clips / "broken.wav"), str(clips / "gone.wav"), "--format", "json"]
    assert main(argv) == console.EXIT_INPUTS_FAILED
    out, err = capsys.readouterr()
    assert [r["status"] for r in json.loads(out)] == ["error", "error"]
    assert "2 of 2 file(s) could not be predicted (every one)" in err


def test_exit_2_for_usage_and_config_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(LEGACY_BUNDLE)])  # no PATH: argparse's usage error
    assert info.value.code == console.EXIT_USAGE
    assert "usage: spectrotune predict" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epoch" in err
    assert main(["predict", str(tmp_path), str(tmp_path / "a.wav")]) == console.EXIT_USAGE  # not a bundle
    assert "not a model bundle" in capsys.readouterr().err


def _fail_with(monkeypatch, error: BaseException) -> None:
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr("spectrotune.sources.synth.corpus.generate_corpus", boom)


def test_exit_3_for_an_unexpected_error_in_one_line_with_the_traceback_only_when_verbose(monkeypatch, tmp_path,
                                                                                         capsys):
    _fail_with(monkeypatch, RuntimeError("disk on fire\n  second line"))
    assert main(["synth", str(tmp_path)]) == console.EXIT_RUNTIME
    err = capsys.readouterr().err
    assert err == ("spectrotune: error: unexpected RuntimeError: disk on fire second line (rerun with -v/--verbose "
                   "for the traceback)\n")
    assert main(["synth", str(tmp_path), "-v"]) == console.EXIT_RUNTIME
    err = capsys.readouterr().err
    assert err.splitlines()[1] == "Traceback (most recent call last):" and "in boom" in err  # after the debug line
    assert err.splitlines()[-1] == "spectrotune: error: unexpected RuntimeError: disk on fire second line"


def test_exit_130_when_interrupted(monkeypatch, tmp_path, capsys):
    _fail_with(monkeypatch, KeyboardInterrupt())
    assert main(["synth", str(tmp_path)]) == console.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "spectrotune: interrupted\n"


def test_help_epilog_lists_every_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code, meaning in console.EXIT_CODES:
        assert f"  {code:<4} {meaning}" in out


def test_readme_commands_section_lists_the_same_exit_statuses():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for code, _ in console.EXIT_CODES:
        assert f"| {code} |" in commands, code


# -- Ray's own lines ------------------------------------------------------------------------------------------------

# What each of Ray's routine lines on a command's terminal starts or holds (see spectrotune.runtime).
RAY_LINES = {
    "token notice": "Token authentication is enabled for this Ray cluster",
    "Ray Data's non-interactive progress": "Progress will be logged because stdout is a non-interactive terminal",
    "Ray Data's progress log": "Total Progress:",
    "Ray Data's execution start": "Starting execution of Dataset",
    "Ray Data's execution end": "execution finished in",
    "the PreemptionWatcher warning": "PreemptionWatcher",
}


def test_ray_terminal_filter_drops_the_noisy_records_unless_shown():
    from spectrotune import runtime

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    token = record("ray._private.authentication.authentication_token_setup", logging.WARNING)
    progress = record("ray.data._internal.progress.logging_progress", logging.INFO)
    failure = record("ray.data._internal.execution.streaming_executor", logging.ERROR)
    other = record("ray.train", logging.INFO)
    check = runtime._TERMINAL_FILTER.filter
    try:
        runtime.show_ray_logs(False)
        assert [check(r) for r in (token, progress, failure, other)] == [False, False, True, True]
        runtime.show_ray_logs(True)  # -v
        assert all(check(r) for r in (token, progress, failure, other))
    finally:
        runtime.show_ray_logs(False)


def test_worker_lines_printer_drops_the_preemption_watcher_warning_unless_shown():
    from spectrotune import runtime

    printed = []
    noisy = ("[2026-12-01 09:55:29,189 E 18336 18365] core_worker.cc:2465: Actor with class name: "
             "'PreemptionWatcher' and ID: '528c' has constructor arguments in the object store and max_restarts > 0.")
    batch = {"pid": 7, "is_err": True, "actor_name": "TrainController", "lines": [noisy, "a real error"]}
    try:
        runtime._drop_noisy_lines(batch, False, printer=lambda data, ignore: printed.append(data["lines"]))
        runtime._drop_noisy_lines({**batch, "lines": [noisy]}, False, printer=lambda d, i: printed.append(d["lines"]))
        runtime.show_ray_logs(True)
        runtime._drop_noisy_lines(batch, False, printer=lambda data, ignore: printed.append(data["lines"]))
    finally:
        runtime.show_ray_logs(False)
    assert printed == [["a real error"], [noisy, "a real error"]]


@pytest.mark.integration
def test_a_run_off_a_terminal_shows_stage_lines_and_none_of_rays_routine_lines(tmp_path):
    import os
    import subprocess
    import sys

    from spectrotune.sources.synth.corpus import generate_corpus

    generate_corpus(tmp_path / "corpus", genres=2, tracks=3, seconds=6.0, seed=0)
    (tmp_path / "corpus" / "genres_original" / "blues" / "blues.00009.wav").write_text("not audio\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray, started by the command
    done = subprocess.run(
        [sys.executable, "-m", "spectrotune", "pipeline", "demo", "--source", str(tmp_path / "corpus"),
         "--out", str(tmp_path / "out"), "--set", "train.epochs=1", "--set", "evaluate.baselines=false"],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path)  # pipes: not a terminal
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal[-4000:]
    for stage in ("[1/3] preparing", "found 7 audio files in 2 genres", "1 input(s) failed", "[2/3] training",
                  "epoch 1/1:", "[3/3] evaluating", "report: "):
        assert stage in terminal, (stage, terminal[-4000:])
    assert re.search(r"processing 7 audio files in \d+ Ray Data tasks", terminal), terminal[-4000:]
    shown = {what: line for what, line in RAY_LINES.items() if line in terminal}
    assert not shown, (shown, terminal[-4000:])


@pytest.mark.integration
def test_prepare_exits_1_with_strict_and_when_every_input_failed(ray_session, tmp_path, capsys):
    from spectrotune.sources.synth.corpus import generate_corpus

    corpus = tmp_path / "c"
    generate_corpus(corpus, genres=2, tracks=3, seconds=4.0, seed=0)
    (corpus / "genres_original" / "blues" / "blues.00009.wav").write_text("not audio\n")
    argv = ["prepare", "demo", "--source", str(corpus), "--out", str(tmp_path / "d"), "-q"]
    assert main([*argv, "--strict"]) == console.EXIT_INPUTS_FAILED
    out, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("spectrotune: error: --strict: 1 input(s) failed; see ")
    broken = tmp_path / "broken" / "genres_original"
    for genre in ("blues", "jazz"):
        (broken / genre).mkdir(parents=True)
        for i in range(3):
            (broken / genre / f"{genre}.0000{i}.wav").write_text("not audio\n")
    assert main(["prepare", "demo", "--source", str(broken.parent), "--out", str(tmp_path / "e"), "-q"]) == 1
    out, err = capsys.readouterr()
    assert "prepared 0 tracks" in out and "6 input(s) failed" in out
    assert err.splitlines()[-1] == "spectrotune: error: every input failed (6); nothing was prepared"
