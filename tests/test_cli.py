"""The command line: --help on every subcommand, synth, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spectrotune.cli import build_parser, main

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001 - the parser's own registry


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: spectrotune" in capsys.readouterr().out


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "spectrotune.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("spectrotune ")


def test_synth_writes_gtzan_layout_and_images(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "c"), "--genres", "2", "--tracks", "1", "--seconds", "3.5",
                 "--images", str(tmp_path / "img")]) == 0
    wavs = sorted((tmp_path / "c" / "genres_original").rglob("*.wav"))
    assert [w.relative_to(tmp_path / "c").as_posix() for w in wavs] == [
        "genres_original/blues/blues.00000.wav", "genres_original/classical/classical.00000.wav"]
    assert len(list((tmp_path / "img").rglob("*.jpg"))) == 2
    assert "wrote 2 clips" in capsys.readouterr().out


def test_bad_synth_argument_is_one_line_exit_2(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--genres", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spectrotune: error:") and err.count("\n") == 1 and "genres" in err


def test_fetch_unreachable_url_is_one_line_exit_2(tmp_path, capsys):
    assert main(["fetch", "gtzan", "--dest", str(tmp_path), "--url", "http://127.0.0.1:9/genres.tar.gz",
                 "--no-progress"]) == 2
    assert "127.0.0.1:9" in capsys.readouterr().err
