"""Numba-compiled inner loops of :mod:`spectrotune.audio.handcrafted`, each reproducing a librosa / scipy step.

- :func:`sliding_median`: the HPSS median filters (librosa's cost centre with ``scipy.ndimage``), bit-identical
  to ``scipy.ndimage.median_filter(mode='reflect')`` along one axis;
- :func:`spectral_shape`: per-frame magnitude moments and the roll-off bin;
- :func:`apply_soft_mask`: the harmonic soft mask of ``librosa.util.softmask``;
- :func:`pitch_peaks`: the parabolic peaks of ``librosa.piptrack`` (the tuning estimate of the chroma).

The kernels compile on first use (~8 s) and are cached next to this file (``__pycache__``); later processes load
them in 0.2-1.5 s. :func:`spectrotune.audio.handcrafted.warm_up` compiles them in a driver before workers start.
All release the GIL (``nogil``) and write into caller-provided arrays. Pure numpy / numba, never imports Ray.
"""

from __future__ import annotations

import numba
import numpy as np

@numba.njit(cache=True, nogil=True)
def reflect(i: int, n: int) -> int:  # pragma: no cover - compiled
    """Index i folded into [0, n) the way scipy.ndimage mode='reflect' does (d c b a | a b c d | d c b a)."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - 1 - i
    return i


@numba.njit(cache=True, nogil=True)
def sliding_median(x: np.ndarray, k: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Median over a window of k (odd) samples along axis 1 of x [A, n, L] float32, 'reflect' edges, into out.

    ``out`` has the shape and dtype of ``x`` and must not overlap it.

    Equal to ``scipy.ndimage.median_filter(x, size=(1, k, 1), mode='reflect')``. Each of the L lanes keeps its
    window sorted; sliding by one sample removes the outgoing value and inserts the incoming one with a
    branch-free merge over the k sorted slots, which the compiler vectorises across lanes.
    """
    A, n, L = x.shape
    h = k // 2
    buf = np.empty((k + 1, L), dtype=x.dtype)  # row k stays +inf: the sentinel past the last slot
    prev = np.empty(L, dtype=x.dtype)
    inf = np.float32(np.inf)
    for a in range(A):
        buf[:] = inf
        for j in range(k):  # initial window: insertion into the first j sorted slots
            v = x[a, reflect(j - h, n)]
            prev[:] = -inf
            for r in range(j + 1):
                row = buf[r]
                for lane in range(L):
                    cur = row[lane]
                    m = cur if cur < v[lane] else v[lane]
                    row[lane] = m if m > prev[lane] else prev[lane]
                    prev[lane] = cur
        out[a, 0] = buf[h]
        for t in range(1, n):
            old = x[a, reflect(t - 1 - h, n)]
            new = x[a, reflect(t + h, n)]
            prev[:] = -inf
            for r in range(k):
                row = buf[r]
                nxt = buf[r + 1]
                for lane in range(L):
                    # slot r without `old`, then `new` merged in: max(c[r-1], min(c[r], new))
                    cur = row[lane] if row[lane] < old[lane] else nxt[lane]
                    m = cur if cur < new[lane] else new[lane]
                    row[lane] = m if m > prev[lane] else prev[lane]
                    prev[lane] = cur
            out[a, t] = buf[h]


@numba.njit(cache=True, nogil=True)
def spectral_shape(  # pragma: no cover - compiled
    mag: np.ndarray, freqs: np.ndarray, roll_percent: float, out: np.ndarray
) -> None:
    """Magnitude moments and roll-off of each frame of mag [N, K] float32 into out [N, 4] float64.

    ``out[:, :3] = sum(mag * freqs**p)`` for p = 0, 1, 2 (float64 sums; ``freqs`` [K] in Hz), and ``out[:, 3]``
    = the roll-off frequency in Hz: the first bin whose float32 running sum reaches ``roll_percent`` x total.
    """
    N, K = mag.shape
    fraction = np.float32(roll_percent)
    for i in range(N):
        row = mag[i]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        total = np.float32(0.0)
        for k in range(K):
            v = row[k]
            total += v
            vf = v * freqs[k]
            s0 += v
            s1 += vf
            s2 += vf * freqs[k]
        threshold = fraction * total
        running = np.float32(0.0)
        idx = K - 1
        for k in range(K):
            running += row[k]
            if running >= threshold:
                idx = k
                break
        out[i, 0] = s0
        out[i, 1] = s1
        out[i, 2] = s2
        out[i, 3] = freqs[idx]


@numba.njit(cache=True, nogil=True)
def apply_soft_mask(  # pragma: no cover - compiled
    spec: np.ndarray, harm: np.ndarray, perc: np.ndarray, tiny: float, out: np.ndarray
) -> None:
    """out = spec * librosa.util.softmask(harm, perc, power=2, split_zeros=True), elementwise over [N, K].

    ``spec`` and ``out`` are complex64, ``harm`` / ``perc`` the float32 median-filtered magnitudes; where both
    are below ``tiny`` the mask is 0.5.
    """
    N, K = spec.shape
    for i in range(N):
        for k in range(K):
            h = harm[i, k]
            p = perc[i, k]
            z = h if h > p else p
            if z < tiny:
                m = np.float32(0.5)
            else:
                a = h / z
                b = p / z
                a = a * a
                m = a / (a + b * b)
            out[i, k] = spec[i, k] * m


@numba.njit(cache=True, nogil=True)
def pitch_peaks(
    power: np.ndarray, k0: int, k1: int, sr: float, n_fft: int, pitches: np.ndarray, mags: np.ndarray
) -> int:  # pragma: no cover - compiled
    """librosa.piptrack on one power spectrogram [T, K] float32, restricted to bins k0:k1; returns the peak count.

    Writes each peak's interpolated frequency (Hz) and magnitude to the front of ``pitches`` / ``mags``
    (float32, at least ``T * (k1 - k0)`` long),
    with librosa's arithmetic: float64 parabola (its numba stencil), float32 results.
    """
    T = power.shape[0]
    found = 0
    for t in range(T):
        x = power[t]
        ref = np.float32(0.1) * np.max(x)
        for k in range(k0, k1):
            c = x[k] if x[k] > ref else np.float32(0.0)
            left = x[k - 1] if x[k - 1] > ref else np.float32(0.0)
            right = x[k + 1] if x[k + 1] > ref else np.float32(0.0)
            if not (c > left and c >= right):
                continue
            a = np.float64(x[k + 1] + x[k - 1]) - 2.0 * np.float64(x[k])
            b = np.float64(x[k + 1] - x[k - 1]) / 2.0
            shift = np.float32(0.0) if abs(b) >= abs(a) else np.float32(-b / a)
            gradient = (x[k + 1] - x[k - 1]) / np.float32(2.0)
            pitches[found] = np.float32((k + np.float64(shift)) * sr / n_fft)
            mags[found] = x[k] + np.float32(0.5) * gradient * shift
            found += 1
    return found
