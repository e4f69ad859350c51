"""``spectrotune serve``: a trained bundle behind HTTP on Ray Serve, with a web page to try it on your own music.

Endpoints (one Serve deployment answers them all)::

    GET  /            the web page: choose, drop or record audio; top genres as bars, the timeline as a plot
    GET  /healthz     {"status": "ok", ...}
    GET  /v1/model    the model, its labels, its audio front end and the metrics from training
    POST /v1/predict  audio (multipart field "file", or the raw body) -> top genres, probabilities, timeline
    POST /v1/embed    audio -> per-window embeddings, for models that have one (404 JSON for CNN bundles)

Modules, in reading order:

- :mod:`~spectrotune.serving.app`: the Serve deployment, ``@serve.batch``, back-pressure and
  :func:`~spectrotune.serving.app.serve_bundle` (the command); the only module here that imports ``ray``;
- :mod:`~spectrotune.serving.inference`: one replica's work: upload -> model input (the bundle's recipe, as
  ``spectrotune predict``), a stacked forward pass for a batch of requests, embeddings;
- :mod:`~spectrotune.serving.http`: routes, the size limit, multipart / raw uploads, JSON errors (pure);
- :mod:`~spectrotune.serving.replies`: the JSON replies (pure);
- :mod:`~spectrotune.serving.options`: :class:`~spectrotune.serving.options.ServeOptions`, every limit and default;
- :mod:`~spectrotune.serving.client`: a standard-library client and the bounded load test of ``bench/serve.py``;
- ``static/``: the page (plain HTML, CSS and JavaScript; no build step, nothing fetched from elsewhere).
"""
