"""Typed, frozen configuration: defaults live here, YAML files and ``--set`` only override them.

A config is built in three layers — the dataclass defaults below, then a YAML file (a path or the name of a
shipped config: ``gtzan``, ``spotify``, ``demo``), then ``--set key.sub=value`` overrides from the command line.
Every key is checked against the dataclasses: an unknown key or a value of the wrong type fails with a
:class:`~spectrotune.errors.ConfigError` naming the key, the value and where it came from. Values given with
``--set`` are parsed as YAML scalars/flow collections (``yaml.safe_load``), never evaluated as code.

Here: the sections with their rules, :func:`load_config`, :func:`save_config`. The generic typed build
(:func:`build`, :func:`parse_override`) is :mod:`spectrotune.typed_config`; model names and parameters are
:mod:`spectrotune.models.params`.

The resolved config is saved next to every output (``config.yaml``) together with its hash, so a run can be
repeated exactly.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from spectrotune.errors import ConfigError
from spectrotune.models.params import (  # noqa: F401  (ModelConfig, the model section, lives there)
    DEFAULT_MODEL, MODEL_NAMES, MODEL_PARAMS, ModelConfig,
)
from spectrotune.schema import CONFIG, FRONTEND_LOGMEL, FRONTEND_MUSICNN, FRONTENDS, SPLITS
from spectrotune.tracking.settings import TrackingConfig
from spectrotune.typed_config import (
    apply_overrides,
    build,
    choices,
    parse_override,  # noqa: F401  (public here too: spectrotune.config.parse_override)
    read_yaml_mapping,
    to_plain,
)

SHIPPED_CONFIGS = ("gtzan", "spotify", "demo", "sweep", "musicnn", "gtzan-musicnn")


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class SourceConfig:
    """Where the input comes from. ``auto`` detects a Spotify-layout image tree, else an audio folder."""

    kind: str = field(default="auto", metadata=choices("auto", "audio", "spotify"))


@dataclass(frozen=True)
class HopConfig:
    """Hop between segment starts per split, in seconds; ``None`` means one window (no overlap)."""

    train: float | None = None
    valid: float | None = None
    test: float | None = None


@dataclass(frozen=True)
class AudioConfig:
    """Decoding and segmentation. Clips are resampled to ``sample_rate`` and cut into fixed windows.

    ``pad``: how a clip shorter than one window (but at least ``min_seconds``) fills it: ``repeat`` loops the clip
    (the default), ``zeros`` appends silence. Datasets and bundles written before the key existed were
    zero-padded and read as :attr:`LEGACY_PAD`.
    """

    #: ``pad`` of a dataset manifest or bundle written before ``audio.pad`` existed.
    LEGACY_PAD: ClassVar[str] = "zeros"

    sample_rate: int = 22050
    segment_seconds: float = 3.0
    hop_seconds: HopConfig = HopConfig()
    min_seconds: float = 1.0
    pad: str = field(default="repeat", metadata=choices("repeat", "zeros"))

    def __post_init__(self) -> None:
        _positive("audio.sample_rate", self.sample_rate)
        _positive("audio.segment_seconds", self.segment_seconds)
        _positive("audio.min_seconds", self.min_seconds, allow_zero=True)
        for split in SPLITS:
            hop = getattr(self.hop_seconds, split)
            if hop is not None:
                _positive(f"audio.hop_seconds.{split}", hop)

    def hop_for(self, split: str) -> float:
        """Hop in seconds for ``split`` (defaults to the window length)."""
        hop = getattr(self.hop_seconds, split)
        return self.segment_seconds if hop is None else hop


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel parameters (librosa conventions) and the handcrafted feature vector for the baselines.

    ``frontend``: ``logmel`` (dB, clamped ``top_db`` below each window's peak; ``null``: no clamp) or ``musicnn``
    (``log10(10000 x mel power + 1)``, the pretrained musicnn models' input, ``configs/musicnn.yaml``; it has no
    clamp, so ``top_db`` must be null). Datasets and bundles written before the key existed are ``logmel``."""

    frontend: str = field(default=FRONTEND_LOGMEL, metadata=choices(*FRONTENDS))
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    handcrafted: bool = True

    def __post_init__(self) -> None:
        for key in ("n_fft", "hop_length", "n_mels"):
            _positive(f"features.{key}", getattr(self, key))
        if self.top_db is not None and self.frontend == FRONTEND_MUSICNN:
            raise ConfigError(f"features.top_db={self.top_db!r}: the musicnn front end has no dB clamp; set it to null")
        if self.top_db is not None:
            _positive("features.top_db", self.top_db)


@dataclass(frozen=True)
class NoiseVariant:
    """One noisy copy of each segment: ``kind`` noise mixed at ``snr_db`` dB SNR."""

    kind: str = field(default="white", metadata=choices("white", "pink", "brown", "file"))
    snr_db: float = 10.0


@dataclass(frozen=True)
class NoiseConfig:
    """Which noisy variants are made and for which splits. ``background`` is the file used by kind ``file``."""

    enabled: bool = True
    variants: tuple[NoiseVariant, ...] = (NoiseVariant("white", 20.0), NoiseVariant("pink", 10.0))
    splits: tuple[str, ...] = ("train",)
    keep_clean: bool = True
    background: str | None = None

    def __post_init__(self) -> None:
        for split in self.splits:
            if split not in SPLITS:
                raise ConfigError(f"noise.splits: unknown split {split!r} (valid: {', '.join(SPLITS)})")
        if self.enabled and any(v.kind == "file" for v in self.variants) and not self.background:
            raise ConfigError("noise.background: a variant of kind 'file' needs noise.background=PATH")
        names = [f"{v.kind}@{v.snr_db:g}dB" for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"noise.variants: duplicate variants in {names}")


@dataclass(frozen=True)
class FractionsConfig:
    """Split fractions for the stratified random split by track; they must sum to 1."""

    train: float = 0.7
    valid: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        values = (self.train, self.valid, self.test)
        if min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
            raise ConfigError(f"split.fractions: must be >= 0 and sum to 1, got {values}")


@dataclass(frozen=True)
class SplitConfig:
    """How tracks are assigned to train/valid/test (always per track, before segmentation).

    ``stratified``: seeded random fractions per genre. ``fault_filtered``: the artist-aware GTZAN lists shipped
    with the package. ``lists``: ``dir`` holds train.txt/valid.txt/test.txt with one ``<genre>/<file>`` per line.
    ``folders``: the Spotify set's own training/validation/testing folders (leaky: one song's clips on both
    sides). ``by_song``: Spotify images regrouped by song id, then split like ``stratified``.
    """

    kind: str = field(
        default="stratified",
        metadata=choices("stratified", "fault_filtered", "lists", "folders", "by_song"),
    )
    fractions: FractionsConfig = FractionsConfig()
    dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind == "lists" and not self.dir:
            raise ConfigError("split.dir: split.kind 'lists' needs split.dir=DIR holding train.txt/valid.txt/test.txt")


@dataclass(frozen=True)
class ImageConfig:
    """Shape images are resized to (rows = ``features.n_mels``); ``n_frames`` columns."""

    n_frames: int = 130

    def __post_init__(self) -> None:
        _positive("image.n_frames", self.n_frames)


@dataclass(frozen=True)
class PrepareConfig:
    """Execution of the prepare pipeline on Ray Data.

    ``files_per_task`` caps the files one task decodes and writes as one shard per split (a task also gets at most
    1/4 of its CPU's share of the corpus, so every core has work). Each Ray Data task costs ~0.1 s of scheduling
    on a small machine, so larger tasks are faster; memory per task grows with it (64 clips of 30 s with two noise
    variants: ~250 MB). See BENCHMARKS.md.
    """

    files_per_task: int = 64
    num_cpus: float = 1.0
    compression: str = field(default="snappy", metadata=choices("snappy", "zstd", "none"))
    strict: bool = False

    def __post_init__(self) -> None:
        _positive("prepare.files_per_task", self.files_per_task)
        _positive("prepare.num_cpus", self.num_cpus)


@dataclass(frozen=True)
class TrainConfig:
    """Training on Ray Train: optimisation, augmentation, scaling, checkpoints and fault tolerance."""

    #: Keys older resolved configs still hold (as null); see typed_config.build.
    RETIRED: ClassVar[dict[str, str]] = {
        "fault_kill_epoch": "it was a test hook; the fault tests now kill a training worker from outside",
    }

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = field(default="cosine", metadata=choices("cosine", "onecycle", "constant"))
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    # Transfer (a pretrained musicnn/vgg backbone; any model's `head` works): the head alone trains for freeze_epochs
    # (backbone LR 0, its batch norms keep their statistics), then the backbone too, at lr x backbone_lr_scale.
    freeze_epochs: int = 0
    backbone_lr_scale: float = 1.0
    spec_augment: bool = False
    time_masks: int = 2
    time_width: int = 20
    freq_masks: int = 2
    freq_width: int = 16
    variants: tuple[str, ...] = ()
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: str = field(default="auto", metadata=choices("auto", "true", "false"))
    amp: bool = True
    # CUDA only (training/accel.py): autocast dtype (float16 + loss scaling, or bfloat16); NHWC weights; torch.compile
    amp_dtype: str = field(default="float16", metadata=choices("float16", "bfloat16"))
    channels_last: bool = False
    compile: bool = False
    patience: int = 5
    keep_checkpoints: int = 2
    max_failures: int = 0
    shuffle_buffer: int = 2000
    prefetch_batches: int = 2
    run_name: str | None = None
    storage_path: str | None = None
    # Hold the train/valid splits in Ray's object store instead of re-reading the shards every epoch;
    # None (auto): when they need under 30 % of the object store.
    materialize: bool | None = None

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "num_workers", "keep_checkpoints"):
            _positive(f"train.{key}", getattr(self, key))
        _positive("train.lr", self.lr)
        _positive("train.cpus_per_worker", self.cpus_per_worker)
        _positive("train.backbone_lr_scale", self.backbone_lr_scale)
        for key in ("weight_decay", "warmup_epochs", "label_smoothing", "mixup_alpha", "patience", "max_failures",
                    "shuffle_buffer", "prefetch_batches", "freeze_epochs"):
            _positive(f"train.{key}", getattr(self, key), allow_zero=True)
        if self.label_smoothing >= 1:
            raise ConfigError(f"train.label_smoothing: must be < 1, got {self.label_smoothing!r}")


@dataclass(frozen=True)
class EvaluateConfig:
    """Robustness evaluation: test clips re-noised with each kind at each SNR (dB). ``baselines``: the handcrafted
    feature models and, unless ``embeddings: none``, the same models on ``embedding_model``'s embeddings (``pool``:
    max_pool + mean_pool, ``penultimate``: the 200-unit layer; :mod:`spectrotune.evaluation.embeddings`)."""

    noise_kinds: tuple[str, ...] = ("white", "pink")
    snr_db: tuple[float, ...] = (30.0, 20.0, 10.0, 0.0)
    baselines: bool = True
    embeddings: str = field(default="pool", metadata=choices("pool", "penultimate", "none"))
    embedding_model: str = field(default="MSD_musicnn", metadata=choices("MSD_musicnn", "MTT_musicnn"))

    def __post_init__(self) -> None:
        for kind in self.noise_kinds:
            if kind not in ("white", "pink", "brown"):
                raise ConfigError(f"evaluate.noise_kinds: unknown kind {kind!r} (valid: white, pink, brown)")


@dataclass(frozen=True)
class TuneConfig:
    """Hyperparameter sweeps on Ray Tune (see spectrotune.tuning.space for the ``space`` syntax)."""

    num_samples: int = 4
    max_concurrent_trials: int = 1
    search: str = field(default="random", metadata=choices("random", "grid", "optuna"))
    scheduler: str = field(default="asha", metadata=choices("asha", "none"))
    metric: str = "valid_clip_accuracy"
    grace_period: int = 1
    reduction_factor: float = 2.0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    space: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    storage_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("tune.num_samples", self.num_samples)
        _positive("tune.max_concurrent_trials", self.max_concurrent_trials, allow_zero=True)
        _positive("tune.grace_period", self.grace_period)
        _positive("tune.cpus_per_trial", self.cpus_per_trial)
        _positive("tune.gpus_per_trial", self.gpus_per_trial, allow_zero=True)
        if self.reduction_factor <= 1:
            raise ConfigError(f"tune.reduction_factor: must be > 1, got {self.reduction_factor!r}")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration."""

    seed: int = 0
    source: SourceConfig = SourceConfig()
    audio: AudioConfig = AudioConfig()
    features: FeatureConfig = FeatureConfig()
    noise: NoiseConfig = NoiseConfig()
    split: SplitConfig = SplitConfig()
    image: ImageConfig = ImageConfig()
    prepare: PrepareConfig = PrepareConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tune: TuneConfig = TuneConfig()
    tracking: TrackingConfig = TrackingConfig()  # spectrotune.tracking.settings
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), the form saved to YAML/JSON."""
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """Stable 12-hex-digit hash of the resolved config (``tracking`` left out: it does not change a run)."""
        plain = {key: value for key, value in self.to_dict().items() if key != "tracking"}
        blob = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- loading


def shipped_config_path(name: str) -> Path:
    """Path of a config shipped with the package (``gtzan``, ``spotify``, ``demo``)."""
    if name not in SHIPPED_CONFIGS:
        raise ConfigError(f"unknown config {name!r}: give a YAML path or one of {', '.join(SHIPPED_CONFIGS)}")
    return Path(str(importlib.resources.files("spectrotune.configs") / f"{name}.yaml"))


def resolve_config_path(config: str | Path) -> Path:
    """A YAML path as given, or the shipped config of that name."""
    path = Path(config)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    return shipped_config_path(str(config))


def load_config(
    config: str | Path | None = None, *, overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> Config:
    """Build a :class:`Config` from defaults, an optional YAML file and ``key.sub=value`` overrides.

    Parameters
    ----------
    config : str or Path or None
        YAML path or shipped config name; ``None`` uses the defaults only.
    overrides : sequence of str
        ``key.sub=value`` strings; values are parsed as YAML (``noise.enabled=false``,
        ``noise.variants=[{kind: white, snr_db: 5}]``).
    base : mapping, optional
        Extra overrides applied between the file and ``overrides`` (used by the CLI's own options).
    """
    data: dict[str, Any] = {}
    file_origin = "defaults"
    if config is not None:
        path = resolve_config_path(config)
        file_origin = str(path)
        data = read_yaml_mapping(path)
    origin = apply_overrides(data, default_origin=file_origin, base=base, overrides=overrides)
    return build(Config, data, origin=origin)


def save_config(config: Config, directory: str | Path) -> None:
    """Write ``config.yaml`` (resolved, with its hash in a comment) into ``directory`` (a local folder or a URI)."""
    from spectrotune import storage

    header = f"# spectrotune resolved config, hash {config.hash()}\n"
    storage.write_text(storage.join(directory, CONFIG), header + config.to_yaml())
