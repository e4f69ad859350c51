"""spectrotune.console: the logger the command line configures (levels, stderr at write time, prefixes), the
progress bar (a terminal only, not with -q, erased when done) and the exit-status text."""

from __future__ import annotations

import io
import logging

import pytest

from spectrotune import console


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def spectrotune_logger():
    logger = logging.getLogger(console.LOGGER)
    saved = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]


@pytest.mark.parametrize("level, shown", [(console.QUIET, ["spectrotune: warning: w"]),
                                          (console.NORMAL, ["i", "spectrotune: warning: w"]),
                                          (console.VERBOSE, ["debug: d", "i", "spectrotune: warning: w"])])
def test_levels_and_prefixes(spectrotune_logger, capsys, level, shown):
    console.configure(level)
    child = logging.getLogger("spectrotune.prepare.driver")  # modules log to children of the spectrotune logger
    child.debug("d")
    child.info("i")
    child.warning("w")
    assert capsys.readouterr().err.splitlines() == shown


def test_configure_again_replaces_its_handler_and_writes_to_the_current_stderr(spectrotune_logger, monkeypatch):
    console.configure()
    console.configure()
    assert sum(isinstance(h, console._StderrHandler) for h in spectrotune_logger.handlers) == 1
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)  # replaced after the handler was made
    logging.getLogger("spectrotune.x").info("to the new stream")
    assert stream.getvalue() == "to the new stream\n"
    with pytest.raises(ValueError, match="verbosity"):
        console.configure(7)


def test_verbosity_from_the_flags():
    assert console.verbosity() == console.NORMAL
    assert console.verbosity(quiet=True) == console.QUIET
    assert console.verbosity(verbose=True) == console.VERBOSE


def test_progress_bar_on_a_terminal_is_drawn_and_erased(spectrotune_logger, monkeypatch):
    console.configure()
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with console.Progress("prepare", 4, unit="audio files") as bar:
        for _ in range(4):
            bar.advance()
    drawn = terminal.getvalue()
    assert "prepare: 0/4 audio files [------------------------]   0%" in drawn
    assert "prepare: 4/4 audio files [########################] 100%" in drawn  # the last state is always drawn
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[-2].strip() == ""  # erased: the next line starts clean
    assert "\n" not in drawn


@pytest.mark.parametrize("case", ["not a terminal", "quiet", "disabled", "nothing to do"])
def test_progress_bar_draws_nothing_off_a_terminal_with_quiet_or_when_disabled(spectrotune_logger, monkeypatch,
                                                                                 case):
    console.configure(console.QUIET if case == "quiet" else console.NORMAL)
    stream = io.StringIO() if case == "not a terminal" else _Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    with console.Progress("predict", 0 if case == "nothing to do" else 3, enabled=case != "disabled") as bar:
        bar.advance(3)
    assert stream.getvalue() == ""


def test_report_error_is_one_line(capsys):
    assert console.report_error(ValueError("bad\nvalue"), 3, unexpected=True) == 3
    assert capsys.readouterr().err == ("spectrotune: error: unexpected ValueError: bad value (rerun with "
                                       "-v/--verbose for the traceback)\n")


def test_exit_codes_text_lists_each_status_once():
    text = console.exit_codes_text()
    assert text.splitlines()[0] == "exit status:"
    assert [int(line.split()[0]) for line in text.splitlines()[1:]] == [0, 1, 2, 3, 130]
