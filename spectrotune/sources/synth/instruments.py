"""The sound sources of the synthetic corpus: wavetable lines and the drum kit's one-shots.

- :func:`wavetable` builds one period of a band-limited tone (harmonic amplitudes ``k ** -rolloff``, even
  harmonics attenuated by ``hollow``), limited to the highest note it will play so nothing aliases;
- :func:`render_line` plays a monophonic line of notes (all voices of a chord share one envelope) from a
  wavetable, with per-note phase ``f * t`` so no running phase sum is needed, one attack/decay/release envelope
  and optional vibrato;
- :func:`drum_shots` makes one kit: a pitch-swept kick, a noise snare with a tone, a high-passed noise hat/ride.

Vectorised numpy on float32 samples; no ``ray``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RELEASE_S", "TABLE_SIZE", "drum_shots", "midi_hz", "render_line", "wavetable"]

TABLE_SIZE = 2048  #: wavetable length in samples (a power of two, so the phase wraps with a bit mask)
RELEASE_S = 0.012  #: s; every note fades out over this long before the next one starts (no clicks)


def midi_hz(midi: np.ndarray) -> np.ndarray:
    """Frequency in Hz (float64, same shape) of MIDI note numbers (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def wavetable(rolloff: float, hollow: float, max_hz: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One period, shape (TABLE_SIZE,) float32 peak 1, harmonics ``k ** -rolloff`` up to 0.45 sr at ``max_hz``.

    Parameters
    ----------
    rolloff : float
        Harmonic ``k`` has amplitude ``k ** -rolloff`` (1 = sawtooth-bright, 3 = nearly a sine).
    hollow : float in [0, 1]
        Attenuation of the even harmonics.
    max_hz : float
        Highest frequency (Hz) the table will be played at; sets the number of harmonics (at most 40).
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Draws the harmonics' phases.
    """
    n_harm = int(np.clip(0.45 * sr // max(max_hz, 1.0), 1, 40))
    k = np.arange(1, n_harm + 1)
    amp = k ** -rolloff * np.where(k % 2 == 0, 1.0 - hollow, 1.0)
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spectrum[1 : n_harm + 1] = amp * np.exp(2j * np.pi * rng.random(n_harm))
    table = np.fft.irfft(spectrum, n=TABLE_SIZE)
    return (table / np.abs(table).max()).astype(np.float32)


def render_line(
    onsets: np.ndarray,
    ends: np.ndarray,
    freqs: np.ndarray,
    amps: np.ndarray,
    table: np.ndarray,
    *,
    attack: float,
    decay: float,
    vibrato: float,
    n: int,
    sr: int,
    clock: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a monophonic line (all voices of a chord share its envelope).

    Parameters
    ----------
    onsets, ends : np.ndarray, shape (K,)
        Note start / end in seconds, sorted by onset; may lie outside the clip.
    freqs : np.ndarray, shape (K, V)
        Frequency in Hz of each of V simultaneous voices per note.
    amps : np.ndarray, shape (K,)
        Note amplitude.
    table : np.ndarray, float32, shape (TABLE_SIZE,)
        One period of the line's tone (:func:`wavetable`).
    attack, decay : float
        s; linear attack time and exponential decay time constant of every note.
    vibrato : float
        Semitones of vibrato depth (0 for none).
    n : int
        Output length in samples.
    sr : int
        Sample rate in Hz.
    clock : np.ndarray, float32, shape (n,)
        ``arange(n) / sr``, shared by all lines of a track.
    rng : np.random.Generator
        Draws the vibrato rate and each voice's start phase.

    Returns
    -------
    np.ndarray, float32, shape (n,)
    """
    out = np.zeros(n, dtype=np.float32)
    start = np.round(onsets * sr).astype(np.int64)
    keep = start < n
    start, ends, freqs, amps = start[keep], ends[keep], freqs[keep], amps[keep]
    if start.size == 0:
        return out
    if start[0] > 0:  # silence before the first note: a zero-amplitude note at 0
        start = np.concatenate([[0], start])
        ends = np.concatenate([[0.0], ends])
        freqs = np.concatenate([freqs[:1], freqs])
        amps = np.concatenate([[0.0], amps])
    # Sample i belongs to the last note started at or before it; np.repeat of per-note values over the notes'
    # sample counts is ten times faster than gathering them with a per-sample note index.
    counts = np.diff(np.clip(np.append(start, n), 0, n))

    def per_sample(values: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=np.float32), counts)

    t = clock - per_sample(start / sr)  # seconds since the note's onset
    # A note ends at its own end or when the next one starts, whichever comes first, after a short release.
    next_start = np.append(start[1:] / sr, np.inf)
    length = np.minimum(ends * 1.0, next_start) - start / sr
    env = np.minimum(t * np.float32(1.0 / attack), np.float32(1.0))
    env *= np.exp(t * np.float32(-1.0 / decay))
    env *= np.clip((per_sample(length) - t) * np.float32(1.0 / RELEASE_S), 0.0, 1.0)
    env *= per_sample(amps)
    # Phase f * t restarts with each note; that is inaudible because every note starts from zero amplitude.
    # Vibrato is phase modulation: a shared warp of t, scaled per voice by its frequency.
    warp = t
    if vibrato > 0:
        rate = float(rng.uniform(4.5, 6.5))
        depth = np.log(2.0) * vibrato / 12.0 / (2 * np.pi * rate)
        warp = t + np.float32(depth) * np.sin(clock * np.float32(2 * np.pi * rate))
    mask = TABLE_SIZE - 1
    for v in range(freqs.shape[1]):
        cycles = per_sample(freqs[:, v] * TABLE_SIZE) * warp
        cycles += np.float32(rng.uniform(0, TABLE_SIZE))
        out += np.take(table, cycles.astype(np.int32) & mask)
    out *= env
    return out



def drum_shots(*, kick_decay: float, hat_decay: float, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot samples of one drum kit: ``{"kick", "snare", "hat"}`` -> float32 array of shape (samples,).

    Parameters
    ----------
    kick_decay : float
        s; decay time constant of the kick (long values give an 808-style boom).
    hat_decay : float
        s; decay of the hat (short = closed hat, long = open hat / ride).
    sr : int
        Sample rate in Hz.
    rng : np.random.Generator
        Draws the kit's pitches, decays and noise.
    """

    def clock(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    t = clock(min(5 * kick_decay, 1.5))
    f_end = rng.uniform(42, 60)
    f_start = rng.uniform(110, 180)
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    kick = np.sin(phase) * np.exp(-t / (kick_decay * rng.uniform(0.8, 1.2)))
    kick[: int(0.002 * sr)] += rng.uniform(-0.3, 0.3, size=int(0.002 * sr))  # beater click

    t = clock(0.35)
    noise = np.diff(rng.uniform(-1, 1, size=t.size + 1))  # first difference tilts white noise bright
    tone = np.sin(2 * np.pi * rng.uniform(160, 230) * t)
    snare = (noise * np.exp(-t / rng.uniform(0.06, 0.14)) + 0.6 * tone * np.exp(-t / 0.04))

    hat_s = hat_decay * rng.uniform(0.8, 1.25)
    t = clock(min(5 * hat_s, 1.2))
    hat = np.diff(rng.uniform(-1, 1, size=t.size + 2), n=2) * np.exp(-t / hat_s) * 0.5
    return {
        "kick": kick.astype(np.float32),
        "snare": (snare / np.abs(snare).max()).astype(np.float32),
        "hat": hat.astype(np.float32),
    }
