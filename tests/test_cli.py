"""The command line: --help on every subcommand, synth, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spectrotune.cli import command_names, main

COMMANDS = command_names()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: spectrotune" in capsys.readouterr().out


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "spectrotune.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("spectrotune ")


def test_python_dash_m_spectrotune_runs_the_same_command_line():
    from spectrotune import __version__

    version = subprocess.run([sys.executable, "-m", "spectrotune", "--version"], capture_output=True, text=True,
                             timeout=120, check=False)
    assert version.returncode == 0, version.stderr[-2000:]
    assert version.stdout.strip() == f"spectrotune {__version__}"
    usage = subprocess.run([sys.executable, "-m", "spectrotune", "--help"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert usage.returncode == 0, usage.stderr[-2000:]
    assert usage.stdout.startswith("usage: spectrotune")
    assert all(command in usage.stdout for command in COMMANDS)


def test_help_of_every_command_loads_neither_torch_nor_ray():
    code = ("import contextlib, io, sys\n"
            "from spectrotune.cli import command_names, main\n"
            "for command in command_names():\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main([command, '--help'])\n"
            "print(sorted({'torch', 'ray'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_python_dash_m_spectrotune_without_a_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "spectrotune"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and "usage: spectrotune" in done.stderr


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
