"""models room: the genre classifiers. No ``ray``.

``params`` (model names and hyperparameter dataclasses, the config's ``model`` section: torch-free, so the config
can import it), ``networks`` (the ``torch.nn`` modules and ``build_model``, musicnn and vgg included), ``export``
(ONNX). This file imports nothing.
"""
