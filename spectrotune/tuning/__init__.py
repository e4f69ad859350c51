"""tuning room: hyperparameter sweeps and K-fold cross-validation on Ray Tune, over every prepared source.

Start at :mod:`~spectrotune.tuning.sweep` (``tune``) and :mod:`~spectrotune.tuning.cv` (``cross_validate``), which
share one setup. Pure (no ``ray``): ``space`` (the search-space language), ``plan`` (sweep names, folders, the spec
each trial gets, trial concurrency), ``results`` (results table, best trial, plots). Ray: ``schedulers`` (Tune
domains, search algorithm, per-source ASHA), ``trial`` (one trial = one ``spectrotune train`` run; the
placement-group janitor), ``sweep``, ``cv``. This file imports nothing: importing a pure module loads no Ray.
"""
