"""spectrotune: music-genre classification from folders of audio to a trained classifier, on Ray.

See README.md for the commands. The Python API, for notebooks and scripts (:mod:`spectrotune.api`)::

    import spectrotune as st
    m = st.load_bundle("runs/demo/bundle")      # a Model
    p = m.predict_file("song.wav")              # or m.predict(y, sr): a Prediction (genre, probabilities, windows)
    config = st.load_config("demo", overrides=["train.epochs=5"])
    st.prepare("corpus", "data/demo", config=config)             # spectrotune prepare
    st.train("data/demo", "runs/demo", config=config)            # spectrotune train
    st.evaluate("runs/demo/bundle", "data/demo")                 # spectrotune evaluate
    st.predict("runs/demo/bundle", ["song.wav", "folder/"])      # spectrotune predict

These names load on first use: importing the package imports neither torch nor ``ray``; only
:mod:`spectrotune.prepare.driver`, :mod:`spectrotune.training.driver` and :mod:`spectrotune.tuning` touch Ray.
"""

__version__ = "0.1.0"

# name -> (module, attribute) for the lazily loaded API. prepare and predict are rooms (subpackages) that are
# callable as their stage's function (spectrotune.api.callable_room), so they are the rooms themselves.
_LAZY = {
    "load_bundle": ("spectrotune.api", "load_bundle"),
    "Model": ("spectrotune.api", "Model"),
    "Prediction": ("spectrotune.api", "Prediction"),
    "Window": ("spectrotune.api", "Window"),
    "load_config": ("spectrotune.config", "load_config"),
    "prepare": ("spectrotune.prepare", None),
    "train": ("spectrotune.training.driver", "train"),
    "evaluate": ("spectrotune.evaluation.evaluate", "evaluate"),
    "predict": ("spectrotune.predict", None),
    "tune": ("spectrotune.tuning.sweep", "tune"),
}


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: the API names, imported when first asked for
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'spectrotune' has no attribute {name!r}") from None
    import importlib

    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
        globals()[name] = value  # a room stays a submodule attribute, set by the import system itself
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
