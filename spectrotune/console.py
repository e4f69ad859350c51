"""What the command line shows and returns: messages through :mod:`logging`, ``-q`` / ``-v``, and the exit codes.

Messages (stage lines, progress, what was written where) go to the ``spectrotune`` logger: each module logs to
``logging.getLogger(__name__)``, a child of it, and the package functions' ``log=`` parameters default to that
logger's ``info``. Results (predictions, a report's headline, what a command made) go to stdout. Long stages draw a
:class:`Progress` bar when stderr is a terminal; elsewhere (a log file, a pipe, a Ray job) their start and end lines
say what runs.
:func:`configure` is called once per command by :func:`spectrotune.cli.main`: INFO and above to stderr by default,
WARNING and above with ``-q``, DEBUG with ``-v``. A notebook or script that imports spectrotune configures
nothing: ``logging.basicConfig(level="INFO")`` shows the messages, or pass ``log=print``.

:data:`EXIT_CODES` is the one list of exit statuses; ``spectrotune --help`` and the README show it. Pure Python.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
import traceback

__all__ = ["EXIT_CODES", "EXIT_INPUTS_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "LOGGER",
           "NORMAL", "Progress", "QUIET", "VERBOSE", "Subcommands", "configure", "exit_codes_text", "report_error",
           "verbosity"]

#: Name of the logger every spectrotune module logs under.
LOGGER = "spectrotune"

EXIT_OK = 0
EXIT_INPUTS_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130
#: ``(status, meaning)`` of every exit status of ``spectrotune``.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_INPUTS_FAILED, "some inputs failed and --strict was given, or every input failed (each one is named)"),
    (EXIT_USAGE, "usage or configuration error: bad option, config key or value, missing file or bundle"),
    (EXIT_RUNTIME, "runtime failure: an unexpected error, in one line (-v/--verbose adds the traceback)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)

#: Verbosity levels: ``-q``, neither, ``-v``.
QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


def exit_codes_text() -> str:
    """:data:`EXIT_CODES` as an aligned block of text (the epilog of ``spectrotune --help``)."""
    return "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


def verbosity(*, quiet: bool = False, verbose: bool = False) -> int:
    """:data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE` from the ``-q`` / ``-v`` flags (``-v`` wins)."""
    return VERBOSE if verbose else QUIET if quiet else NORMAL


class _StderrHandler(logging.StreamHandler):
    """Writes each message to ``sys.stderr`` as it is at that moment (a redirected stream, pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - the StreamHandler attribute, looked up on every write
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001 - StreamHandler.__init__ assigns it; always sys.stderr
        pass


class _Formatter(logging.Formatter):
    """The message as is; warnings and errors prefixed ``spectrotune: warning:``, debug lines ``debug:``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"spectrotune: {record.levelname.lower()}: {text}"
        if record.levelno < logging.INFO:
            return f"debug: {text}"
        return text


def configure(level: int = NORMAL) -> logging.Logger:
    """Send the ``spectrotune`` logger's messages to stderr at ``level`` (:data:`QUIET`, :data:`NORMAL` or
    :data:`VERBOSE`); returns the logger. Calling it again replaces the handler it added (one per process)."""
    if level not in _LEVELS:
        raise ValueError(f"verbosity must be one of {sorted(_LEVELS)}, got {level!r}")
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(_LEVELS[level])
    return logger


class Subcommands:
    """argparse's subparsers whose :meth:`add_parser` gives every command ``-q/--quiet`` and ``-v/--verbose``."""

    def __init__(self, action: argparse._SubParsersAction) -> None:  # noqa: SLF001 - what add_subparsers returns
        self._action = action
        self._common = argparse.ArgumentParser(add_help=False)
        group = self._common.add_argument_group("messages").add_mutually_exclusive_group()
        group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
        group.add_argument("-v", "--verbose", action="store_true",
                           help="debug messages, Ray's own log lines, and the traceback of an unexpected error")

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:  # noqa: ANN003 - argparse's keywords
        return self._action.add_parser(name, parents=[self._common], **kwargs)


def report_error(error: BaseException, code: int, *, verbose: bool = False, unexpected: bool = False) -> int:
    """Print ``error`` as one line on stderr (after its traceback with ``verbose``); return ``code``.

    ``unexpected``: not a :class:`~spectrotune.errors.SpectrotuneError`; the line names the exception type and
    says how to see the traceback.
    """
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    text = " ".join(str(error).split()) or "(no message)"
    if unexpected:
        text = f"unexpected {type(error).__name__}: {text}" + ("" if verbose else
                                                               " (rerun with -v/--verbose for the traceback)")
    print(f"spectrotune: error: {text}", file=sys.stderr)
    sys.stderr.flush()
    return code


class Progress:
    """A progress bar redrawn in place on stderr, ``prepare: 12/40 files [######------] 30% 4 s``, when stderr is a
    terminal and the ``spectrotune`` logger shows INFO (not ``-q``); otherwise it draws nothing, and the stage's own
    log lines say what runs. Redrawn at most ten times a second; :meth:`close` (or leaving the ``with`` block)
    erases it so the next line starts clean.
    """

    WIDTH = 24  # characters of the bar itself

    def __init__(self, label: str, total: int, *, unit: str = "files", enabled: bool = True) -> None:
        self.label, self.total, self.unit = label, max(0, int(total)), unit
        self.done = 0
        self._t0 = self._drawn = time.monotonic()
        stream = sys.stderr
        self.enabled = (bool(enabled) and self.total > 0 and logging.getLogger(LOGGER).isEnabledFor(logging.INFO)
                        and hasattr(stream, "isatty") and stream.isatty())
        if self.enabled:
            self._draw()

    def advance(self, n: int = 1) -> None:
        """``n`` more of :attr:`total` are done."""
        self.done = min(self.total, self.done + int(n))
        if self.enabled and (self.done == self.total or time.monotonic() - self._drawn >= 0.1):
            self._draw()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        filled = round(self.WIDTH * self.done / self.total)
        line = (f"{self.label}: {self.done}/{self.total} {self.unit} [{'#' * filled}{'-' * (self.WIDTH - filled)}] "
                f"{100 * self.done / self.total:3.0f}% {self._drawn - self._t0:.0f} s")
        columns = shutil.get_terminal_size((80, 24)).columns
        sys.stderr.write("\r" + line[: columns - 1].ljust(columns - 1))
        sys.stderr.flush()

    def close(self) -> None:
        """Erase the bar (nothing to do when it was not drawn)."""
        if self.enabled:
            sys.stderr.write("\r" + " " * (shutil.get_terminal_size((80, 24)).columns - 1) + "\r")
            sys.stderr.flush()
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
