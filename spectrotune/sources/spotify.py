"""Spotify-style spectrogram images: the dataset's layout rules, and reading images back into arrays.

The Kaggle "Spotify 3-second mel spectrograms" set is, despite its name, a folder of JPG renderings of linear
STFT dB spectrograms (DESIGN.md §2): a 3-s, 22050 Hz clip -> ``librosa.stft`` -> ``amplitude_to_db`` ->
``librosa.display.specshow(y_axis="log")`` with axes off -> RGB JPG of about 516 x 389 px saved with
``bbox_inches="tight"``, which leaves a white border of about 10 px. ``specshow`` picks the colormap from the data:
``coolwarm`` when the dB values have both signs (``ref=1.0``, the usual case for music) and ``magma`` when they do not
(``ref=np.max``). :mod:`spectrotune.sources.spotify_render` renders new ones the same way.

Layout (each rule defined here once, used by :mod:`spectrotune.sources.listing`): images (:data:`IMAGE_EXTENSIONS`)
sit in ``{training,validation,testing}/<genre>/<song>_<clip>.jpg`` (:data:`SPLIT_DIRS`, mapped to the pipeline's
split names by :data:`SPLIT_OF_FOLDER`); :func:`song_and_clip` splits a stem into song id and clip index.

Reading (:func:`image_to_array`): decode with Pillow, crop the white border, detect the colormap, replace every
pixel by the position of the nearest entry of that colormap's 256-entry lookup table (0 = the low, quiet end,
1 = the high, loud end), flip so that row 0 is the lowest frequency, and area-average to ``[n_mels, n_frames]``.
Grayscale would be wrong: coolwarm's luminance rises and then falls again along the map. Because the colormap
normalises linearly between the clip's minimum and maximum dB, the positions are a per-image affine rescaling of
dB, on the image's (symlog) frequency axis rather than a mel axis. This module never imports ``ray``.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from spectrotune.errors import ImageDecodeError
from spectrotune.schema import SPLITS

__all__ = [
    "COLORMAPS",
    "IMAGE_EXTENSIONS",
    "SPLIT_DIRS",
    "SPLIT_OF_FOLDER",
    "crop_white_border",
    "detect_colormap",
    "image_to_array",
    "image_to_array_rgb",
    "is_image_file",
    "song_and_clip",
    "spotify_song_id",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
"""File name endings (compared case-insensitively) that :func:`is_image_file` accepts."""

COLORMAPS = ("coolwarm", "magma")
"""The colormaps ``librosa.display.specshow`` picks: diverging for signed dB, sequential otherwise."""

SPLIT_DIRS = ("training", "validation", "testing")
"""Split folder names of the Spotify dataset, in the order of :data:`~spectrotune.schema.SPLITS`."""

SPLIT_OF_FOLDER: dict[str, str] = dict(zip(SPLIT_DIRS, SPLITS))
"""Spotify split folder -> the pipeline's split name (``training`` -> ``train`` ...)."""

# A pixel is "near-white" when all three channels reach this level. The lightest colormap colours stay below it
# (coolwarm's middle grey is 221; magma's top is (252, 253, 191)), while JPG ringing keeps border whites >= ~238.
_WHITE_LEVEL = 235
# A row/column belongs to the white border when at least this fraction of its pixels is near-white.
_BORDER_WHITE_FRACTION = 0.5
# Bits kept per channel in the RGB cube -> colormap-index table: 64^3 cells, step 4, far below JPG noise.
_CUBE_BITS = 6
# Pixels used by detect_colormap (a regular subsample); plenty to tell two very different colormaps apart.
_DETECT_SAMPLES = 16384
# Mean distance (RGB units, 0..255 per channel) from the best colormap above which an image is not a
# spectrogram of that kind. Rendered JPGs fit at ~5-16 (white-noise speckle is worst); random colours, a grey
# ramp or other colormaps at >= 64.
_MAX_FIT_DISTANCE = 40.0


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` names an image this module reads (by extension, case-insensitive).

    Parameters
    ----------
    path : str or os.PathLike
        A file name; the file need not exist.

    Returns
    -------
    bool
        True if the name ends in one of :data:`IMAGE_EXTENSIONS`.
    """
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def song_and_clip(stem: str) -> tuple[str, int | None]:
    """Split a Spotify image stem ``<song>_<clip>`` into song id and clip index: the dataset's song-id rule.

    ``blues.00003_4`` -> ``("blues.00003", 4)``. A stem without an underscore, with nothing before it, or with a
    non-numeric part after the last one is its own song id, with clip index ``None``.

    Parameters
    ----------
    stem : str
        File name without its extension.

    Returns
    -------
    song : str
        The song id, used to split by song instead of by clip.
    clip : int or None
        The clip's index within its song.
    """
    song, sep, clip = stem.rpartition("_")
    if not sep or not song:
        return stem, None
    return (song, int(clip)) if clip.isdigit() else (stem, None)


def spotify_song_id(path: str | os.PathLike[str]) -> str:
    """Song id of a Spotify-layout image path or file name: :func:`song_and_clip` of its stem.

    ``dataset/training/blues/blues.00003_4.jpg`` -> ``blues.00003``.
    """
    return song_and_clip(Path(path).stem)[0]


# --------------------------------------------------------------------------------------------------------------
# Colormap lookup tables
# --------------------------------------------------------------------------------------------------------------


def _check_colormap(colormap: str) -> None:
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap={colormap!r}: expected one of {COLORMAPS}")


@functools.cache
def _lut(colormap: str) -> np.ndarray:
    """The colormap's lookup table as float32 [N, 3] RGB in 0..255 (N = 256 for both maps)."""
    import matplotlib

    cmap = matplotlib.colormaps[colormap]
    rgb = cmap(np.arange(cmap.N))[:, :3] * 255.0
    lut = np.ascontiguousarray(rgb, dtype=np.float32)
    lut.setflags(write=False)
    return lut


@functools.cache
def _cube(colormap: str) -> tuple[np.ndarray, np.ndarray]:
    """Quantised RGB cube -> (colormap position, distance to the nearest entry), built once per colormap.

    Returns
    -------
    position : np.ndarray, float32 [64**3]
        Position in [0, 1] of the nearest lookup-table entry for every cube cell (cell = 6 bits per channel).
    distance : np.ndarray, float32 [64**3]
        Euclidean RGB distance (0..255 units) from the cell centre to that entry, used to judge the fit.
    """
    from scipy.spatial import cKDTree

    lut = _lut(colormap).astype(np.float64)
    levels = 1 << _CUBE_BITS
    step = 256 // levels
    centres = np.arange(levels, dtype=np.float64) * step + (step - 1) / 2.0
    r, g, b = np.meshgrid(centres, centres, centres, indexing="ij")
    cells = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)  # [levels^3, 3], index = r<<12 | g<<6 | b
    # A k-d tree answers the 262,144 nearest-entry queries in ~0.1 s; a dense [cells, 256] distance
    # computation takes ~1 s.
    dist, index = cKDTree(lut).query(cells, k=1)
    dist = dist.astype(np.float32)
    position = (index / (len(lut) - 1)).astype(np.float32)
    position.setflags(write=False)
    dist.setflags(write=False)
    return position, dist


def _cube_index(rgb: np.ndarray) -> np.ndarray:
    """Cube cell index of every pixel: uint8 [..., 3] -> intp [...]."""
    shift = 8 - _CUBE_BITS
    q = (rgb >> shift).astype(np.intp)
    return (q[..., 0] << (2 * _CUBE_BITS)) | (q[..., 1] << _CUBE_BITS) | q[..., 2]


def _as_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"rgb: expected a uint8 array [height, width, 3], got {rgb.dtype} {rgb.shape}")
    return rgb[..., :3]


def _near_white(rgb: np.ndarray) -> np.ndarray:
    """bool [...]: all three channels >= _WHITE_LEVEL (channel-wise minimum: much faster than .min(axis=-1))."""
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) >= _WHITE_LEVEL


def _fits_from_cells(cells: np.ndarray) -> dict[str, float]:
    """Mean nearest-entry distance to each colormap of pixels given by cube cell index (a regular subsample)."""
    cells = cells.ravel()
    if cells.size == 0:
        return {name: float("inf") for name in COLORMAPS}
    cells = cells[:: max(1, cells.size // _DETECT_SAMPLES)]
    return {name: float(_cube(name)[1][cells].mean()) for name in COLORMAPS}


def _colormap_fits(rgb: np.ndarray) -> dict[str, float]:
    """Fit of each colormap to an image, ignoring near-white pixels (the border would favour magma's pale top)."""
    pixels = rgb.reshape(-1, 3)
    pixels = pixels[:: max(1, len(pixels) // (4 * _DETECT_SAMPLES))]
    return _fits_from_cells(_cube_index(pixels[~_near_white(pixels)]))


def detect_colormap(rgb: np.ndarray) -> str:
    """Which of :data:`COLORMAPS` rendered an image: the one whose lookup table fits the pixels best.

    Fit = mean distance from each pixel of a regular subsample (near-white pixels, i.e. the border, left out) to
    its nearest lookup-table entry, in RGB units.

    Parameters
    ----------
    rgb : np.ndarray, uint8 [height, width, 3]
        Decoded image, with or without its white border.

    Returns
    -------
    str
        ``"coolwarm"`` or ``"magma"``.
    """
    fits = _colormap_fits(_as_rgb_uint8(rgb))
    return min(fits, key=fits.__getitem__)


# --------------------------------------------------------------------------------------------------------------
# Image -> array
# --------------------------------------------------------------------------------------------------------------


def crop_white_border(rgb: np.ndarray) -> np.ndarray:
    """Cut away the white border that ``bbox_inches="tight"`` leaves around the spectrogram.

    A row (then, within the kept rows, a column) is border when at least half its pixels are near-white (all
    channels >= 235, robust to JPG ringing). The first and last non-border rows/columns bound the spectrogram;
    one more pixel is trimmed on each side because JPG blends the border into the edge pixels.

    Parameters
    ----------
    rgb : np.ndarray, uint8 [height, width, 3] (or any [height, width, ...] array of the same image)
        Decoded image.

    Returns
    -------
    np.ndarray, same dtype, [h, w, ...]
        A view of the spectrogram area; empty (h or w == 0) when the image is all white.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"rgb: expected an array [height, width, 3], got shape {rgb.shape}")
    white = _near_white(rgb)
    rows = np.flatnonzero(white.mean(axis=1) < _BORDER_WHITE_FRACTION)
    if len(rows) == 0:
        return rgb[:0, :0]
    top, bottom = rows[0], rows[-1] + 1
    cols = np.flatnonzero(white[top:bottom].mean(axis=0) < _BORDER_WHITE_FRACTION)
    if len(cols) == 0:
        return rgb[:0, :0]
    left, right = cols[0], cols[-1] + 1
    if bottom - top > 2:
        top, bottom = top + 1, bottom - 1
    if right - left > 2:
        left, right = left + 1, right - 1
    return rgb[top:bottom, left:right]


def _area_resize(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Area-average ``values`` along ``axis`` to ``n_out`` cells (down- or upsampling), float64.

    Output cell ``i`` is the mean of the piecewise-constant input over ``[i, i + 1) * n_in / n_out``, computed
    from the running integral evaluated at fractional edges: O(size), and no BLAS threads to fight over cores.
    """
    values = np.moveaxis(values, axis, 0)
    n_in = values.shape[0]
    integral = np.zeros((n_in + 1,) + values.shape[1:], dtype=np.float64)
    np.cumsum(values, axis=0, dtype=np.float64, out=integral[1:])
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    whole = np.minimum(np.floor(edges).astype(np.intp), n_in - 1)
    frac = (edges - whole)[(slice(None),) + (None,) * (values.ndim - 1)]
    at_edges = integral[whole] + frac * values[whole]
    out = np.diff(at_edges, axis=0) * (n_out / n_in)
    return np.moveaxis(out, 0, axis)


def _check_shape(n_mels: int, n_frames: int) -> None:
    for name, value in (("n_mels", n_mels), ("n_frames", n_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")


def _rgb_to_array(rgb: np.ndarray, name: str, n_mels: int, n_frames: int, colormap: str | None) -> np.ndarray:
    _check_shape(n_mels, n_frames)
    if colormap is not None:
        _check_colormap(colormap)
    area = crop_white_border(rgb)
    if area.shape[0] < 2 or area.shape[1] < 2:
        raise _decode_error(name, f"no spectrogram area inside the white border (image {rgb.shape[1]}x{rgb.shape[0]})")
    cells = _cube_index(area)  # [h, w], shared by the colormap fit and the inversion
    fits = _fits_from_cells(cells)
    if colormap is None:
        colormap = min(fits, key=fits.__getitem__)
    if fits[colormap] > _MAX_FIT_DISTANCE:
        raise _decode_error(
            name,
            f"colours do not fit the {colormap} colormap (mean distance {fits[colormap]:.1f} > "
            f"{_MAX_FIT_DISTANCE:g}); not a Spotify-style spectrogram",
        )
    position = _cube(colormap)[0][cells]  # float32 [h, w], 0 = low end of the colormap
    # Image row 0 is the highest frequency: flip so that row 0 of the output is the lowest.
    out = _area_resize(_area_resize(position[::-1], n_frames, axis=1), n_mels, axis=0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def image_to_array_rgb(
    rgb: np.ndarray,
    *,
    n_mels: int = 128,
    n_frames: int = 130,
    colormap: str | None = None,
) -> np.ndarray:
    """Turn an already-decoded Spotify-style image into a 2-D array; see :func:`image_to_array`.

    Parameters
    ----------
    rgb : np.ndarray, uint8 [height, width, 3]
        Decoded RGB image, white border included (an alpha channel, if any, is ignored).
    n_mels, n_frames, colormap
        As in :func:`image_to_array`.

    Returns
    -------
    np.ndarray, float32 [n_mels, n_frames]
        Colormap positions in [0, 1]; row 0 is the lowest frequency.

    Raises
    ------
    ImageDecodeError
        No spectrogram inside the border, or the colours fit neither colormap (file name ``<array>``).
    ValueError
        ``rgb`` is not a uint8 [height, width, 3] array, or a parameter is out of range.
    """
    return _rgb_to_array(_as_rgb_uint8(rgb), "<array>", n_mels, n_frames, colormap)


def _decode_error(name: str, reason: str) -> ImageDecodeError:
    err = ImageDecodeError(f"{name}: {reason}")
    err.reason = reason
    return err


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # Image.open is lazy: truncation only shows when the pixels are decoded
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError as e:
        raise _decode_error(str(path), "file not found") from e
    except UnidentifiedImageError as e:
        raise _decode_error(str(path), "not an image Pillow can identify") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _decode_error(str(path), f"cannot decode image ({e})") from e


def image_to_array(
    path: str | os.PathLike[str],
    *,
    n_mels: int = 128,
    n_frames: int = 130,
    colormap: str | None = None,
) -> np.ndarray:
    """Read a Spotify-style spectrogram JPG/PNG back into a 2-D array of colormap positions.

    Steps: decode (Pillow, RGB) -> crop the white border -> detect the colormap (unless given) -> replace each
    pixel by the position of its nearest lookup-table entry (via a cached 64^3 RGB cube) -> flip so row 0 is the
    lowest frequency -> area-average to ``[n_mels, n_frames]``. About 5 ms for a 516 x 389 px JPG.

    Parameters
    ----------
    path : str or os.PathLike
        Image file.
    n_mels : int > 0
        Output rows (frequency, on the image's log/symlog axis - the name follows the pipeline's ``mel`` column).
    n_frames : int > 0
        Output columns (time). A 3-s clip at 22050 Hz has 130 STFT frames, so 130 keeps one column per frame.
    colormap : {"coolwarm", "magma"} or None
        Colormap to invert; None detects it with :func:`detect_colormap`.

    Returns
    -------
    np.ndarray, float32 [n_mels, n_frames]
        Positions in [0, 1] along the colormap: 0 = its low end (quietest dB of the clip), 1 = its high end.

    Raises
    ------
    ImageDecodeError
        Missing, corrupt, truncated or non-image file, or an image that is no such spectrogram. The message is
        ``f"{path}: {reason}"``; ``.reason`` holds the reason alone.
    """
    name = str(path)
    return _rgb_to_array(_read_rgb(Path(path)), name, n_mels, n_frames, colormap)
