"""Config: defaults, shipped YAML, --set overrides, and errors that name key, value and origin."""

from __future__ import annotations

import dataclasses
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from spectrotune.config import Config, build, load_config, parse_override, save_config
from spectrotune.errors import ConfigError


@pytest.mark.parametrize("name", ["gtzan", "spotify", "demo", "sweep"])
def test_shipped_configs_load(name):
    config = load_config(name)
    assert isinstance(config, Config)


def test_every_shipped_yaml_is_listed():
    import importlib.resources

    from spectrotune.config import SHIPPED_CONFIGS

    shipped = {p.name for p in importlib.resources.files("spectrotune.configs").iterdir() if p.name.endswith(".yaml")}
    assert shipped == {f"{name}.yaml" for name in SHIPPED_CONFIGS}


def test_gtzan_config_uses_fault_filtered_split():
    assert load_config("gtzan").split.kind == "fault_filtered"


def test_overrides_reach_nested_keys_and_parse_yaml_values():
    config = load_config("demo", overrides=["audio.hop_seconds.train=1.5", "noise.enabled=false",
                                            "noise.variants=[{kind: brown, snr_db: 0}]"])
    assert config.audio.hop_for("train") == 1.5
    assert config.audio.hop_for("test") == config.audio.segment_seconds
    assert config.noise.enabled is False
    assert config.noise.variants[0].kind == "brown" and config.noise.variants[0].snr_db == 0.0


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("noise.bogus=1", "noise.bogus"),
        ("bogus=1", "bogus"),
        ("audio.sample_rate=abc", "audio.sample_rate='abc'"),
        ("split.kind=nope", "split.kind='nope'"),
        ("noise.variants=[{kind: purple}]", "noise.variants[0].kind='purple'"),
        ("features.handcrafted=maybe", "features.handcrafted='maybe'"),
        ("audio.segment_seconds=0", "audio.segment_seconds"),
        ("split.fractions.train=0.9", "split.fractions"),
    ],
)
def test_bad_override_names_key_value_and_origin(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config("demo", overrides=[override])
    message = str(info.value)
    assert needle in message
    assert "--set" in message


def test_bad_yaml_key_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("audio:\n  sample_rte: 16000\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml.*audio\.sample_rte"):
        load_config(str(path))


def test_missing_config_file_and_unknown_name():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/x.yaml")
    with pytest.raises(ConfigError, match="unknown config 'nope'"):
        load_config("nope")


def test_set_values_are_never_evaluated():
    key, value = parse_override("seed=__import__('os').getcwd()")
    assert key == "seed"
    assert value == "__import__('os').getcwd()"  # a plain string, never run
    with pytest.raises(ConfigError, match="seed="):
        load_config(None, overrides=["seed=__import__('os').getcwd()"])


def test_saved_config_round_trips_with_same_hash(tmp_path):
    config = load_config("gtzan", overrides=["seed=7"])
    save_config(config, tmp_path)
    again = build(Config, yaml.safe_load((tmp_path / "config.yaml").read_text()), origin="saved")
    assert again == config
    assert again.hash() == config.hash()
    assert load_config("gtzan").hash() != config.hash()


def test_model_params_table_matches_the_models():
    from spectrotune.config import MODEL_PARAMS
    from spectrotune.models.params import PARAM_CLASSES

    assert {name: {f.name for f in dataclasses.fields(cls)} for name, cls in PARAM_CLASSES.items()} == {
        name: set(keys) for name, keys in MODEL_PARAMS.items()}


def test_model_section_takes_every_model_parameter_and_name():
    from spectrotune.config import MODEL_PARAMS, ModelConfig
    from spectrotune.models.params import DEFAULT_MODEL, MODEL_NAMES

    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    assert set(fields) - {"name"} == {key for keys in MODEL_PARAMS.values() for key in keys}
    assert fields["name"].default == DEFAULT_MODEL and fields["name"].metadata["choices"] == MODEL_NAMES


def test_importing_the_config_loads_neither_torch_nor_numpy():
    code = "import sys, spectrotune.config; print(sorted({'torch', 'numpy', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_switching_model_names_every_parameter_it_does_not_take_and_how_to_unset_them():
    with pytest.raises(ConfigError) as info:
        load_config("demo", overrides=["model.name=seed_cnn"])  # demo.yaml sets width and depth for cnn
    message = str(info.value)
    assert "demo.yaml" in message and "model.width=16" in message and "model.depth=4" in message
    assert "--set model.width=null --set model.depth=null" in message
    config = load_config("demo", overrides=["model.name=seed_cnn", "model.width=null", "model.depth=null"])
    assert config.model.name == "seed_cnn" and config.model.params() == {}
    assert load_config("demo", overrides=["model.name=crnn", "model.hidden=32"]).model.params() == {
        "width": 16, "depth": 4, "hidden": 32}


def test_configs_saved_before_the_fault_hook_was_retired_still_load(tmp_path):
    """Resolved configs written by 325b798 (next to its dataset and bundle) hold train.fault_kill_epoch: null."""
    stored = Path(__file__).parent / "data" / "main-325b798"
    for saved in (stored / "dataset" / "config.yaml", stored / "bundle" / "config.yaml"):
        assert "fault_kill_epoch: null" in saved.read_text()
        config = load_config(saved)
        assert not hasattr(config.train, "fault_kill_epoch")
    with pytest.raises(ConfigError, match=r"train.fault_kill_epoch was removed: it was a test hook; the fault tests now kill"):
        load_config("demo", overrides=["train.fault_kill_epoch=2"])


def test_the_musicnn_front_end_has_no_db_clamp():
    from spectrotune.errors import ConfigError

    features = load_config("musicnn").features
    assert (features.frontend, features.top_db, features.n_mels) == ("musicnn", None, 96)
    assert load_config("gtzan-musicnn").features == features
    assert load_config("demo").features.frontend == "logmel"
    with pytest.raises(ConfigError, match="features.top_db=80.0: the musicnn front end has no dB clamp"):
        load_config("musicnn", overrides=["features.top_db=80"])
    with pytest.raises(ConfigError, match="features.frontend='mfcc' is not valid: expected one of logmel, musicnn"):
        load_config("demo", overrides=["features.frontend=mfcc"])
