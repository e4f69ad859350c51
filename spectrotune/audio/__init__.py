"""audio room: pure numpy signal processing, from a file on disk to the arrays a dataset row holds. No ``ray``.

- ``io``: the one list of audio extensions; decode any of them to mono float32 at a target rate, cut it into
  windows (short clips loop-padded), silence check; ``ffmpeg``: the decoder of formats libsndfile cannot read;
- ``noise``: white/pink/brown/background-file noise mixed at an exact SNR, seeded per (track, segment, variant);
- ``logmel``: the fast log-mel spectrogram (equal to librosa's), the CNN's input;
- ``handcrafted``: the 57 Kaggle-style features the classical baselines use; ``_kernels``: their numba loops.

This file imports nothing, so importing one module never loads its siblings (or numba).
"""
