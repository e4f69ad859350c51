"""sources room: where the corpus comes from, before ``prepare`` (see README "Code map").

- ``listing``: which files a corpus folder holds, their genre and track id (audio or Spotify image trees);
- ``splits``: tracks to train/valid/test (stratified, fault-filtered lists, folders) and K folds, always by track;
- ``kinds``: what differs between the audio and the image kind of source;
- ``spotify``: the Spotify image layout rules and reading images back into arrays;
  ``spotify_render``: rendering audio into such images (matplotlib);
- ``synth/``: the synthetic genre corpus (styles, instruments, render, corpus);
- ``fetch``: downloading a public dataset with resume and checksum; ``archive``: unpacking it safely.

This file imports nothing, so importing one module never loads its siblings.
"""
