"""Tests for spectrotune.audio.noise: variant names, stable seeds, noise colours, exact SNR, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from spectrotune.errors import ConfigError
from spectrotune.audio.noise import (
    CLEAN,
    NOISE_KINDS,
    add_noise_batch,
    background_excerpt,
    colored_noise,
    derive_seed,
    draw_noise,
    measured_snr_db,
    mix_at_snr,
    parse_variant,
    rng_for,
    variant_name,
)

WIN = 22050  # 1-s segments keep the tests fast; nothing depends on the length


def music_like(n_seg: int = 3, win: int = WIN, *, seed: int = 0) -> np.ndarray:
    """Segments with different loudness and content, float32 [n_seg, win]."""
    rng = np.random.default_rng(seed)
    t = np.arange(win) / 22050
    rows = [
        (0.05 + 0.3 * i) * np.sin(2 * np.pi * (220 * (i + 1)) * t) + 0.01 * rng.standard_normal(win)
        for i in range(n_seg)
    ]
    return np.stack(rows).astype(np.float32)


def background(n: int = 30000) -> np.ndarray:
    rng = np.random.default_rng(42)
    return (0.2 * np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")).astype(np.float32)


def batch(kind: str, snr_db: float, segments: np.ndarray, indices=None, *, seed: int = 7, track: str = "blues.00000"):
    return add_noise_batch(
        segments,
        kind=kind,
        snr_db=snr_db,
        seed=seed,
        track_id=track,
        segment_indices=list(range(len(segments))) if indices is None else indices,
        background=background() if kind == "file" else None,
    )


@pytest.mark.parametrize(
    ("kind", "snr", "name"),
    [("white", 10, "white@10dB"), ("pink", -5.0, "pink@-5dB"), ("file", 20.0, "file@20dB"),
     ("brown", 2.5, "brown@2.5dB"), ("white", -0.0, "white@0dB"), ("pink", 0.1, "pink@0.1dB")],
)
def test_variant_name_and_parse_round_trip(kind, snr, name):
    assert variant_name(kind, snr) == name
    assert parse_variant(name) == (kind, float(snr))
    assert variant_name(*parse_variant(name)) == name


@pytest.mark.parametrize(
    "bad",
    ["clean", "white", "white@10", "white@10db", "@10dB", "white@dB", "white@1.2.3dB", "WHITE@10dB",
     "white@nandB", "white@10dB ", "violet@10dB", "", None],
)
def test_parse_variant_rejects_bad_names(bad):
    with pytest.raises(ConfigError):
        parse_variant(bad)


def test_clean_is_not_a_noise_kind():
    assert CLEAN == "clean" and CLEAN not in NOISE_KINDS


@pytest.mark.parametrize(
    "call",
    [
        lambda: variant_name("violet", 10),
        lambda: parse_variant("violet@10dB"),
        lambda: colored_noise("violet", 100, rng=np.random.default_rng(0)),
        lambda: draw_noise("violet", 100, rng=np.random.default_rng(0)),
        lambda: batch("violet", 10, music_like()),
    ],
)
def test_unknown_kind_raises_config_error_naming_it(call):
    with pytest.raises(ConfigError, match="violet"):
        call()


@pytest.mark.parametrize("snr", [float("nan"), float("inf"), 10.1234567])
def test_variant_name_refuses_snr_it_cannot_name_exactly(snr):
    with pytest.raises(ConfigError):
        variant_name("white", snr)


def test_derive_seed_is_pinned():
    # Computed once; if this changes, every prepared dataset's noise changes with it.
    assert derive_seed(0, "blues.00000", 3, "white@10dB") == 438914124053623217


@pytest.mark.parametrize(
    "other",
    [(1, "blues.00000", 3, "white@10dB"), (0, "blues.00001", 3, "white@10dB"),
     (0, "blues.00000", 4, "white@10dB"), (0, "blues.00000", 3, "white@20dB"),
     (0, "blues.0000", 3, "0white@10dB")],  # no ambiguity from joining strings
)
def test_derive_seed_differs_when_any_part_differs(other):
    base = derive_seed(0, "blues.00000", 3, "white@10dB")
    value = derive_seed(*other)
    assert value != base and 0 <= value < 2**64


def test_derive_seed_accepts_numpy_ints():
    assert derive_seed(np.int64(0), "blues.00000", np.int32(3), "white@10dB") == derive_seed(
        0, "blues.00000", 3, "white@10dB"
    )


def test_rng_for_is_pcg64_and_reproducible():
    a, b = rng_for(1, "t", 0, "pink@0dB"), rng_for(1, "t", 0, "pink@0dB")
    assert isinstance(a.bit_generator, np.random.PCG64)
    assert np.array_equal(a.random(5), b.random(5))


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("n", [2, 3, 1001, 66150])
def test_colored_noise_is_float32_zero_mean_unit_rms(kind, n):
    x = colored_noise(kind, n, rng=np.random.default_rng(n))
    assert x.dtype == np.float32 and x.shape == (n,)
    x64 = x.astype(np.float64)
    assert abs(x64.mean()) < 1e-6
    assert abs(np.sqrt(np.mean(x64**2)) - 1.0) < 1e-6


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_colored_noise_spectral_slope(kind, slope):
    x = colored_noise(kind, 2**16, rng=np.random.default_rng(3))
    f, p = welch(x.astype(np.float64), fs=1.0, nperseg=4096)
    band = (f >= 1 / 512) & (f <= 0.25)  # away from DC and from the Nyquist edge
    fitted = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
    assert abs(fitted - slope) < 0.25


def test_colored_noise_rejects_file_kind_and_tiny_n():
    with pytest.raises(ConfigError, match="file"):
        colored_noise("file", 100, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        colored_noise("white", 1, rng=np.random.default_rng(0))


def test_background_excerpt_is_a_random_contiguous_slice():
    noise = np.arange(1000, dtype=np.float32)
    starts = set()
    for s in range(20):
        e = background_excerpt(noise, 100, rng=np.random.default_rng(s))
        assert e.dtype == np.float32 and e.shape == (100,)
        np.testing.assert_array_equal(np.diff(e), 1.0)
        starts.add(e[0])
    assert len(starts) > 10


def test_background_excerpt_loops_a_short_recording():
    noise = np.arange(7, dtype=np.float32)
    e = background_excerpt(noise, 30, rng=np.random.default_rng(1))
    assert e.shape == (30,)
    np.testing.assert_array_equal(e, (e[0] + np.arange(30)) % 7)


def test_background_excerpt_does_not_alias_input():
    noise = np.ones(500, dtype=np.float32)
    e = background_excerpt(noise, 100, rng=np.random.default_rng(0))
    e[:] = 0
    assert noise.all()


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr", [-5, 0, 10, 20, 30])
def test_measured_snr_is_within_0_1_db_of_target(kind, snr):
    clean = music_like()
    noisy, snrs = batch(kind, snr, clean)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    for row in range(len(clean)):
        assert abs(snrs[row] - snr) < 0.1
        assert abs(measured_snr_db(clean[row], noisy[row]) - snr) < 0.1


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_same_key_gives_bit_identical_output(kind):
    clean = music_like()
    a, snr_a = batch(kind, 10, clean)
    b, snr_b = batch(kind, 10, clean.copy())
    assert a.tobytes() == b.tobytes() and snr_a == snr_b


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_segment_noise_does_not_depend_on_batch_composition(kind):
    clean = music_like(4)
    full, _ = batch(kind, 5, clean, [0, 1, 2, 3])
    alone, _ = batch(kind, 5, clean[2:3], [2])
    reversed_order, _ = batch(kind, 5, clean[::-1], [3, 2, 1, 0])
    assert alone[0].tobytes() == full[2].tobytes()
    assert reversed_order[::-1].tobytes() == full.tobytes()


@pytest.mark.parametrize(
    "change",
    [dict(indices=[3, 4, 5]), dict(seed=8), dict(track="blues.00001"), dict(snr=11)],
)
@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_different_segment_variant_seed_or_track_give_different_noise(kind, change):
    clean = np.tile(music_like(1), (3, 1))  # identical rows: only the key can make noise differ
    base, _ = batch(kind, 10, clean)
    other, _ = batch(
        kind, change.get("snr", 10), clean, change.get("indices"),
        seed=change.get("seed", 7), track=change.get("track", "blues.00000"),
    )
    noise_base = base - clean
    noise_other = other - clean
    if "snr" in change:  # different variant: compare the noise shapes, not their levels
        noise_base /= np.linalg.norm(noise_base, axis=1, keepdims=True)
        noise_other /= np.linalg.norm(noise_other, axis=1, keepdims=True)
    for row in range(3):
        assert not np.allclose(noise_base[row], noise_other[row], atol=1e-3)
    # within one batch, different segment indices get different noise too
    assert not np.allclose(noise_base[0], noise_base[1], atol=1e-3)


def test_different_kind_at_same_snr_gives_different_noise():
    clean = music_like(1)
    outs = [batch(kind, 10, clean)[0] for kind in NOISE_KINDS]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not np.allclose(outs[i], outs[j], atol=1e-3)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("silence", [0.0, 1e-8])
def test_silent_segment_is_unchanged_with_none_snr(kind, silence):
    clean = music_like(3)
    clean[1] = silence
    noisy, snrs = batch(kind, 0, clean)
    assert np.isfinite(noisy).all()
    assert snrs[1] is None and all(s is not None and np.isfinite(s) for s in (snrs[0], snrs[2]))
    np.testing.assert_array_equal(noisy[1], clean[1])


def test_mix_at_snr_exact_gain_and_no_input_mutation():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(5000) * 0.1
    noise = rng.standard_normal(5000)  # float64 on purpose: must not be scaled in place
    noise_before = noise.copy()
    noisy, snr = mix_at_snr(clean, noise, snr_db=6.0)
    assert noisy.dtype == np.float32 and abs(snr - 6.0) < 1e-3
    np.testing.assert_array_equal(noise, noise_before)
    added = noisy.astype(np.float64) - clean
    np.testing.assert_allclose(10 * np.log10(np.mean(clean**2) / np.mean(added**2)), 6.0, atol=1e-3)


def test_mix_at_snr_zero_noise_with_signal_raises():
    with pytest.raises(ValueError, match="zero"):
        mix_at_snr(np.ones(100, dtype=np.float32), np.zeros(100, dtype=np.float32), snr_db=10)


def test_mix_at_snr_silent_clean_with_zero_noise_is_fine():
    noisy, snr = mix_at_snr(np.zeros(100, dtype=np.float32), np.zeros(100, dtype=np.float32), snr_db=10)
    assert snr is None and not noisy.any()


@pytest.mark.parametrize(
    ("clean", "noise"),
    [(np.ones(10), np.ones(11)), (np.ones((2, 5)), np.ones((2, 5))), (np.array([1.0, np.nan]), np.ones(2))],
)
def test_mix_at_snr_rejects_bad_inputs(clean, noise):
    with pytest.raises(ValueError):
        mix_at_snr(clean, noise, snr_db=0)


def test_measured_snr_db():
    clean = np.ones(100)
    assert measured_snr_db(clean, clean + 0.1) == pytest.approx(20.0)
    assert measured_snr_db(clean, clean) == float("inf")
    with pytest.raises(ValueError, match="silent"):
        measured_snr_db(np.zeros(100), np.ones(100))


def test_file_kind_needs_background_and_synthetic_kinds_refuse_one():
    clean = music_like(1)
    with pytest.raises(ConfigError, match="background"):
        add_noise_batch(clean, kind="file", snr_db=0, seed=0, track_id="t", segment_indices=[0])
    with pytest.raises(ValueError, match="white"):
        add_noise_batch(
            clean, kind="white", snr_db=0, seed=0, track_id="t", segment_indices=[0], background=background()
        )


def test_add_noise_batch_checks_indices_length():
    with pytest.raises(ValueError, match="segment_indices"):
        add_noise_batch(music_like(3), kind="white", snr_db=0, seed=0, track_id="t", segment_indices=[0, 1])
