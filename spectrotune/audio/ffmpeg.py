"""The decoder for audio formats libsndfile cannot read (m4a/aac, wma, webm, ape, ...): the ``ffmpeg`` program.

:func:`spectrotune.audio.io.decode` sends files of :data:`spectrotune.audio.io.DECODER_EXTENSIONS` here. ffmpeg is
found on ``PATH`` at each call (:func:`find`), so installing it needs no restart; without it such a file fails with
the reason and the fix. It runs as a subprocess with an argument list (no shell), never reads stdin, reads only the
one local file (the ``file:`` protocol, nothing else whitelisted, so a name such as ``concat:x.m4a`` or
``-y.m4a`` is a file name and nothing more) and writes the first audio stream, at its own rate and channel count,
as 32-bit float WAV to stdout; downmix and resampling then happen in :mod:`spectrotune.audio.io` exactly as for a
file libsndfile reads. Pure Python; no ``ray``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["TIMEOUT_SECONDS", "FfmpegError", "decode_wav", "find"]

#: Seconds one decode may take before the file is given up (an hour of audio decodes in seconds).
TIMEOUT_SECONDS = 600.0


class FfmpegError(Exception):
    """ffmpeg is missing, could not run, or could not decode the file; the message is the short reason."""


def find() -> str | None:
    """The ffmpeg executable on ``PATH``, or ``None``."""
    return shutil.which("ffmpeg")


def decode_wav(path: str | os.PathLike[str], *, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """The first audio stream of ``path`` as a 32-bit float WAV file in memory (native rate and channels).

    Raises
    ------
    FfmpegError
        ``libsndfile cannot read .m4a files and ffmpeg is not installed: install ffmpeg (on PATH) to read .m4a``;
        ``not a readable audio file: ffmpeg: <ffmpeg's last error line>``; a timeout; ffmpeg failing to start.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    exe = find()
    if exe is None:
        raise FfmpegError(f"libsndfile cannot read {ext} files and ffmpeg is not installed: install ffmpeg "
                          f"(on PATH) to read {ext}")
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file",
           "-i", "file:" + os.path.abspath(name), "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-c:a", "pcm_f32le", "-f", "wav", "-"]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise FfmpegError(f"ffmpeg did not finish decoding in {timeout:g} s") from e
    except OSError as e:
        raise FfmpegError(f"ffmpeg could not be run: {e.strerror or type(e).__name__}") from e
    if done.returncode != 0 or not done.stdout:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FfmpegError(f"not a readable audio file: ffmpeg: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done.stdout
