"""models room: the genre classifiers. No ``ray``.

``params`` (model names and hyperparameter dataclasses: torch-free, so the config can import it), ``networks``
(the ``torch.nn`` modules and ``build_model``), ``export`` (ONNX). This file imports nothing.
"""
