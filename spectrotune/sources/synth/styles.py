"""The genre style table of the synthetic corpus: what each genre sounds like, before any track is drawn.

Each genre has a :class:`GenreStyle` (tempo range, 16-step drum patterns with hit probabilities, swing, scale and
chord progression, comp/bass/lead rhythms, timbre, distortion, noise floor, mix). The ten GTZAN genres are
hand-designed; genres beyond ten (``genre10``, ``genre11``, ...) get procedural styles drawn from a generator
seeded by their index, so a genre always sounds the same. Almost half of the tracks
(:data:`BORROW_PROBABILITY`) borrow one element (rhythm, harmony, timbre, tempo or groove) from a related genre
(:func:`borrowed_style`): classes therefore overlap the way real genres do. Pure numpy; no ``ray``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from spectrotune.errors import ConfigError

__all__ = [
    "BORROW_PROBABILITY",
    "GTZAN_GENRES",
    "SPOTIFY_GENRES",
    "STEPS",
    "GenreStyle",
    "borrowed_style",
    "genre_names",
    "genre_style",
]

GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
SPOTIFY_GENRES: tuple[str, ...] = (
    "classic", "country", "edm", "flamenco", "hiphop", "indie", "jazz", "kpop", "latin", "metal", "pop", "rap",
    "reggae", "rock",
)

#: Probability that a track borrows one element from a related genre (the main source of class overlap).
BORROW_PROBABILITY = 0.45

STEPS = 16  #: 16th notes per 4/4 bar: the length of every rhythm pattern
_STYLE_SALT = 0x5EC7  # seeds the procedural styles of genres beyond the ten GTZAN ones

# Scales as semitones above the key. Harmony scales are heptatonic so chords stack in thirds.
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_DORIAN = (0, 2, 3, 5, 7, 9, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
_PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)
_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
_MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
_MINOR_PENTATONIC = (0, 3, 5, 7, 10)
_BLUES = (0, 3, 5, 6, 7, 10)
_HEPTATONIC = (_MAJOR, _MINOR, _DORIAN, _MIXOLYDIAN, _PHRYGIAN, _HARMONIC_MINOR)
_LEAD_SCALES = (_MAJOR_PENTATONIC, _MINOR_PENTATONIC, _BLUES)


def _pattern(text: str) -> tuple[float, ...]:
    """A 16-step probability pattern from text: ``x`` = 1, ``.`` = 0, digit ``d`` = d/10."""
    if len(text) != STEPS:
        raise ValueError(f"pattern {text!r} must have {STEPS} steps")
    return tuple(1.0 if c == "x" else 0.0 if c == "." else int(c) / 10 for c in text)


_SILENT = _pattern("................")


@dataclass(frozen=True)
class GenreStyle:
    """The musical recipe of one genre; each track draws its own values around it.

    Patterns are 16 hit probabilities per 4/4 bar (16th notes). Levels are relative bus gains; a drum level of
    0 means no drums.
    """

    name: str
    # tempo and rhythm
    tempo: tuple[float, float]  #: BPM range a track's tempo is drawn from
    kick: tuple[float, ...]
    snare: tuple[float, ...]
    hat: tuple[float, ...]  #: hi-hat, or ride cymbal when ``hat_decay`` is long
    swing: float  #: delay of the off-beat 8th as a fraction of a beat (0 straight, 1/6 triplet shuffle)
    kick_decay: float  #: s; long values give an 808-style boom
    hat_decay: float  #: s; short = closed hat, long = open hat / ride
    # harmony
    scale: tuple[int, ...]  #: heptatonic harmony scale, semitones above the key
    lead_scale: tuple[int, ...]  #: scale the lead melody walks on
    progression: tuple[int, ...]  #: chord roots as scale degrees (0-based), one per ``chord_steps``
    chord_steps: int  #: 16ths per chord
    chord_size: int  #: 2 = power chord (root, fifth, octave), 3 = triad, 4 = seventh chord
    register: int  #: MIDI note the chords sit just above; the lead plays an octave higher, bass two lower
    # parts
    comp: tuple[float, ...]  #: chord (comp) hit probabilities
    arpeggio: bool  #: comp plays chord tones one at a time instead of block chords
    bass: tuple[float, ...]
    bass_walk: float  #: probability a bass note leaves the chord root for another chord tone
    lead: tuple[float, ...]
    # timbre
    rolloff: float  #: harmonic k has amplitude k ** -rolloff (1 = sawtooth-bright, 3 = nearly a sine)
    hollow: float  #: 0..1 attenuation of even harmonics (clarinet-like)
    bass_rolloff: float
    attack: float  #: s, comp and lead
    decay: float  #: s, exponential decay time constant of comp and lead notes
    vibrato: float  #: semitones, depth of lead/comp vibrato
    distortion: float  #: tanh drive on the comp bus (0 clean, 20 metal)
    room: float  #: 0..1 level of early reflections
    noise: float  #: noise floor RMS relative to the mix RMS
    levels: tuple[float, float, float, float]  #: drums, bass, comp, lead


_GTZAN_STYLES: tuple[GenreStyle, ...] = (
    GenreStyle(
        name="blues", tempo=(70.0, 125.0),
        kick=_pattern("x.......x.....3."), snare=_pattern("....x.......x..."), hat=_pattern("x.7.x.7.x.7.x.7."),
        swing=0.15, kick_decay=0.16, hat_decay=0.05,
        scale=_MIXOLYDIAN, lead_scale=_BLUES, progression=(0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), chord_steps=16,
        chord_size=4, register=55,
        comp=_pattern("x.6.x.6.x.6.x.6."), arpeggio=False, bass=_pattern("x...x...x...x..."), bass_walk=0.7,
        lead=_pattern("6.3.5.3.6.3.5.3."),
        rolloff=1.4, hollow=0.2, bass_rolloff=2.2, attack=0.005, decay=0.35, vibrato=0.15, distortion=2.5,
        room=0.25, noise=0.02, levels=(0.8, 0.8, 1.0, 0.8),
    ),
    GenreStyle(
        name="classical", tempo=(60.0, 110.0),
        kick=_SILENT, snare=_SILENT, hat=_SILENT, swing=0.0, kick_decay=0.2, hat_decay=0.05,
        scale=_MAJOR, lead_scale=_MAJOR, progression=(0, 3, 4, 0, 5, 1, 4, 0), chord_steps=16, chord_size=3,
        register=57,
        comp=_pattern("x.......x......."), arpeggio=False, bass=_pattern("x.......x......."), bass_walk=0.3,
        lead=_pattern("x...x.6.x...x.5."),
        rolloff=1.7, hollow=0.0, bass_rolloff=1.7, attack=0.12, decay=2.5, vibrato=0.12, distortion=0.0,
        room=0.6, noise=0.004, levels=(0.0, 0.7, 1.0, 0.9),
    ),
    GenreStyle(
        name="country", tempo=(90.0, 140.0),
        kick=_pattern("x.......x......."), snare=_pattern("....x.......x..."), hat=_pattern("x.7.x.7.x.7.x.7."),
        swing=0.03, kick_decay=0.14, hat_decay=0.04,
        scale=_MAJOR, lead_scale=_MAJOR_PENTATONIC, progression=(0, 3, 4, 0), chord_steps=16, chord_size=3,
        register=57,
        comp=_pattern("x.5.x.5.x.5.x.5."), arpeggio=False, bass=_pattern("x...x...x...x..."), bass_walk=0.5,
        lead=_pattern("6.4.6.4.6.4.6.4."),
        rolloff=1.0, hollow=0.0, bass_rolloff=2.0, attack=0.003, decay=0.25, vibrato=0.05, distortion=0.3,
        room=0.2, noise=0.01, levels=(0.7, 0.8, 1.0, 0.8),
    ),
    GenreStyle(
        name="disco", tempo=(110.0, 132.0),
        kick=_pattern("x...x...x...x..."), snare=_pattern("....x.......x..."), hat=_pattern("4.x.4.x.4.x.4.x4"),
        swing=0.0, kick_decay=0.15, hat_decay=0.11,
        scale=_DORIAN, lead_scale=_DORIAN, progression=(0, 3), chord_steps=16, chord_size=4, register=60,
        comp=_pattern("..x...x...x...x."), arpeggio=False, bass=_pattern("x.x.x.x.x.x.x.x."), bass_walk=0.6,
        lead=_pattern("5.5.5.5.5.5.5.5."),
        rolloff=1.1, hollow=0.0, bass_rolloff=1.5, attack=0.01, decay=0.15, vibrato=0.08, distortion=0.0,
        room=0.25, noise=0.005, levels=(1.0, 0.9, 0.8, 0.7),
    ),
    GenreStyle(
        name="hiphop", tempo=(75.0, 100.0),
        kick=_pattern("x......5.xx....."), snare=_pattern("....x.......x..."), hat=_pattern("x6x6x6x6x6x6x6x6"),
        swing=0.08, kick_decay=0.5, hat_decay=0.03,
        scale=_MINOR, lead_scale=_MINOR_PENTATONIC, progression=(0, 5), chord_steps=32, chord_size=4,
        register=58,
        comp=_pattern("x..............."), arpeggio=False, bass=_pattern("x......5.xx....."), bass_walk=0.1,
        lead=_pattern("3...3...3...3..."),
        rolloff=2.2, hollow=0.5, bass_rolloff=4.0, attack=0.03, decay=1.5, vibrato=0.0, distortion=0.2,
        room=0.1, noise=0.03, levels=(1.2, 1.1, 0.6, 0.4),
    ),
    GenreStyle(
        name="jazz", tempo=(100.0, 200.0),
        kick=_pattern("3.......3......."), snare=_pattern("..2...3...2...3."), hat=_pattern("x...x.x.x...x.x."),
        swing=0.16, kick_decay=0.15, hat_decay=0.3,
        scale=_MAJOR, lead_scale=_MAJOR, progression=(1, 4, 0, 5), chord_steps=16, chord_size=4, register=57,
        comp=_pattern("4..3..4...3..4.."), arpeggio=False, bass=_pattern("x...x...x...x..."), bass_walk=0.9,
        lead=_pattern("5.4.5.4.5.4.5.4."),
        rolloff=1.3, hollow=0.3, bass_rolloff=2.5, attack=0.004, decay=0.6, vibrato=0.15, distortion=0.0,
        room=0.4, noise=0.015, levels=(0.5, 1.0, 0.8, 0.9),
    ),
    GenreStyle(
        name="metal", tempo=(140.0, 200.0),
        kick=_pattern("x8x8x8x8x8x8x8x8"), snare=_pattern("....x.......x..."), hat=_pattern("x.x.x.x.x.x.x.x."),
        swing=0.0, kick_decay=0.1, hat_decay=0.15,
        scale=_PHRYGIAN, lead_scale=_HARMONIC_MINOR, progression=(0, 1, 5, 6), chord_steps=16, chord_size=2,
        register=47,
        comp=_pattern("x7x7x7x7x7x7x7x7"), arpeggio=False, bass=_pattern("x.x.x.x.x.x.x.x."), bass_walk=0.05,
        lead=_pattern("3.3.3.3.3.3.3.3."),
        rolloff=1.2, hollow=0.0, bass_rolloff=1.5, attack=0.002, decay=0.12, vibrato=0.0, distortion=20.0,
        room=0.1, noise=0.02, levels=(1.0, 0.7, 1.2, 0.5),
    ),
    GenreStyle(
        name="pop", tempo=(95.0, 130.0),
        kick=_pattern("x.......x.5....."), snare=_pattern("....x.......x..."), hat=_pattern("8.6.8.6.8.6.8.6."),
        swing=0.02, kick_decay=0.2, hat_decay=0.04,
        scale=_MAJOR, lead_scale=_MAJOR_PENTATONIC, progression=(0, 4, 5, 3), chord_steps=16, chord_size=3,
        register=60,
        comp=_pattern("x...x...x...x..."), arpeggio=False, bass=_pattern("x.....x.x.....x."), bass_walk=0.2,
        lead=_pattern("x.6.6.6.x.6.6.6."),
        rolloff=1.5, hollow=0.1, bass_rolloff=2.5, attack=0.01, decay=0.8, vibrato=0.2, distortion=0.0,
        room=0.3, noise=0.005, levels=(0.9, 0.8, 0.8, 1.0),
    ),
    GenreStyle(
        name="reggae", tempo=(65.0, 95.0),
        kick=_pattern("........x......."), snare=_pattern("........x......."), hat=_pattern("7.5.7.5.7.5.7.5."),
        swing=0.06, kick_decay=0.2, hat_decay=0.04,
        scale=_MAJOR, lead_scale=_MAJOR_PENTATONIC, progression=(0, 3), chord_steps=16, chord_size=3,
        register=62,
        comp=_pattern("..x...x...x...x."), arpeggio=False, bass=_pattern("x..5..x...x.x..."), bass_walk=0.6,
        lead=_pattern("3...3...3...3..."),
        rolloff=1.0, hollow=0.0, bass_rolloff=3.0, attack=0.002, decay=0.07, vibrato=0.0, distortion=0.0,
        room=0.35, noise=0.01, levels=(0.8, 1.3, 0.8, 0.5),
    ),
    GenreStyle(
        name="rock", tempo=(100.0, 150.0),
        kick=_pattern("x.....x.x......."), snare=_pattern("....x.......x..."), hat=_pattern("x.x.x.x.x.x.x.x."),
        swing=0.0, kick_decay=0.14, hat_decay=0.06,
        scale=_MIXOLYDIAN, lead_scale=_MINOR_PENTATONIC, progression=(0, 6, 3, 0), chord_steps=16, chord_size=3,
        register=52,
        comp=_pattern("x.x.x.x.x.x.x.x."), arpeggio=False, bass=_pattern("x.x.x.x.x.x.x.x."), bass_walk=0.1,
        lead=_pattern("5.4.5.4.5.4.5.4."),
        rolloff=1.2, hollow=0.0, bass_rolloff=2.0, attack=0.004, decay=0.3, vibrato=0.05, distortion=5.0,
        room=0.15, noise=0.015, levels=(1.0, 0.8, 1.0, 0.7),
    ),
)

# Musically related genres a track may borrow an element from (indices into GTZAN_GENRES).
_RELATED: dict[int, tuple[int, ...]] = {
    0: (5, 9, 2),  # blues: jazz, rock, country
    1: (5,),  # classical: jazz
    2: (0, 9, 7),  # country: blues, rock, pop
    3: (7, 4),  # disco: pop, hiphop
    4: (7, 8, 3),  # hiphop: pop, reggae, disco
    5: (0, 1),  # jazz: blues, classical
    6: (9,),  # metal: rock
    7: (3, 9, 4),  # pop: disco, rock, hiphop
    8: (4, 7),  # reggae: hiphop, pop
    9: (6, 0, 2),  # rock: metal, blues, country
}

# Fields each borrowable element consists of.
_ELEMENTS: dict[str, tuple[str, ...]] = {
    "rhythm": ("kick", "snare", "hat", "swing", "kick_decay", "hat_decay"),
    "harmony": ("scale", "lead_scale", "progression", "chord_steps", "chord_size"),
    "timbre": ("rolloff", "hollow", "attack", "decay", "vibrato", "distortion"),
    "tempo": ("tempo",),
    "groove": ("comp", "arpeggio", "bass", "bass_walk", "lead"),
}


def genre_names(n: int) -> tuple[str, ...]:
    """Names of the first ``n`` synthetic genres.

    Parameters
    ----------
    n : int >= 1
        Number of genres.

    Returns
    -------
    tuple of str, length n
        The GTZAN genres in order, continued with ``genre10``, ``genre11``, ... beyond ten.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"number of genres must be an integer >= 1, got {n!r}")
    return tuple(GTZAN_GENRES[i] if i < len(GTZAN_GENRES) else f"genre{i}" for i in range(int(n)))


def genre_style(index: int) -> GenreStyle:
    """The style of genre ``index``: hand-designed for the ten GTZAN genres, procedural beyond.

    Parameters
    ----------
    index : int >= 0
        Genre index (position in :func:`genre_names`).

    Returns
    -------
    GenreStyle
        Deterministic for an index; styles beyond ten are drawn from a generator seeded by the index.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ConfigError(f"genre index must be an integer >= 0, got {index!r}")
    if index < len(_GTZAN_STYLES):
        return _GTZAN_STYLES[index]
    return _procedural_style(int(index))


def _procedural_style(index: int) -> GenreStyle:
    rng = np.random.default_rng([_STYLE_SALT, index])

    def pattern(anchors: tuple[int, ...], fill: float, grid: int) -> tuple[float, ...]:
        # Anchored steps always hit; other steps on the grid hit with a drawn probability.
        p = np.zeros(STEPS)
        on_grid = np.arange(STEPS) % grid == 0
        p[on_grid] = rng.choice([0.0, 0.0, 0.3, 0.6, 0.9], size=on_grid.sum()) * fill
        p[list(anchors)] = 1.0
        return tuple(float(round(v, 2)) for v in p)

    lo = float(rng.uniform(60, 150))
    has_drums = rng.random() < 0.9
    scale = _HEPTATONIC[rng.integers(len(_HEPTATONIC))]
    n_chords = int(rng.integers(2, 5))
    progression = (0, *(int(d) for d in rng.choice([1, 2, 3, 4, 5, 6], size=n_chords - 1)))
    return GenreStyle(
        name=f"genre{index}",
        tempo=(lo, lo + float(rng.uniform(20, 50))),
        kick=pattern((0,), 0.6, int(rng.choice([2, 4]))) if has_drums else _SILENT,
        snare=pattern((4, 12) if rng.random() < 0.6 else (8,), 0.3, 2) if has_drums else _SILENT,
        hat=pattern((), 1.0, int(rng.choice([1, 2, 4]))) if has_drums else _SILENT,
        swing=float(rng.choice([0.0, 0.0, 0.05, 0.1, 0.16])),
        kick_decay=float(rng.uniform(0.1, 0.5)),
        hat_decay=float(rng.uniform(0.03, 0.3)),
        scale=scale,
        lead_scale=scale if rng.random() < 0.5 else _LEAD_SCALES[rng.integers(len(_LEAD_SCALES))],
        progression=progression,
        chord_steps=int(rng.choice([8, 16, 32])),
        chord_size=int(rng.choice([2, 3, 4])),
        register=int(rng.integers(48, 63)),
        comp=pattern((int(rng.choice([0, 2, 4])),), 0.8, int(rng.choice([2, 4, 8]))),
        arpeggio=bool(rng.random() < 0.3),
        bass=pattern((0,), 0.7, int(rng.choice([2, 4, 8]))),
        bass_walk=float(rng.uniform(0, 0.9)),
        lead=pattern((), 0.8, int(rng.choice([2, 4]))),
        rolloff=float(rng.uniform(0.9, 2.4)),
        hollow=float(rng.uniform(0, 0.8)),
        bass_rolloff=float(rng.uniform(1.5, 4.0)),
        attack=float(np.exp(rng.uniform(np.log(0.002), np.log(0.1)))),
        decay=float(np.exp(rng.uniform(np.log(0.08), np.log(2.0)))),
        vibrato=float(rng.choice([0.0, 0.05, 0.15])),
        distortion=float(rng.choice([0.0, 0.0, 1.0, 3.0, 10.0])),
        room=float(rng.uniform(0.05, 0.5)),
        noise=float(np.exp(rng.uniform(np.log(0.004), np.log(0.03)))),
        levels=(float(rng.uniform(0.5, 1.2)) if has_drums else 0.0, float(rng.uniform(0.6, 1.2)),
                float(rng.uniform(0.6, 1.2)), float(rng.uniform(0.3, 1.0))),
    )


def borrowed_style(genre_index: int, rng: np.random.Generator, *, borrow: float = BORROW_PROBABILITY) -> GenreStyle:
    """The style one track of genre ``genre_index`` is played in: its genre's, maybe with borrowed elements.

    One element (rhythm, harmony, timbre, tempo or groove) is taken from a related genre with probability
    ``min(borrow, 1)``, a second one with probability ``borrow - 1``. The second draw happens only when
    ``borrow > 1``, so tracks made with ``borrow <= 1`` never change.

    Parameters
    ----------
    genre_index : int >= 0
        The track's genre (position in :func:`genre_names`).
    rng : np.random.Generator
        The track's generator; this consumes its first draws.
    borrow : float in [0, 2]
        Expected number of borrowed elements (checked by the caller).

    Returns
    -------
    GenreStyle
    """
    style = _borrow(genre_style(genre_index), _lender(genre_index, rng, borrow=min(borrow, 1.0)), rng)
    if borrow > 1.0:
        style = _borrow(style, _lender(genre_index, rng, borrow=borrow - 1.0), rng)
    return style


def _lender(genre_index: int, rng: np.random.Generator, *, borrow: float = BORROW_PROBABILITY) -> GenreStyle | None:
    """A related genre's style to borrow from, or None (most tracks).

    The lender need not be part of the corpus: a track depends only on its genre and its generator, so adding
    genres to a corpus never changes the tracks already in it.
    """
    if rng.random() >= borrow:
        return None
    related = _RELATED.get(genre_index) or tuple(j for j in (genre_index - 1, genre_index + 1) if j >= 0)
    return genre_style(related[int(rng.integers(len(related)))])


def _borrow(style: GenreStyle, lender: GenreStyle | None, rng: np.random.Generator) -> GenreStyle:
    """``style`` with the fields of one randomly chosen element replaced by the lender's (unchanged if None)."""
    if lender is None:
        return style
    elements = list(_ELEMENTS)
    if lender.levels[0] == 0.0 or style.levels[0] == 0.0:
        elements.remove("rhythm")  # borrowing silence (or drums into a drumless genre) would change too much
    element = elements[int(rng.integers(len(elements)))]
    return dataclasses.replace(style, **{f: getattr(lender, f) for f in _ELEMENTS[element]})

