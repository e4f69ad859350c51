"""training room: fit a genre CNN on a prepared dataset with Ray Train and write the model bundle.

Start at :mod:`~spectrotune.training.driver` (``train``). Pure (no ``ray``): ``metrics`` (normalisation statistics,
validation scores, the epoch line), ``schedule`` (LR schedule, per-epoch seeds, early stopping), ``augment``
(SpecAugment, mixup), ``checkpoint`` (files, spec, keep-best-K), ``plan`` (row selection, run identity), ``outputs``
(bundle, history.json, train.log, curves.png), ``transfer`` (a pretrained musicnn/vgg backbone: read by the driver,
loaded by the workers, param groups, freezing). Ray, imported lazily: ``loop`` (``train_fn_per_worker`` and its
steps), ``trainer`` (the ``TorchTrainer``), ``driver``. No imports here: importing a pure module loads no Ray.
"""
