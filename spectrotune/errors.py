"""The one exception hierarchy of spectrotune.

Every error a user can cause (bad config, unreadable input, missing dataset) derives from
:class:`SpectrotuneError`. The command line catches it, prints one line and exits with code 2;
anything else is a bug and keeps its traceback. Raise with the bad value in the message and chain
the underlying error with ``raise ... from e``.
"""

from __future__ import annotations


class SpectrotuneError(Exception):
    """Base class of all expected, user-facing errors (exit code 2 on the command line)."""


class ConfigError(SpectrotuneError):
    """A configuration key, value or file is invalid (message names key, value and file)."""


class InputError(SpectrotuneError):
    """An input file (audio, image, list, CSV) cannot be used; the message names the file."""


class AudioDecodeError(InputError):
    """An audio file cannot be decoded, or decodes to unusable samples (NaN/inf, too short)."""


class ImageDecodeError(InputError):
    """An image file cannot be decoded or is not a Spotify-style spectrogram image."""


class DatasetError(SpectrotuneError):
    """A prepared dataset (Parquet shards + manifest) is missing, incomplete or inconsistent."""


class OutputExistsError(SpectrotuneError):
    """An output path exists and ``--overwrite`` was not given."""


class BundleError(SpectrotuneError):
    """A model bundle is missing files or cannot be loaded."""


class StorageError(SpectrotuneError):
    """A local path or storage URI (``s3://``, ``gs://``) cannot be opened, read or written; names it and why."""
