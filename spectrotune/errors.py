"""The one exception hierarchy of spectrotune.

Every error a user can cause (bad config, unreadable input, missing dataset) derives from
:class:`SpectrotuneError`. The command line catches it, prints one line and exits with code 2 (1 for
:class:`InputsFailedError`); anything else is a runtime failure, one line and code 3 (``--verbose``: the traceback;
see :mod:`spectrotune.console`). Raise with the bad value in the message and chain
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


class InputsFailedError(SpectrotuneError):
    """Inputs could not be used: some with ``--strict``, or every one of them (exit code 1, not 2).

    Raised after the run finished with the inputs that could be used; the output it wrote names each failure
    with its reason (``errors.parquet``, predict's rows)."""


class OutputExistsError(SpectrotuneError):
    """An output path exists and ``--overwrite`` was not given."""


class BundleError(SpectrotuneError):
    """A model bundle is missing files or cannot be loaded."""


class StorageError(SpectrotuneError):
    """A local path or storage URI (``s3://``, ``gs://``) cannot be opened, read or written; names it and why."""


class TrackingError(SpectrotuneError):
    """Experiment tracking cannot be used: MLflow missing, a tracking server unreachable or a bad URI (an error
    only with ``--strict-tracking`` / ``tracking.strict``; otherwise one warning and the run goes on untracked)."""
