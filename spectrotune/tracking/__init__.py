"""tracking room: every train run, sweep trial and evaluation logged where ML engineers look (TensorBoard, MLflow).

Start at :mod:`~spectrotune.tracking.runs` (``start_train_tracking``, ``attach_report``: what ``train`` and
``evaluate`` call) and :mod:`~spectrotune.tracking.sweeps` (``start_sweep_tracking``: what ``tune`` and ``cv``
call). Pure (no ``ray``): ``settings`` (the ``tracking`` config section), ``records`` (parameters, metric names,
the run record files, URIs), ``mlflow_sink`` (the MLflow client, imported only when ``tracking.mlflow_uri`` is set;
one warning and no MLflow when it cannot be used), ``tensorboard`` (tensorboardX writer and an event-file reader),
``runs``, ``sweeps``. Ray: ``callbacks`` (the Ray Train and Ray Tune callbacks that log each epoch). This file
imports nothing.
"""
