"""evaluation room: how good and how robust a trained bundle is, and the classical baselines beside it. No ``ray``,
except ``embeddings``.

Start at :mod:`~spectrotune.evaluation.evaluate` (``evaluate``: the test split of a dataset through a bundle).
``scores`` (per-track averaging, accuracies, macro F1, confusion matrix: each computed once), ``robustness``
(noisy test tracks rebuilt from the source audio), ``report`` (report.md, the terminal headline), ``plots`` (the
one figure helper and PNG writer, used by train and tune too), ``baselines`` (scikit-learn models on the handcrafted
features), ``baseline_data`` (track tables from a dataset), ``kaggle_csv`` (Kaggle's GTZAN feature CSVs), ``embedding_data`` (musicnn embeddings of
patches and files, their track table) and ``embeddings`` (those baselines on Ray Data actors). This file imports
nothing.
"""
