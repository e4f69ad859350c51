"""Synthetic music corpus: parametric genre styles rendered to audio and written in the GTZAN layout.

No real dataset can be downloaded on our machines, so the tests, the benchmarks and ``spectrotune demo`` run on
music this package makes. Classes overlap the way real genres do: a CNN on log-mel segments or a random forest on
MFCC/chroma means learns them well above chance, but not perfectly.

- :mod:`~spectrotune.sources.synth.styles`: the genre style table (:class:`GenreStyle`, :func:`genre_names`,
  :func:`genre_style`, procedural styles beyond ten genres, borrowing from related genres);
- :mod:`~spectrotune.sources.synth.instruments`: wavetable lines and drum one-shots;
- :mod:`~spectrotune.sources.synth.render`: one track's draws and its audio (:func:`synthesize_track`);
- :mod:`~spectrotune.sources.synth.corpus`: the GTZAN-layout corpus writer (:func:`generate_corpus`).

Import from the modules (``from spectrotune.sources.synth.corpus import generate_corpus``); this file imports
nothing. Pure numpy and soundfile; no ``ray``.
"""
