"""Noise variants of audio segments at a controlled signal-to-noise ratio, reproducible bit for bit.

``prepare`` makes, for each clean segment, noisy variants named like ``white@10dB`` or
``file@20dB`` (:func:`variant_name`). The noise of one variant of one segment comes from its own
random generator, seeded from ``(seed, track_id, segment, variant)`` by a stable hash
(:func:`derive_seed`), so any shard can be rebuilt identically in any process, on any machine, in
any order. As in descript's audiotools, the random part (drawing a noise vector:
:func:`draw_noise`) is kept apart from the deterministic part (scaling it to the target SNR and
adding it: :func:`mix_at_snr`). :func:`add_noise_batch` is what the pipeline calls.

The SNR is ``10*log10(P_clean / P_noise)`` with P the mean square over the segment, so every noisy
segment hits its target exactly (to float32 rounding), whatever the loudness of the music. A silent
segment has no defined SNR: it is returned unchanged and its SNR is None. Outputs are not clipped
and may exceed [-1, 1] at low SNR; features downstream work on floats.

Pure numpy, never imports Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Sequence

import numpy as np

from spectrotune.errors import ConfigError

__all__ = [
    "CLEAN",
    "NOISE_KINDS",
    "add_noise_batch",
    "background_excerpt",
    "colored_noise",
    "derive_seed",
    "draw_noise",
    "measured_snr_db",
    "mix_at_snr",
    "parse_variant",
    "rng_for",
    "variant_name",
]

#: Name of the variant without added noise.
from spectrotune.schema import CLEAN  # noqa: E402  (re-exported: variant names live in one place)
#: Noise kinds: synthetic white/pink/brown, or "file" = excerpts of a background recording.
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "file")

# Below this mean square (-120 dBFS) a clean segment counts as silent: an SNR relative to it is
# meaningless and scaling noise to it would divide by ~0.
_SILENT_POWER = 1e-12

_VARIANT_RE = re.compile(r"^(?P<kind>[a-z]+)@(?P<snr>[-+]?[0-9.]+(?:e[-+]?[0-9]+)?)dB$")


def _mean_square(x: np.ndarray) -> float:
    """Mean of squares of a 1-D float64 array.

    einsum, not np.dot: dot goes to multithreaded OpenBLAS, which on a busy 2-core machine took
    16 ms instead of 0.03 ms for one 3-s segment (threads spinning against each other).
    """
    return float(np.einsum("i,i->", x, x)) / x.shape[0]


def _check_kind(kind: str, *, allowed: Sequence[str] = NOISE_KINDS) -> str:
    if kind not in allowed:
        raise ConfigError(f"unknown noise kind {kind!r}; expected one of {', '.join(allowed)}")
    return kind


def variant_name(kind: str, snr_db: float) -> str:
    """Name of a noise variant, e.g. ``"white@10dB"``, ``"pink@-5dB"``, ``"file@2.5dB"``.

    The SNR is written with ``{:g}`` (6 significant digits). An SNR that this would round (such as
    10.1234567) is refused, so that a name always stands for exactly one SNR and one random seed.

    Raises
    ------
    ConfigError
        Unknown ``kind``, non-finite ``snr_db``, or ``snr_db`` not exactly representable.
    """
    _check_kind(kind)
    snr = float(snr_db) + 0.0  # + 0.0 turns -0.0 into 0.0, so there is no "-0dB"
    if not math.isfinite(snr):
        raise ConfigError(f"snr_db must be finite, got {snr_db!r} for noise kind {kind!r}")
    text = f"{snr:g}"
    if float(text) != snr:
        raise ConfigError(f"snr_db {snr_db!r} has more than 6 significant digits; use e.g. {text}")
    return f"{kind}@{text}dB"


def parse_variant(name: str) -> tuple[str, float]:
    """Inverse of :func:`variant_name`: ``"pink@-5dB"`` -> ``("pink", -5.0)``.

    :data:`CLEAN` is not a noise variant and is refused like any other bad name; callers test
    ``name == CLEAN`` first.

    Raises
    ------
    ConfigError
        ``name`` is not ``<kind>@<snr>dB`` with a known kind and a finite SNR.
    """
    m = _VARIANT_RE.match(name) if isinstance(name, str) else None
    if m is None:
        raise ConfigError(
            f"bad noise variant {name!r}; expected '<kind>@<snr>dB' with kind in "
            f"{', '.join(NOISE_KINDS)}, e.g. 'white@10dB'"
        )
    kind = _check_kind(m["kind"])
    try:
        snr = float(m["snr"])
    except ValueError as e:
        raise ConfigError(f"bad SNR {m['snr']!r} in noise variant {name!r}") from e
    if not math.isfinite(snr):
        raise ConfigError(f"SNR in noise variant {name!r} must be finite")
    return kind, snr + 0.0


def derive_seed(seed: int, track_id: str, segment: int, variant: str) -> int:
    """A 64-bit seed for one variant of one segment, stable across processes, runs and machines.

    Uses BLAKE2b of a canonical JSON encoding of the four values (Python's ``hash()`` is salted
    per process and would break reproducibility between Ray workers).

    Returns
    -------
    int
        In ``[0, 2**64)``.
    """
    key = json.dumps(
        [operator.index(seed), str(track_id), operator.index(segment), str(variant)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"spectrotune").digest()
    return int.from_bytes(digest, "little")


def rng_for(seed: int, track_id: str, segment: int, variant: str) -> np.random.Generator:
    """A PCG64 generator seeded by :func:`derive_seed` for ``(seed, track_id, segment, variant)``."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, track_id, segment, variant)))


def colored_noise(kind: str, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Synthetic noise with power spectral density ∝ 1/f^alpha.

    White: Gaussian samples (alpha = 0). Pink (alpha = 1) and brown (alpha = 2): a white complex
    Gaussian spectrum (what the rfft of white noise is) scaled by ``f**(-alpha/2)``, DC bin set to
    zero so the signal does not drift, and transformed back with irfft.

    Parameters
    ----------
    kind : {"white", "pink", "brown"}
    n : int
        Number of samples, at least 2.
    rng : np.random.Generator, keyword-only
        The only source of randomness.

    Returns
    -------
    noise : np.ndarray, float32, shape [n]
        Zero mean and unit RMS (exactly, up to float32 rounding).
    """
    _check_kind(kind, allowed=("white", "pink", "brown"))
    n = operator.index(n)
    if n < 2:
        raise ValueError(f"colored_noise needs n >= 2 samples, got {n}")
    if kind == "white":
        x = rng.standard_normal(n)
    else:
        m = n // 2 + 1
        # Interleaved (re, im) pairs viewed as complex: half the cost of building re + 1j * im.
        spectrum = rng.standard_normal(2 * m).view(np.complex128)
        f = np.arange(m, dtype=np.float64)
        f[0] = 1.0  # placeholder; the DC bin is zeroed just below
        spectrum *= f ** (-0.5 if kind == "pink" else -1.0)
        spectrum[0] = 0.0
        x = np.fft.irfft(spectrum, n)
    x -= x.mean()
    rms = math.sqrt(_mean_square(x))
    return (x / rms).astype(np.float32)


def background_excerpt(noise: np.ndarray, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """A random excerpt of ``n`` samples from a background recording.

    The start is uniform over all positions. A recording shorter than ``n`` is looped: the excerpt
    starts at a random offset and wraps around as often as needed.

    Parameters
    ----------
    noise : np.ndarray, shape [n_noise]
        Mono background recording, already decoded at the segments' sampling rate.
    n : int
        Excerpt length in samples.
    rng : np.random.Generator, keyword-only

    Returns
    -------
    excerpt : np.ndarray, float32, shape [n]
        A copy; its level is that of the recording (:func:`mix_at_snr` rescales it).
    """
    noise = np.asarray(noise)
    if noise.ndim != 1 or noise.shape[0] == 0:
        raise ValueError(f"background noise must be 1-D and non-empty, got shape {noise.shape}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"excerpt length must be >= 1 sample, got {n}")
    length = noise.shape[0]
    if length >= n:
        start = int(rng.integers(0, length - n + 1))
        return np.array(noise[start : start + n], dtype=np.float32)
    start = int(rng.integers(0, length))
    return np.take(noise, (start + np.arange(n)) % length).astype(np.float32, copy=False)


def draw_noise(
    kind: str,
    n: int,
    *,
    rng: np.random.Generator,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one raw noise vector of ``kind`` (the random half of adding noise).

    ``kind == "file"`` takes a :func:`background_excerpt` of ``background``; the other kinds use
    :func:`colored_noise`. Returns float32 [n]; its level is arbitrary until :func:`mix_at_snr`.

    Raises
    ------
    ConfigError
        Unknown ``kind``, or ``kind == "file"`` without ``background``.
    ValueError
        ``background`` given for a synthetic kind (it would be silently unused).
    """
    _check_kind(kind)
    if kind == "file":
        if background is None:
            raise ConfigError("noise kind 'file' needs a background recording (noise file) but none was given")
        return background_excerpt(background, n, rng=rng)
    if background is not None:
        raise ValueError(f"a background recording was given for synthetic noise kind {kind!r}")
    return colored_noise(kind, n, rng=rng)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR in dB of ``noisy`` relative to ``clean``: ``10*log10(P(clean) / P(noisy - clean))``.

    Powers are mean squares computed in float64. Returns ``inf`` when ``noisy == clean``.

    Raises
    ------
    ValueError
        Shapes differ, or ``clean`` is silent (mean square < 1e-12): its SNR is undefined.
    """
    c = np.asarray(clean, dtype=np.float64)
    d = np.asarray(noisy, dtype=np.float64)
    if c.shape != d.shape:
        raise ValueError(f"clean and noisy shapes differ: {c.shape} vs {d.shape}")
    p_clean = float(np.mean(np.square(c)))
    if p_clean < _SILENT_POWER:
        raise ValueError(f"SNR is undefined for a silent clean signal (mean square {p_clean:.3g})")
    p_noise = float(np.mean(np.square(d - c)))
    if p_noise == 0.0:
        return math.inf
    return 10.0 * math.log10(p_clean / p_noise)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, *, snr_db: float) -> tuple[np.ndarray, float | None]:
    """Add ``noise`` to ``clean``, scaled so the result has exactly ``snr_db`` dB SNR.

    The gain is ``sqrt(P_clean / (P_noise * 10**(snr_db/10)))`` with P the mean square in float64.

    Parameters
    ----------
    clean : np.ndarray, shape [win]
        One segment, full scale 1.0.
    noise : np.ndarray, shape [win]
        Raw noise of any level (e.g. from :func:`draw_noise`).
    snr_db : float, keyword-only
        Target SNR in dB (may be negative).

    Returns
    -------
    noisy : np.ndarray, float32, shape [win]
        ``clean + gain * noise``; not clipped, so it may exceed [-1, 1]. A silent ``clean``
        (mean square < 1e-12) is returned unchanged (as a float32 copy).
    snr : float or None
        SNR measured on the float32 output (:func:`measured_snr_db`), or None for a silent ``clean``.
        Never NaN or inf.

    Raises
    ------
    ValueError
        Shapes differ or are not 1-D, non-finite ``snr_db`` or samples, or all-zero ``noise``
        with a non-silent ``clean``.
    """
    c = np.asarray(clean, dtype=np.float64)
    z = np.asarray(noise, dtype=np.float64)
    if c.ndim != 1 or c.shape != z.shape or c.shape[0] == 0:
        raise ValueError(f"clean and noise must be 1-D of equal non-zero length, got {c.shape} and {z.shape}")
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    # A NaN/inf sample makes a power non-finite, which doubles as the finiteness check
    # (squares of float32-range values cannot overflow float64).
    p_clean = _mean_square(c)
    p_noise = _mean_square(z)
    if not (math.isfinite(p_clean) and math.isfinite(p_noise)):
        raise ValueError("clean or noise contains NaN or infinite samples")
    if p_clean < _SILENT_POWER:
        return np.array(clean, dtype=np.float32), None
    if p_noise == 0.0:
        raise ValueError(f"noise is all zeros; it cannot be scaled to {snr_db:g} dB SNR")
    gain = math.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    noisy = (c + gain * z).astype(np.float32)
    residual = noisy - c  # float64: the noise actually present in the float32 output
    p_residual = _mean_square(residual)
    if p_residual == 0.0:
        raise ValueError(f"snr_db {snr_db:g} is too high: the noise vanishes in float32 rounding")
    return noisy, 10.0 * math.log10(p_clean / p_residual)


def add_noise_batch(
    segments: np.ndarray,
    *,
    kind: str,
    snr_db: float,
    seed: int,
    track_id: str,
    segment_indices: Sequence[int],
    background: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float | None]]:
    """Make the ``variant_name(kind, snr_db)`` variant of every segment of one track.

    Segment ``i`` gets noise drawn from ``rng_for(seed, track_id, segment_indices[i], variant)``,
    so a segment's noise does not depend on which other segments are in the batch, or on order.

    Parameters
    ----------
    segments : np.ndarray, shape [n_segments, win]
        Clean segments of one track.
    kind : str, keyword-only
        One of :data:`NOISE_KINDS`.
    snr_db : float, keyword-only
        Target SNR in dB.
    seed : int, keyword-only
        The run's base seed.
    track_id : str, keyword-only
        E.g. ``"blues.00000"``.
    segment_indices : Sequence[int], keyword-only
        Index of each row within its track (the Parquet ``segment`` column), length ``n_segments``.
    background : np.ndarray or None, keyword-only
        Mono background recording at the segments' rate; required for ``kind == "file"`` and
        refused (ValueError) for the synthetic kinds.

    Returns
    -------
    noisy : np.ndarray, float32, shape [n_segments, win]
    snrs : list of float or None
        Measured SNR per segment in dB; None for silent segments (left unchanged).
    """
    x = np.asarray(segments)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"segments must be [n_segments, win] with win > 0, got shape {x.shape}")
    if len(segment_indices) != x.shape[0]:
        raise ValueError(f"got {len(segment_indices)} segment_indices for {x.shape[0]} segments")
    variant = variant_name(kind, snr_db)  # validates kind and SNR before any work
    if kind == "file" and background is None:
        raise ConfigError("noise kind 'file' needs a background recording (noise file) but none was given")
    out = np.empty(x.shape, dtype=np.float32)
    snrs: list[float | None] = []
    for row, index in enumerate(segment_indices):
        rng = rng_for(seed, track_id, index, variant)
        noise = draw_noise(kind, x.shape[1], rng=rng, background=background)
        out[row], snr = mix_at_snr(x[row], noise, snr_db=snr_db)
        snrs.append(snr)
    return out, snrs
