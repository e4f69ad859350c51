"""Names that cross stage boundaries, each defined once: Parquet columns, variant and split names, metric names,
file names, and the handcrafted feature list.

Everything after ``prepare`` reads the dataset through these names, and everything after ``train`` reads the bundle
and the run folder through them, so a rename here is a format change (bump the format version in
:mod:`spectrotune.dataset` or :mod:`spectrotune.bundle`). Pure constants: no numpy, no torch, no ``ray``.
"""

from __future__ import annotations

# --- Parquet dataset: one row per segment per variant (see DESIGN.md section 3) ---------------------------------
TRACK_ID = "track_id"  #: str, e.g. ``blues.00000``
GENRE = "genre"  #: str, the genre folder name
LABEL = "label"  #: int, index into the manifest's label list
SPLIT = "split"  #: str, one of :data:`SPLITS` (also the Hive partition key)
SEGMENT = "segment"  #: int, index of the window within its track
VARIANT = "variant"  #: str, :data:`CLEAN` or a noise variant such as ``white@10dB``
SNR_DB = "snr_db"  #: float or null (null for clean rows)
MEL = "mel"  #: float32 [n_mels, n_frames] log-mel (dB) or image-derived array
FEATURES = "features"  #: float32 [len(FEATURE_NAMES)] handcrafted features for the classical baselines

SPLITS: tuple[str, ...] = ("train", "valid", "test")
CLEAN = "clean"  #: the variant name of rows without added noise

# --- input front ends: features.frontend of a config (and of the config a manifest or a bundle saves) ---------
FRONTEND_LOGMEL = "logmel"  #: dB log-mel (spectrotune.audio.logmel): the default, and what data without the key holds
#: log10(10000 x mel power + 1) at 16 kHz, the pretrained musicnn models' input (spectrotune.audio.musicnn_frontend)
FRONTEND_MUSICNN = "musicnn"
FRONTENDS: tuple[str, ...] = (FRONTEND_LOGMEL, FRONTEND_MUSICNN)

# --- files of a prepared dataset ---------------------------------------------------------------------------------
MANIFEST = "manifest.json"
SHARDS = "data"
ERRORS = "errors.parquet"
CONFIG = "config.yaml"  #: the resolved config, saved next to every output
PREPARE_STAGING = ".partial"  #: ``.<OUT name>.partial``: beside OUT, where prepare writes until it publishes
PREPARE_STATE = "prepare_state.json"  #: in the staging folder: config hash, source fingerprint and the task plan
PREPARE_STAGED = "dataset"  #: in the staging folder: the dataset being written (renamed or copied onto OUT)
PREPARE_DONE = "tasks"  #: in the staging folder: one ``<shard>.json`` per finished task, holding its report

# --- files of a model bundle and of a train run ------------------------------------------------------------------
BUNDLE_WEIGHTS = "model.safetensors"
BUNDLE_META = "bundle.json"
BUNDLE_DIR = "bundle"  #: ``OUT/bundle`` of a train run
HISTORY = "history.json"
TRAIN_LOG = "train.log"
CURVES_PNG = "curves.png"
TENSORBOARD_DIR = "tb"  #: ``OUT/tb/<run or trial>/``: TensorBoard event files of a train run or sweep
TRACKING_JSON = "tracking.json"  #: the MLflow run a train run, a trial or a bundle is logged to

# --- files of an evaluation report -------------------------------------------------------------------------------
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CONFUSION_PNG = "confusion_matrix.png"
LEARNING_CURVES_PNG = "learning_curves.png"
ROBUSTNESS_PNG = "robustness.png"

# --- files of a sweep ----------------------------------------------------------------------------------------------
RESULTS_CSV = "results.csv"
SWEEP_JSON = "sweep.json"

# --- files of the pretrained-model cache (``spectrotune fetch musicnn``; see spectrotune.models.pretrained) -------
CACHE_ENV = "SPECTROTUNE_CACHE"  #: environment variable that moves the cache root (default ``~/.cache/spectrotune``)
MUSICNN_CACHE = "musicnn"  #: the musicnn folder under the cache root: ``<MODEL>.safetensors`` + ``<MODEL>.json``
MUSICNN_MARKER = "fetched.json"  #: written last by a finished fetch: the wheel's digest and every file's sha256
MUSICNN_LICENSE = "LICENSE.md"  #: the musicnn wheel's licence text (ISC), copied beside the weights

# --- metrics --------------------------------------------------------------------------------------------------------
#: The number a run and a sweep maximise: validation accuracy with segment probabilities averaged per track.
SCORE = "valid_clip_accuracy"
#: Keys of one epoch of a training history (``history.json``, the bundle's metrics, Ray Train reports).
METRIC_KEYS: tuple[str, ...] = (
    "epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", SCORE, "lr",
    "epoch_seconds", "train_seconds", "samples_per_second", "data_wait_seconds", "attempt",
)  # fmt: skip

# --- handcrafted features ---------------------------------------------------------------------------------------
#: The 57 handcrafted features, in the column order of Kaggle's GTZAN ``features_30_sec.csv``; the ``features``
#: vector of a prepared dataset uses this order, and the baselines read Kaggle's CSV by these names.
FEATURE_NAMES: tuple[str, ...] = (
    "chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var",
    "spectral_centroid_mean", "spectral_centroid_var", "spectral_bandwidth_mean", "spectral_bandwidth_var",
    "rolloff_mean", "rolloff_var", "zero_crossing_rate_mean", "zero_crossing_rate_var",
    "harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, 21) for stat in ("mean", "var")),
)  # fmt: skip
N_FEATURES = len(FEATURE_NAMES)
