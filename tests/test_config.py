"""Configuration: defaults, presets, resolve order, overrides, validation, TOML round trips."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

from gankit.config import (
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_toml_config,
    parse_override,
    preset_dict,
    presets,
    read_toml,
    resolve,
    to_dict,
    to_toml,
)
from gankit.errors import ConfigError, GankitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and presets -----------------------------------------------------------------------


def test_presets_listed() -> None:
    names = presets()
    assert "classic" in names and "seed" in names
    assert names == sorted(names)


def test_defaults() -> None:
    cfg = Config()
    assert cfg.preset == "classic"
    assert cfg.data == DataConfig(source="digits", dir="", download=True, size=0, channels=0)
    assert cfg.model.family == "mlp" and cfg.model.latent_dim == 100
    assert cfg.model.g_hidden == (128, 128) and cfg.model.d_hidden == (128, 128)
    assert cfg.loss == LossConfig(name="non_saturating", real_label=1.0)
    assert cfg.train.betas_g == (0.5, 0.999) and cfg.train.betas_d == (0.5, 0.999)
    assert isinstance(cfg.train.lr_g, float) and cfg.train.lr_g == 2e-4


def test_resolve_without_arguments_uses_the_digits_default() -> None:
    cfg = resolve()
    assert cfg.preset == "digits" and cfg.data.source == "digits"
    assert cfg == resolve("digits")
    assert cfg.model.output == "tanh" and cfg.model.d_spectral_norm is False
    assert cfg.model.conditional and (cfg.train.steps, cfg.train.batch_size) == (10000, 64)
    assert cfg.train.ema > 0


def test_seed_preset_is_the_textbook_gan() -> None:
    cfg = resolve("seed")
    assert cfg.preset == "seed"
    assert cfg.model == ModelConfig(
        family="mlp", latent_dim=100, g_hidden=(128, 128), d_hidden=(128, 128),
        activation="leaky_relu", leaky_slope=0.2, output="sigmoid", d_spectral_norm=False,
    )
    assert cfg.loss == LossConfig(name="non_saturating", real_label=1.0)
    t = cfg.train
    assert t.ema == 0.0
    assert (t.batch_size, t.d_steps) == (128, 1)
    assert (t.lr_g, t.lr_d) == (2e-4, 2e-4)
    assert (t.betas_g, t.betas_d) == ((0.5, 0.999), (0.5, 0.999))


def test_every_preset_resolves_and_is_valid() -> None:
    for name in presets():
        cfg = resolve(name)
        assert cfg.preset == name
        assert isinstance(preset_dict(name), dict)


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*classic.*seed"):
        resolve("nope")


def test_config_error_is_a_gankit_error() -> None:
    assert issubclass(ConfigError, GankitError)


# -- resolution order ---------------------------------------------------------------------------


def test_resolve_order(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", """
preset = "seed"
[train]
steps = 50
lr_g = 0.001
batch_size = 32
[model]
g_hidden = [64]
""")
    # preset < file
    cfg = resolve(file=file)
    assert cfg.preset == "seed"
    assert cfg.model.output == "sigmoid"  # from the seed preset
    assert cfg.train.steps == 50 and cfg.train.lr_g == 0.001 and cfg.train.batch_size == 32
    assert cfg.model.g_hidden == (64,) and cfg.model.d_hidden == (128, 128)
    # file < --set overrides (later overrides win over earlier ones)
    cfg = resolve(file=file, overrides=["train.steps=20", "train.batch_size=8",
                                        "train.batch_size=9"])
    assert cfg.train.steps == 20 and cfg.train.batch_size == 9 and cfg.train.lr_g == 0.001
    # overrides < values
    cfg = resolve(file=file, overrides=["train.steps=20"], values={"train": {"steps": 7}})
    assert cfg.train.steps == 7 and cfg.train.lr_g == 0.001
    # values merge into sections rather than replacing them
    assert cfg.train.batch_size == 32 and cfg.model.g_hidden == (64,)


def test_preset_argument_beats_file_preset(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", 'preset = "seed"\n[train]\nsteps = 5\n')
    cfg = resolve("classic", file=file)
    assert cfg.preset == "classic" and cfg.model.output == "tanh" and cfg.train.steps == 5


def test_file_may_override_preset_values(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", '[model]\noutput = "sigmoid"\nd_spectral_norm = false\n')
    cfg = resolve("classic", file=file)
    assert cfg.model.output == "sigmoid" and cfg.model.d_spectral_norm is False


def test_file_preset_must_be_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="preset"):
        resolve(file=write(tmp_path / "c.toml", "preset = 3\n"))


def test_file_section_must_be_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'train'"):
        resolve(file=write(tmp_path / "c.toml", "train = 5\n"))


def test_values_do_not_mutate_inputs() -> None:
    values = {"train": {"steps": 3}}
    resolve(values=values)
    assert values == {"train": {"steps": 3}}


# -- parse_override -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.steps=10", {"train": {"steps": 10}}),
        ("train.steps = 10", {"train": {"steps": 10}}),
        (" train.steps=10 ", {"train": {"steps": 10}}),
        ("train.lr_g=1e-3", {"train": {"lr_g": 0.001}}),
        ("train.lr_g=0.5", {"train": {"lr_g": 0.5}}),
        ("train.betas_g=[0.0, 0.9]", {"train": {"betas_g": [0.0, 0.9]}}),
        ("model.g_hidden=[64,32]", {"model": {"g_hidden": [64, 32]}}),
        ("model.d_spectral_norm=false", {"model": {"d_spectral_norm": False}}),
        ("data.download=true", {"data": {"download": True}}),
        ("data.source=digits", {"data": {"source": "digits"}}),
        ("data.source=./my data/x.npy", {"data": {"source": "./my data/x.npy"}}),
        ('data.source="quoted"', {"data": {"source": "quoted"}}),
        ("data.source='lit\\eral'", {"data": {"source": "lit\\eral"}}),
        ("data.source=a=b", {"data": {"source": "a=b"}}),
        ("data.source=", {"data": {"source": ""}}),
    ],
)
def test_parse_override(text: str, expected: dict) -> None:
    assert parse_override(text) == expected


def test_parse_override_value_types() -> None:
    assert type(parse_override("train.steps=10")["train"]["steps"]) is int
    assert type(parse_override("train.lr_g=1e-3")["train"]["lr_g"]) is float
    assert type(parse_override("model.d_spectral_norm=true")["model"]["d_spectral_norm"]) is bool


@pytest.mark.parametrize("text", ["train.steps", "steps=10", "a.b.c=1", ".steps=1", "train.=1",
                                  "=1", "", "train..steps=1"])
def test_parse_override_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(text)


def test_overrides_are_applied_through_resolve() -> None:
    cfg = resolve(overrides=["model.g_hidden=[64, 32]", "data.source=./x.npy",
                             "model.d_spectral_norm=false", "train.lr_d=1e-3"])
    assert cfg.model.g_hidden == (64, 32) and isinstance(cfg.model.g_hidden, tuple)
    assert cfg.data.source == "./x.npy" and cfg.model.d_spectral_norm is False
    assert cfg.train.lr_d == 0.001


def test_int_accepted_for_float() -> None:
    cfg = resolve(overrides=["train.lr_g=1", "loss.real_label=1", "train.betas_g=[0, 0]"])
    assert cfg.train.lr_g == 1.0 and type(cfg.train.lr_g) is float
    assert type(cfg.loss.real_label) is float
    assert cfg.train.betas_g == (0.0, 0.0) and all(type(b) is float for b in cfg.train.betas_g)


# -- validation: every mistake names its key ----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        # unknown section / key
        ("foo.bar=1", "foo"),
        ("train.stepz=1", "train.stepz"),
        ("model.hidden=[1]", "model.hidden"),
        # wrong types
        ("train.steps=true", "train.steps"),
        ("train.steps=1.5", "train.steps"),
        ("train.steps=ten", "train.steps"),
        ("train.lr_g=abc", "train.lr_g"),
        ('train.lr_g="0.1"', "train.lr_g"),
        ("train.lr_g=true", "train.lr_g"),
        ("train.lr_g=nan", "train.lr_g"),
        ("train.lr_g=inf", "train.lr_g"),
        ('model.g_hidden=["a", "b"]', "model.g_hidden"),
        ("model.g_hidden=[1.5]", "model.g_hidden"),
        ("model.g_hidden=[true]", "model.g_hidden"),
        ("model.d_hidden=128", "model.d_hidden"),
        ('train.betas_g=["a", "b"]', "train.betas_g"),
        ("model.d_spectral_norm=1", "model.d_spectral_norm"),
        ("data.download=yes", "data.download"),
        ("data.source=3", "data.source"),
        ("model.activation=[1]", "model.activation"),
        # out of range
        ("train.steps=-5", "train.steps"),
        ("train.steps=-1", "train.steps"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.d_steps=0", "train.d_steps"),
        ("train.log_every=0", "train.log_every"),
        ("train.sample_every=-1", "train.sample_every"),
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("train.grid_size=0", "train.grid_size"),
        ("train.lr_g=0", "train.lr_g"),
        ("train.lr_d=0.0", "train.lr_d"),
        ("train.lr_d=-1e-3", "train.lr_d"),
        ("train.lr_g=1.5", "train.lr_g"),
        ("train.betas_g=[0.5, 1.0]", "train.betas_g"),
        ("train.betas_d=[-0.1, 0.9]", "train.betas_d"),
        ("train.betas_d=[0.5]", "train.betas_d"),
        ("train.betas_d=[0.5, 0.9, 0.9]", "train.betas_d"),
        ("train.ema=1.0", "train.ema"),
        ("train.ema=-0.1", "train.ema"),
        ("train.lr_decay=1.5", "train.lr_decay"),
        ("train.lr_decay=-0.1", "train.lr_decay"),
        ("train.seed=-1", "train.seed"),
        ("train.threads=-1", "train.threads"),
        ("loss.real_label=0.3", "loss.real_label"),
        ("loss.real_label=0.5", "loss.real_label"),
        ("loss.real_label=1.1", "loss.real_label"),
        ("data.channels=2", "data.channels"),
        ("data.size=3", "data.size"),
        ("data.size=-1", "data.size"),
        ("data.source=''", "data.source"),
        ("model.latent_dim=0", "model.latent_dim"),
        ("model.g_hidden=[]", "model.g_hidden"),
        ("model.d_hidden=[128, 0]", "model.d_hidden"),
        ("model.d_head=[256, 0]", "model.d_head"),
        ("model.d_head=[256]", "model.d_head"),  # the default preset's family is mlp
        ("model.leaky_slope=1.0", "model.leaky_slope"),
        ("model.leaky_slope=-0.2", "model.leaky_slope"),
        # unknown names
        ("model.activation=swish", "model.activation"),
        ("model.output=softplus", "model.output"),
        ("loss.name=wgan", "loss.name"),
        ("model.family=vae", "model.family"),
    ],
)
def test_invalid_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        resolve(overrides=[override])


def test_invalid_values_through_values_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("train.steps")):
        resolve(values={"train": {"steps": True}})
    with pytest.raises(ConfigError, match=re.escape("train.ema")):
        resolve(file=write(tmp_path / "c.toml", "[train]\nema = 1.0\n"))
    with pytest.raises(ConfigError, match="unknown config section 'extra'"):
        resolve(file=write(tmp_path / "d.toml", "[extra]\nx = 1\n"))


def test_error_messages_are_one_line() -> None:
    for override in ("train.steps=-5", "foo.bar=1", "model.activation=swish", "train.steps=true"):
        with pytest.raises(ConfigError) as info:
            resolve(overrides=[override])
        assert "\n" not in str(info.value) and str(info.value)


def test_boundary_values_accepted() -> None:
    cfg = resolve(overrides=["train.ema=0.0", "loss.real_label=0.51", "train.lr_g=1.0",
                             "train.betas_g=[0.0, 0.0]", "data.channels=3", "data.size=4",
                             "model.leaky_slope=0.0", "train.steps=1", "model.latent_dim=1"])
    assert cfg.train.ema == 0.0 and cfg.loss.real_label == 0.51 and cfg.data.channels == 3


# -- TOML round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", presets())
def test_to_toml_round_trip_presets(name: str, tmp_path: Path) -> None:
    cfg = resolve(name)
    text = to_toml(cfg)
    assert from_dict(tomllib.loads(text)) == cfg
    path = write(tmp_path / "config.toml", text)
    assert load_toml_config(path) == cfg
    assert resolve(file=path) == cfg


def test_to_toml_round_trip_unusual_values() -> None:
    cfg = resolve("seed", values={
        "train": {"lr_g": 0.1 + 0.2, "lr_d": 1e-05, "betas_d": [0.0, 0.123456789012345],
                  "seed": 2**62 + 12345, "ema": 0.9999, "steps": 10**9},
        "model": {"g_hidden": [1, 16384, 3], "leaky_slope": 0.0},
        "data": {"dir": "", "size": 1024, "channels": 3, "download": False},
    })
    assert from_dict(tomllib.loads(to_toml(cfg))) == cfg


@pytest.mark.parametrize(
    "source",
    [
        'with "double" quotes',
        "with 'single' quotes",
        "C:\\Users\\me\\data.npy",
        "trailing backslash\\",
        "ünïcödé ✓ 日本語 😀",
        "tab\there",
        "new\nline",
        "escape \x1b and bell \x07",
        "line sep \u2028 para sep \u2029",
        '"""triple"""',
        "[section] = value # not a comment",
    ],
)
def test_to_toml_round_trip_odd_strings(source: str) -> None:
    cfg = resolve(values={"data": {"source": source, "dir": source}})
    assert from_dict(tomllib.loads(to_toml(cfg))) == cfg


def test_to_toml_round_trip_delete_character() -> None:
    cfg = resolve(values={"data": {"source": "del\x7fchar"}})
    assert from_dict(tomllib.loads(to_toml(cfg))) == cfg


def test_to_dict_lists_not_tuples() -> None:
    d = to_dict(resolve())
    assert d["model"]["g_hidden"] == [128, 128] and d["train"]["betas_g"] == [0.0, 0.99]
    assert set(d) == {"preset", "data", "model", "loss", "reg", "train", "eval", "guard"}


def test_from_dict_empty_is_defaults() -> None:
    assert from_dict({}) == Config()


# -- reading files ------------------------------------------------------------------------------


def test_read_toml_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found.*missing.toml"):
        read_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="missing.toml"):
        resolve(file=tmp_path / "missing.toml")


@pytest.mark.parametrize("text", ["[train\nsteps = 1\n", "steps = \n", "a = 1\na = 2\n",
                                  "x = 'unterminated\n"])
def test_read_toml_invalid(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match="bad.toml.*not valid TOML"):
        read_toml(path)


def test_read_toml_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b"[data]\nsource = '\xff\xfe'\n")
    with pytest.raises(ConfigError, match="latin.toml"):
        read_toml(path)


def test_read_toml_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(tmp_path.name)):
        read_toml(tmp_path)


def test_read_toml_valid(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.toml", "[train]\nsteps = 3\n")
    assert read_toml(path) == {"train": {"steps": 3}}


# -- Config.replace -----------------------------------------------------------------------------


def test_replace() -> None:
    cfg = resolve("seed")
    new = cfg.replace(train={"steps": 10}, model={"g_hidden": [32]})
    assert new.train.steps == 10 and new.model.g_hidden == (32,)
    assert new.train.lr_g == cfg.train.lr_g and new.preset == "seed"
    assert new.model.output == "sigmoid"
    assert cfg.model.g_hidden == (128, 128) and cfg.train.steps != 10  # original untouched
    assert new == dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=10),
        model=dataclasses.replace(cfg.model, g_hidden=(32,)))


def test_replace_validates() -> None:
    cfg = resolve()
    with pytest.raises(ConfigError, match=re.escape("train.steps")):
        cfg.replace(train={"steps": -1})
    with pytest.raises(ConfigError, match=re.escape("train.nope")):
        cfg.replace(train={"nope": 1})


def test_configs_are_frozen_and_hashable() -> None:
    cfg = resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 5  # type: ignore[misc]
    assert hash(cfg) == hash(resolve())
    assert isinstance(cfg.train, TrainConfig)


def test_eval_section() -> None:
    cfg = resolve(overrides=["eval.every=100", "eval.main=kid"])
    assert cfg.eval.every == 100 and cfg.eval.main == "kid" and cfg.eval.num == 2500
    assert from_dict(tomllib.loads(to_toml(cfg))) == cfg
    for bad in ("eval.every=-1", "eval.num=5", "eval.main=fid"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            resolve(overrides=[bad])
