"""Configuration: frozen dataclasses, presets (TOML files in the package), overrides, validation.

A config is resolved once, in this order: the dataclass defaults, the preset, a user's TOML file,
then ``section.key=value`` overrides. Every value is checked here; anything wrong raises
``ConfigError`` with one sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .metrics.goals import parse_target
from .untrusted import refuse_pickle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ACTIVATIONS = ("leaky_relu", "relu", "elu", "gelu", "silu", "tanh")
OUTPUTS = ("tanh", "sigmoid", "linear")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# train.device: auto (CUDA if there is one), cpu, cuda, or cuda:N.
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")
LOSSES = ("non_saturating", "minimax", "least_squares", "wasserstein", "hinge", "relativistic",
          "relativistic_pair")
FAMILIES = ("mlp", "dcgan", "resnet", "tabular", "text")
D_OUTPUTS = ("linear", "sigmoid")
AUGMENTS = ("translation", "cutout", "color")
# Square image sides each convolutional family can produce (the MLP takes any shape).
FAMILY_SIZES: dict[str, tuple[int, ...]] = {"dcgan": (28, 32, 64), "resnet": (32, 64, 128)}
# Losses that read D's output as the logit of a probability (so a sigmoid-bounded D suits them).
PROBABILITY_LOSSES = ("non_saturating", "minimax")
# The preset used for a data source when none is named (else "classic").
DEFAULT_PRESETS = {"digits": "digits", "ring8": "mixture", "grid25": "mixture-grid",
                   "stacked-digits": "stacked", "sines": "timeseries", "stocks": "timeseries",
                   "energy": "timeseries"}
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")  # files read as tables
TABLE_BUILTINS = ("adult",)
COLUMN_CHOICES = ("continuous", "integer", "categorical", "boolean", "datetime", "drop")
TEXT_SUFFIXES = (".txt", ".smi", ".smiles")  # files read as text: one string per line
VALIDITY = ("", "none", "smiles")  # data.validity: "" = smiles for .smi files, else none
TEXT_CODECS = ("tokens", "autoencoder")  # data.text_codec
SEQUENCE_MARGINALS = ("minmax", "gaussian")  # data.marginals
TABLE_NUMERIC = ("modes", "gaussian", "auto")  # data.numeric (kinds.tables.codec.SCALES)


def is_text_source(source: str) -> bool:
    """Whether ``data.source`` names text (a .txt or .smi file, one string per line)."""
    return source.lower().endswith(TEXT_SUFFIXES)


SEQUENCE_BUILTINS = ("sines", "stocks", "energy")
SERIES_KEY = "series"  # the member of an .npz file that holds (N, T, C) series


def is_sequence_source(source: str, id_col: str = "", window: int = 0) -> bool:
    """Whether ``data.source`` (with ``data.id`` as ``id_col``, and ``data.window``) names
    time series: a built-in (sines, stocks, energy), a table file read in long format
    (``id_col``) or cut into windows (``window``), or an .npz file holding a ``series``
    array."""
    if source in SEQUENCE_BUILTINS:
        return True
    if source.lower().endswith(TABLE_SUFFIXES):
        return bool(id_col) or window > 0
    if source.lower().endswith(".npz"):
        import zipfile

        try:
            with zipfile.ZipFile(source) as z:
                return f"{SERIES_KEY}.npy" in z.namelist()
        except (OSError, zipfile.BadZipFile):
            return False  # the array reader says what is wrong with it
    return False


def is_table_source(source: str, id_col: str = "", window: int = 0) -> bool:
    """Whether ``data.source`` names a table (a .csv/.tsv/.parquet file or a built-in table)
    rather than time series."""
    if is_sequence_source(source, id_col, window):
        return False
    return source in TABLE_BUILTINS or source.lower().endswith(TABLE_SUFFIXES)


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on (``source``: digits, mnist, a folder, or a .npy/.npz file)."""

    source: str = "digits"
    dir: str = ""  # where the source's files are (mnist IDX files); "" = the cache folder
    download: bool = True  # fetch missing mnist files (checked by SHA-256)
    size: int = 0  # square side images are resized to; 0 = the source's own (folders: 64)
    channels: int = 0  # 1 (grayscale) or 3 (RGB) for folders; 0 = as found
    # Tables (.csv, .tsv, .parquet, or the built-in adult):
    target: str = ""  # the column a model would predict (machine-learning efficacy); "" = none
    # column -> a kind, or "drop"; in TOML a table ([data.columns] id = "drop"), kept as pairs
    # so configs stay hashable
    columns: tuple[tuple[str, str], ...] = ()
    holdout: float = 0.2  # share of rows held out (seeded) for evaluation, never trained on
    split_seed: int = 0  # seed of the held-out split
    max_categories: int = 200  # a column with more categories is refused (or drop it)
    # numeric columns: modes (CTGAN's mixture modes), gaussian (normal scores), or auto: for a
    # column with a spike (one value in >= 20% of rows) and more than 20 values, the spike as
    # one more mode beside a mixture of the other values (each value's normal score within its
    # mode); normal scores with 20 values or fewer; modes for the others. On Adult (3 seeds,
    # BENCHMARKS.md) train-on-synthetic F1 0.66 against 0.55 with modes everywhere
    numeric: str = "auto"
    # share of training batches conditioned on the target (at its real shares, as generated rows
    # are); the rest on any discrete column by log-frequency. On Adult (seed 0) 0.5 against 0:
    # P(>50K | female) 0.139 against 0.039 (real 0.118), column shapes 0.967 against 0.949
    target_focus: float = 0.5
    # a column that is a function of one discrete column in every training row (a code for each
    # category) is written from it, not learned, so the relation holds in every generated row
    derive: bool = True
    # Time series (sines, stocks, energy; .npz with a `series` array; CSV/TSV/Parquet read in
    # long format with `id`, or one long series cut into windows with `window`):
    id: str = ""  # long format: the column naming each row's series
    time: str = ""  # the column rows are ordered by (within a series); "" = file order
    window: int = 0  # one long series cut into windows of this many steps; 0 = stocks/energy 24
    stride: int = 1  # steps between the starts of successive windows
    marginals: str = "minmax"  # minmax: G makes [0, 1] cells; gaussian: channels' normal scores
    basis: float = 0.0  # > 0: G makes principal coordinates carrying this variance share
    # Text (.txt, .smi: one string per line):
    max_length: int = 32  # characters per string at most
    truncate: bool = True  # longer lines are cut to max_length (with a note); false: refused
    validity: str = ""  # the checker of samples: smiles, none; "" = smiles for .smi, else none
    text_codec: str = "tokens"  # tokens (one-hot, the text preset) or autoencoder (text-latent)
    autoencoder_steps: int = 2000  # training steps of text-latent's autoencoder
    code_dim: int = 32  # the width of text-latent's codes

    @property
    def column_kinds(self) -> dict[str, str]:
        """``columns`` as a dict: column name -> kind or "drop"."""
        return dict(self.columns)


@dataclass(frozen=True)
class ModelConfig:
    """The generator and discriminator."""

    family: str = "mlp"
    latent_dim: int = 100
    g_hidden: tuple[int, ...] = (128, 128)
    d_hidden: tuple[int, ...] = (128, 128)
    activation: str = "leaky_relu"
    leaky_slope: float = 0.2
    output: str = "tanh"  # tanh (data in [-1, 1]), sigmoid (in [0, 1]) or linear (as it is)
    d_spectral_norm: bool = True
    conditional: bool = False  # class labels into G and a projection D (needs labelled data)
    # Self-conditioning (Liu et al. 2020): > 0 conditions G and D on this many k-means clusters
    # of the training data instead of labels; samples draw a cluster at its share of the data.
    clusters: int = 0
    base_channels: int = 64  # width of the convolutional families (dcgan, resnet)
    # dcgan, resnet: hidden widths of D's head, between its convolutional features and its
    # score (StyleGAN's epilogue); () = one linear layer
    d_head: tuple[int, ...] = ()
    d_output: str = "linear"  # D's last layer: linear (a logit) or sigmoid (a probability)
    # mlp G: a linear path from G's input to its output beside the hidden layers, so the
    # Gaussian part of the data (white noise, a basis' linear structure) is one map
    g_skip: bool = False

    @property
    def conditioned(self) -> bool:
        """Whether G and D take labels: class labels (``conditional``) or clusters."""
        return self.conditional or self.clusters > 0


@dataclass(frozen=True)
class LossConfig:
    """The adversarial loss and its label smoothing."""

    name: str = "non_saturating"
    real_label: float = 1.0  # target for real samples in D's loss; < 1 is one-sided smoothing


@dataclass(frozen=True)
class RegConfig:
    """Stabilisers: penalties, augmentation, instance noise and minibatch packing."""

    gp_weight: float = 0.0  # WGAN-GP gradient penalty weight; 0 = off
    gp_one_sided: bool = False  # penalise only gradient norms above 1
    r1_gamma: float = 0.0  # R1 penalty on real data; 0 = off
    r1_every: int = 1  # lazy R1 (and R2): apply every N steps (scaled by N)
    r2_gamma: float = 0.0  # R2 penalty on generated samples (R3GAN); 0 = off
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs; 0 = off
    noise_steps: int = 5000  # instance noise decays linearly to 0 over this many steps
    pack: int = 1  # PacGAN: D judges this many samples at once (0: the data kind's own)
    augment: tuple[str, ...] = ()  # DiffAugment: any of translation, cutout, color


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule of side work, and reproducibility."""

    steps: int = 6000  # 0: the data kind's own length (tables: by their number of rows)
    batch_size: int = 128
    d_steps: int = 1  # discriminator steps per generator step
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: tuple[float, ...] = (0.5, 0.999)
    betas_d: tuple[float, ...] = (0.5, 0.999)
    ema: float = 0.999  # decay of the generator's moving average used for sampling; 0 = off
    lr_decay: float = 0.0  # share of the last steps over which both lrs fall to ~0; 0 = off
    seed: int = 0
    threads: int = 0  # CPU threads for torch; 0 = leave torch's default
    # fp32; bf16 or fp16 (CUDA) autocast; auto: the fused fp32 step where it applies, else bf16
    # autocast on CPUs with bf16 units, else fp32
    precision: str = "fp32"
    device: str = "auto"  # auto (CUDA if available, else CPU), cpu, cuda or cuda:N
    fused_adam: bool = True  # one fused Adam kernel where torch supports it
    reuse_fake: bool = True  # with d_steps = 1, G's step reuses the batch D just scored
    channels_last: bool = True  # NHWC memory layout for convolutional networks
    fused_step: bool = True  # the fused step (training/fused.py) where the config allows it
    cuda_graph: bool = True  # on CUDA: the step captured once as a CUDA graph where it can be
    shared_draws: bool = False  # torchrun: every rank draws the global batch, keeps its slice
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    grid_size: int = 100  # samples in each grid of samples/
    target: str = ""  # stop at the first evaluation reaching it: fd=3, precision>0.7; "" = none
    time_limit: float = 0.0  # seconds one process trains, then stops with a checkpoint; 0 = none
    # MLE pre-training (RelGAN; model.family=text): the first pretrain_steps steps train G alone
    # by teacher-forced next-token cross-entropy on the real strings (its own Adam at
    # pretrain_lr, betas 0.9/0.999), the adversarial steps follow; they count in train.steps.
    pretrain_steps: int = 0
    pretrain_lr: float = 2e-3
    # the share of pretrain_lr left at the last pre-training step: the rate falls linearly from
    # pretrain_lr to pretrain_lr * pretrain_lr_final over the pre-training steps; 1 = constant
    pretrain_lr_final: float = 1.0
    # model.family=text: 0 trains at Gumbel-softmax temperature 0.5; > 0 anneals RelGAN's
    # inverse temperature beta from 1 to this over the adversarial steps (exponentially; like
    # lr_decay it follows train.steps, so a run given more steps on resume anneals anew)
    gumbel_beta_max: float = 0.0
    tensorboard: bool = False  # mirror metrics.jsonl and samples/ into RUN/tb/ (TensorBoard)


@dataclass(frozen=True)
class EvalConfig:
    """Quality metrics during training (see gankit.metrics.evaluate)."""

    every: int = 0  # evaluate every N steps and at the end; 0 = never
    num: int = 2500  # generated samples per evaluation (from a fixed noise batch)
    extractor: str = ""  # feature extractor; "" = digits for 28x28 grayscale, else inception
    main: str = ""  # metric that picks the best checkpoint; "" = fd (images), modes (points)


REMEDIES = ("wider_d", "r1", "lr", "noise")  # what a rollback for a mode collapse may change


@dataclass(frozen=True)
class GuardConfig:
    """Divergence detection (at each log step) and recovery by rollback to the last checkpoint."""

    enabled: bool = True
    max_retries: int = 3  # rollbacks before training stops with a report
    lr_factor: float = 0.5  # both learning rates are multiplied by this at each rollback
    penalty_factor: float = 2.0  # reg.gp_weight and reg.r1_gamma are multiplied by this
    grad_norm_max: float = 1e4  # a gradient norm above this is an explosion; 0 = unchecked
    loss_max: float = 1e5  # a mean |loss| above this is an explosion; 0 = unchecked
    collapse_steps: int = 2000  # steps D may look perfect (see collapse_margin); 0 = unchecked
    collapse_margin: float = 0.01  # D(x) >= 1 - margin with D(G(z)) <= margin looks perfect
    # Mode collapse (training/collapse.py): the diversity of a fixed noise batch against real data
    diversity_every: int = 100  # measure at the first log step past every N steps; 0 = never
    diversity_num: int = 256  # samples measured (and real samples they are compared with)
    # Bounds measured to pass a healthy classic run's transient (diversity 0.1, 80% duplicates,
    # two digits near step 500, then spreading out by itself) and to catch induced collapses
    # (diversity 0.00-0.06, 96-100% duplicates): BENCHMARKS.md, "Mode collapse while training".
    diversity_min: float = 0.05  # mean pairwise distance over the real batch's, at least
    duplicates_max: float = 0.95  # share of near-duplicate samples, at most
    modes_min: float = 0.15  # share of the real batch's classes (or clusters) covered, at least
    realism_min: float = 0.1  # share of samples within a real sample's neighbourhood, at least
    # ... judged from this step on: before it a slow healthy run cannot be told from samples
    # spread off the data (measured on ring8, unconditioned: 0.04 at step 500, 0.25 at 1,500)
    realism_after: int = 1500
    # After a mode-collapse remedy the run must win its modes back: from recovery_steps past
    # the rollback on, covering fewer than recovered_min of the real modes is a collapse too
    # (a healthy classic run, started afresh, has all 10 digits by about step 1,000).
    recovered_min: float = 0.8
    recovery_steps: int = 1000
    diversity_after: int = 500  # no verdict before this step (a fresh generator draws blobs)
    diversity_checks: int = 2  # consecutive failing measurements that make a mode collapse
    # What a rollback for a mode collapse changes, the i-th entry at the i-th such rollback (the
    # last repeats): r1 (an R1 penalty, gamma 10, or the configured one times penalty_factor),
    # lr (both rates times collapse_lr_factor), noise (instance noise 0.1, fading over
    # reg.noise_steps). Rate cuts add up; a penalty holds until the next rollback. Empty: warn
    # only, never roll back. The default is chosen by measurement (BENCHMARKS.md, "Mode collapse
    # while training"): R1 brought the textbook model back on 10 of 10 seeds, rate cuts of 0.5
    # did not help lr 0.5 and cuts of 0.1 only partly, instance noise helped none; with R1
    # taken back, the cut after it brought ring8 at lr 0.1 back (R1 kept on spread it off).
    # wider_d (D rebuilt afresh as wide as G, mirrored: model.d_hidden = reversed g_hidden)
    # applies only where the configured D has fewer than wider_d_below of G's parameters
    # (elsewhere it is passed over): none of the others cured a 4-unit D, nor did packing or
    # minibatch standard deviations (measured).
    remedies: tuple[str, ...] = ("wider_d", "r1", "lr", "lr")
    wider_d_below: float = 0.25
    collapse_lr_factor: float = 0.1  # the lr remedy's factor on both learning rates
    # ... and after its first cut no rate is above collapse_lr_max (after the k-th, above
    # collapse_lr_max * collapse_lr_factor ** (k - 1)): a rate far past where Adam trains GANs
    # (lr 0.5) is brought into range at once instead of in tenths. 0: no cap.
    collapse_lr_max: float = 1e-3
    # A run remedied for a mode collapse must end covering at least final_modes_min of the real
    # modes, counted on final_num samples by the kind's finest judge (the digit classifier for
    # 28x28 digits, else the watch's classes or clusters); below it, it stops with exit code 3
    # (a remedied run ends with every class, or says it could not). 0: no verdict. 5,000, as a
    # class counts from a hundredth of the samples: on 1,000 one at 0.98% was counted (measured).
    final_modes_min: float = 1.0
    final_num: int = 5000


@dataclass(frozen=True)
class Config:
    """A complete, validated run configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    preset: str = "classic"

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections or values replaced: ``cfg.replace(train={"steps": 10})``."""
        return from_dict(merge(to_dict(self), sections))


SECTIONS: dict[str, type] = {
    "data": DataConfig, "model": ModelConfig, "loss": LossConfig, "reg": RegConfig,
    "train": TrainConfig, "eval": EvalConfig, "guard": GuardConfig,
}
# Metrics that may rank checkpoints (eval.main); their direction is in gankit.metrics.evaluate.
MAIN_METRICS = ("fd", "kid", "precision", "recall", "density", "coverage", "is", "classes",
                "class_kl", "high_quality", "modes", "mode_kl", "column_shapes", "pair_trends",
                "missing_similarity", "detection_auc", "efficacy_f1_ratio", "efficacy_r2_ratio",
                "discriminative", "predictive", "marginal_ks", "autocorrelation_gap",
                "correlation_gap", "length_distance",
                "bleu4", "self_bleu4", "novelty", "uniqueness", "validity")


def presets() -> list[str]:
    """Names of the presets shipped with gankit."""
    root = resources.files("gankit").joinpath("presets")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def preset_dict(name: str) -> dict[str, Any]:
    """The raw contents of a shipped preset."""
    if name not in presets():
        raise ConfigError(f"unknown preset '{name}' (choose from: {', '.join(presets())})")
    text = resources.files("gankit").joinpath("presets", f"{name}.toml").read_text()
    return tomllib.loads(text)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file, turning any failure into ConfigError."""
    p = Path(path)
    refuse_pickle(p, "config file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None


def parse_override(text: str) -> dict[str, Any]:
    """``section.key=value`` as a nested dict; the value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    nested = len(parts) == 3 and parts[:2] == ["data", "columns"]  # data.columns.NAME=kind
    if not sep or not (len(parts) == 2 or nested) or not all(parts):
        raise ConfigError(f"override '{text}' must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    if nested:
        return {"data": {"columns": {parts[2]: value}}}
    return {parts[0]: {parts[1]: value}}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``extra`` over ``base`` (new dicts; inputs untouched)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
) -> Config:
    """Build a validated Config from a preset, a TOML file, overrides and extra values.

    The preset is, in order: the ``preset`` argument, a top-level ``preset`` key in the file,
    the data source's default (``digits`` for the built-in digits, also when no source is
    named; ``mixture`` for ring8, ``mixture-grid`` for grid25, ``stacked`` for stacked-digits),
    ``classic``.
    """
    user = read_toml(file) if file is not None else {}
    name = preset or user.get("preset") or _default_preset(user, overrides, values)
    if not isinstance(name, str):
        raise ConfigError("preset must be a string")
    raw = merge(preset_dict(name), {k: v for k, v in user.items() if k != "preset"})
    for text in overrides:
        raw = merge(raw, parse_override(text))
    raw = merge(raw, values or {})
    raw["preset"] = name
    return from_dict(raw)


def _default_preset(user: dict[str, Any], overrides: list[str] | tuple[str, ...],
                    values: dict[str, Any] | None) -> str:
    """The preset for the data source named anywhere in the input, when no preset is named."""
    raw = merge({}, user)
    for text in overrides:
        raw = merge(raw, parse_override(text))
    raw = merge(raw, values or {})
    data = raw.get("data")
    source = data.get("source", DataConfig.source) if isinstance(data, dict) else DataConfig.source
    if not isinstance(source, str):
        return "classic"
    id_col = data.get("id", "") if isinstance(data, dict) else ""
    window = data.get("window", 0) if isinstance(data, dict) else 0
    if is_sequence_source(source, id_col if isinstance(id_col, str) else "",
                          window if isinstance(window, int) else 0):
        return "timeseries"
    if is_table_source(source):
        return "tabular"
    if is_text_source(source):
        return "text"
    return DEFAULT_PRESETS.get(source, "classic")


def from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested dict (as read from TOML) into a Config."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"preset"})
    if unknown:
        raise ConfigError(f"unknown config section '{unknown[0]}' "
                          f"(known: {', '.join(SECTIONS)})")
    built: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"config section '{name}' must be a table")
        built[name] = _build_section(name, cls, section)
    preset = raw.get("preset", "classic")
    if not isinstance(preset, str):
        raise ConfigError("preset must be a string")
    cfg = Config(**built, preset=preset)
    validate(cfg)
    return cfg


def _build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown config key '{name}.{key}' (known: {', '.join(known)})")
    kwargs = {k: _coerce(f"{name}.{k}", known[k].type, v) for k, v in values.items()}
    return cls(**kwargs)


def _coerce(key: str, type_name: Any, value: Any) -> Any:
    t = str(type_name)
    if t == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}")
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if t.startswith("tuple[int"):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key} must be a list of integers, got {value!r}")
        return tuple(value)
    if t.startswith("tuple[str"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if t.startswith("tuple[float"):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if t.startswith("tuple[tuple[str, str]"):
        if isinstance(value, (list, tuple)):  # pairs, as a Config holds them
            value = dict(value) if all(isinstance(p, (list, tuple)) and len(p) == 2
                                       for p in value) else None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{key} must be a table of names to strings, got {value!r}")
        return tuple(sorted(value.items()))
    raise AssertionError(f"unhandled config type {t} for {key}")  # pragma: no cover


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    _require(value in choices, f"{key} must be one of {', '.join(choices)}, got '{value}'")


def validate(cfg: Config) -> None:
    """Refuse values and combinations that cannot work."""
    d, m, lo, t = cfg.data, cfg.model, cfg.loss, cfg.train
    _require(bool(d.source), "data.source must not be empty")
    _require(d.size == 0 or 4 <= d.size <= 1024, f"data.size must be 0 or 4..1024, got {d.size}")
    _require(d.channels in (0, 1, 3), f"data.channels must be 0, 1 or 3, got {d.channels}")
    _require(0.0 < d.holdout < 1.0, f"data.holdout must be in (0, 1), got {d.holdout}")
    _require(0 <= d.split_seed < 2**63, f"data.split_seed must be in 0..2^63-1, got {d.split_seed}")
    _require(2 <= d.max_categories <= 100_000,
             f"data.max_categories must be in 2..100000, got {d.max_categories}")
    for name, kind in d.columns:
        _one_of(f"data.columns.{name}", kind, COLUMN_CHOICES)
    _require(0 <= d.window <= 100_000, f"data.window must be 0..100000, got {d.window}")
    _require(1 <= d.stride <= 100_000, f"data.stride must be 1..100000, got {d.stride}")
    _one_of("data.marginals", d.marginals, SEQUENCE_MARGINALS)
    _one_of("data.numeric", d.numeric, TABLE_NUMERIC)
    _require(0.0 <= d.target_focus <= 1.0,
             f"data.target_focus must be within 0..1, got {d.target_focus}")
    _require(0.0 <= d.basis <= 1.0, f"data.basis must be in 0..1, got {d.basis}")
    _require((d.marginals == "minmax" and d.basis == 0.0) or m.output == "linear"
             or not is_sequence_source(d.source, d.id, d.window),
             f"data.marginals={d.marginals} / data.basis={d.basis} make unbounded generator "
             f"rows: they need model.output=\"linear\", not {m.output!r}")
    _require(1 <= d.max_length <= 1000, f"data.max_length must be 1..1000, got {d.max_length}")
    _one_of("data.validity", d.validity, VALIDITY)
    _one_of("data.text_codec", d.text_codec, TEXT_CODECS)
    _require(1 <= d.autoencoder_steps <= 10**7,
             f"data.autoencoder_steps must be 1..1e7, got {d.autoencoder_steps}")
    _require(2 <= d.code_dim <= 1024, f"data.code_dim must be 2..1024, got {d.code_dim}")
    _one_of("model.family", m.family, FAMILIES)
    _require(1 <= m.latent_dim <= 4096, f"model.latent_dim must be 1..4096, got {m.latent_dim}")
    for key, widths in (("model.g_hidden", m.g_hidden), ("model.d_hidden", m.d_hidden)):
        _require(len(widths) >= 1 and all(1 <= w <= 16384 for w in widths),
                 f"{key} must be a non-empty list of widths in 1..16384, got {list(widths)}")
    _require(all(1 <= w <= 16384 for w in m.d_head),
             f"model.d_head must be a list of widths in 1..16384, got {list(m.d_head)}")
    _require(not m.d_head or m.family in FAMILY_SIZES,
             f"model.d_head is the head of a convolutional D ({', '.join(FAMILY_SIZES)}); "
             f"model.family={m.family} sets D's layers with model.d_hidden")
    _one_of("model.activation", m.activation, ACTIVATIONS)
    _require(not m.g_skip or m.family == "mlp",
             f"model.g_skip is a path of the mlp family's G, not of {m.family}")
    _require(0.0 <= m.leaky_slope < 1.0,
             f"model.leaky_slope must be in [0, 1), got {m.leaky_slope}")
    _one_of("model.output", m.output, OUTPUTS)
    _one_of("loss.name", lo.name, LOSSES)
    _require(0.5 < lo.real_label <= 1.0,
             f"loss.real_label must be in (0.5, 1], got {lo.real_label}")
    for key in ("batch_size", "d_steps", "log_every", "sample_every",
                "checkpoint_every", "keep_checkpoints", "grid_size"):
        value = getattr(t, key)
        _require(value >= 1, f"train.{key} must be at least 1, got {value}")
    _require(t.steps >= 0, f"train.steps must be at least 1 (or 0: the data's own length, "
             f"for tables), got {t.steps}")
    _require(t.steps <= 10**9, f"train.steps must be at most 1e9, got {t.steps}")
    _require(t.batch_size <= 65536, f"train.batch_size must be at most 65536, got {t.batch_size}")
    _require(t.d_steps <= 100, f"train.d_steps must be at most 100, got {t.d_steps}")
    _require(t.grid_size <= 1024, f"train.grid_size must be at most 1024, got {t.grid_size}")
    for key in ("lr_g", "lr_d"):
        value = getattr(t, key)
        _require(0.0 < value <= 1.0, f"train.{key} must be in (0, 1], got {value}")
    for key in ("betas_g", "betas_d"):
        b = getattr(t, key)
        _require(len(b) == 2 and all(0.0 <= x < 1.0 for x in b),
                 f"train.{key} must be two numbers in [0, 1), got {list(b)}")
    _require(0.0 <= t.ema < 1.0, f"train.ema must be in [0, 1), got {t.ema}")
    _require(0.0 <= t.lr_decay <= 1.0, f"train.lr_decay must be in [0, 1], got {t.lr_decay}")
    _require(0 <= t.seed < 2**63, f"train.seed must be in 0..2^63-1, got {t.seed}")
    _require(0 <= t.threads <= 1024, f"train.threads must be in 0..1024, got {t.threads}")
    _one_of("train.precision", t.precision, PRECISIONS)
    _require(bool(DEVICE.fullmatch(t.device)),
             f"train.device must be auto, cpu, cuda or cuda:N, got '{t.device}'")
    _require(not (t.precision == "fp16" and t.device == "cpu"),
             "train.precision=fp16 needs a CUDA device, not train.device=cpu; "
             "use bf16 or fp32 on the CPU")
    e = cfg.eval
    _require(0 <= e.every <= 10**9, f"eval.every must be 0 (off) or a step count, got {e.every}")
    _require(10 <= e.num <= 100_000, f"eval.num must be in 10..100000, got {e.num}")
    _require(e.main == "" or e.main in MAIN_METRICS,
             f"eval.main must be one of {', '.join(MAIN_METRICS)}, got '{e.main}'")
    if t.target:
        try:
            parse_target(t.target)
        except ValueError as err:
            raise ConfigError(f"train.target: {err}") from None
        _require(e.every > 0, f"train.target={t.target} is judged at evaluations: set "
                              "eval.every (--eval-every N)")
    _require(0.0 <= t.time_limit <= 1e9,
             f"train.time_limit must be in 0..1e9 seconds (0 = none), got {t.time_limit}")
    _require(0 <= t.pretrain_steps <= 10**9,
             f"train.pretrain_steps must be in 0..1e9 (0 = none), got {t.pretrain_steps}")
    _require(0.0 < t.pretrain_lr <= 1.0,
             f"train.pretrain_lr must be in (0, 1], got {t.pretrain_lr}")
    _require(0.0 < t.pretrain_lr_final <= 1.0,
             f"train.pretrain_lr_final must be in (0, 1], got {t.pretrain_lr_final}")
    _require(t.gumbel_beta_max == 0.0 or 1.0 <= t.gumbel_beta_max <= 1e6,
             f"train.gumbel_beta_max must be 0 (off) or in 1..1e6, got {t.gumbel_beta_max}")
    for key in ("pretrain_steps", "gumbel_beta_max"):
        _require(not getattr(t, key) or m.family == "text",
                 f"train.{key} is for model.family=text (a generator of tokens), not "
                 f"model.family={m.family}")
    _validate_guard(cfg.guard)
    _validate_recipe(cfg)


def _validate_guard(g: GuardConfig) -> None:
    _require(0 <= g.max_retries <= 100, f"guard.max_retries must be in 0..100, got {g.max_retries}")
    _require(0.0 < g.lr_factor <= 1.0, f"guard.lr_factor must be in (0, 1], got {g.lr_factor}")
    _require(1.0 <= g.penalty_factor <= 100.0,
             f"guard.penalty_factor must be in [1, 100], got {g.penalty_factor}")
    _require(0.0 <= g.grad_norm_max <= 1e30,
             f"guard.grad_norm_max must be in 0..1e30 (0 = unchecked), got {g.grad_norm_max}")
    _require(0.0 <= g.loss_max <= 1e30,
             f"guard.loss_max must be in 0..1e30 (0 = unchecked), got {g.loss_max}")
    _require(0 <= g.collapse_steps <= 10**9,
             f"guard.collapse_steps must be in 0..1e9 (0 = unchecked), got {g.collapse_steps}")
    _require(0.0 < g.collapse_margin < 0.5,
             f"guard.collapse_margin must be in (0, 0.5), got {g.collapse_margin}")
    _require(0 <= g.diversity_every <= 10**9,
             f"guard.diversity_every must be in 0..1e9 (0 = never), got {g.diversity_every}")
    _require(10 <= g.diversity_num <= 10_000,
             f"guard.diversity_num must be in 10..10000, got {g.diversity_num}")
    _require(10 <= g.final_num <= 100_000,
             f"guard.final_num must be in 10..100000, got {g.final_num}")
    for key in ("diversity_min", "duplicates_max", "modes_min", "realism_min", "recovered_min",
                "final_modes_min", "wider_d_below"):
        value = getattr(g, key)
        _require(0.0 <= value <= 1.0, f"guard.{key} must be in [0, 1], got {value}")
    _require(0 <= g.realism_after <= 10**9,
             f"guard.realism_after must be in 0..1e9, got {g.realism_after}")
    _require(0 <= g.recovery_steps <= 10**9,
             f"guard.recovery_steps must be in 0..1e9, got {g.recovery_steps}")
    _require(0 <= g.diversity_after <= 10**9,
             f"guard.diversity_after must be in 0..1e9, got {g.diversity_after}")
    _require(1 <= g.diversity_checks <= 1000,
             f"guard.diversity_checks must be in 1..1000, got {g.diversity_checks}")
    _require(0.0 < g.collapse_lr_factor <= 1.0,
             f"guard.collapse_lr_factor must be in (0, 1], got {g.collapse_lr_factor}")
    _require(0.0 <= g.collapse_lr_max <= 1e3,
             f"guard.collapse_lr_max must be in 0..1e3 (0 = no cap), got {g.collapse_lr_max}")
    bad = [r for r in g.remedies if r not in REMEDIES]
    _require(not bad, f"guard.remedies: unknown remedy '{bad[0] if bad else ''}' "
                      f"(choose from {', '.join(REMEDIES)})")


def _validate_recipe(cfg: Config) -> None:
    """Architecture, loss and stabiliser settings, alone and in combination."""
    d, m, lo, r, t = cfg.data, cfg.model, cfg.loss, cfg.reg, cfg.train
    _require(4 <= m.base_channels <= 1024,
             f"model.base_channels must be 4..1024, got {m.base_channels}")
    _one_of("model.d_output", m.d_output, D_OUTPUTS)
    if m.d_output == "sigmoid":
        _require(lo.name in PROBABILITY_LOSSES,
                 f"model.d_output=sigmoid bounds D's output to (0, 1), which loss.name="
                 f"{lo.name} cannot use: choose {' or '.join(PROBABILITY_LOSSES)}, "
                 "or model.d_output=linear")
    _require(lo.real_label == 1.0 or lo.name not in ("wasserstein", "hinge"),
             f"loss.real_label (label smoothing) has no meaning for loss.name={lo.name}; "
             "leave it at 1.0")
    sizes = FAMILY_SIZES.get(m.family)
    _require(sizes is None or d.size in (0, *sizes),
             f"model.family={m.family} makes images of side {sizes_text(sizes)} pixels, "
             f"not data.size={d.size}")
    for key in ("gp_weight", "r1_gamma", "r2_gamma", "instance_noise"):
        value = getattr(r, key)
        _require(0.0 <= value <= 1e6, f"reg.{key} must be in 0..1e6, got {value}")
    _require(1 <= r.r1_every <= 10**6, f"reg.r1_every must be 1..1e6, got {r.r1_every}")
    _require(1 <= r.noise_steps <= 10**9, f"reg.noise_steps must be 1..1e9, got {r.noise_steps}")
    _require(0 <= r.pack <= 64, f"reg.pack must be 1..64 (0: the data's own), got {r.pack}")
    _require(r.pack == 0 or t.batch_size % r.pack == 0,
             f"reg.pack={r.pack} must divide train.batch_size={t.batch_size}")
    _require(r.pack == 1 or not m.conditional or m.family == "tabular",
             "reg.pack cannot be combined with model.conditional (a pack would mix classes)")
    _require(0 <= m.clusters <= 10_000, f"model.clusters must be 0..10000, got {m.clusters}")
    _require(m.clusters != 1, "model.clusters=1 is one cluster: use 0 (off) or at least 2")
    _require(not (m.clusters and m.conditional),
             "model.clusters (self-conditioning on clusters) replaces model.conditional "
             "(class labels): choose one")
    _require(r.pack == 1 or not m.clusters,
             "reg.pack cannot be combined with model.clusters (a pack would mix clusters)")
    for name in r.augment:
        _one_of("reg.augment", name, AUGMENTS)
    _require(len(set(r.augment)) == len(r.augment),
             f"reg.augment lists an augmentation twice: {list(r.augment)}")


def sizes_text(sizes: tuple[int, ...] | None) -> str:
    """Sizes as text: (28, 32, 64) -> "28, 32 or 64"."""
    items = [str(s) for s in sizes or ()]
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else "".join(items)


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as a nested dict of TOML-ready values (tuples become lists)."""
    out: dict[str, Any] = {"preset": cfg.preset}
    for name in SECTIONS:
        section = dataclasses.asdict(getattr(cfg, name))
        out[name] = {k: _plain(k, v) for k, v in section.items()}
    return out


def _plain(key: str, v: Any) -> Any:
    """A section value as TOML-ready data: tuples become lists, data.columns a table."""
    if key == "columns":
        return dict(v)
    return list(v) if isinstance(v, tuple) else v


def to_toml(cfg: Config) -> str:
    """The config as TOML text that ``resolve(file=...)`` reads back to an equal Config."""
    d = to_dict(cfg)
    lines = [f"preset = {_toml_value(d['preset'])}", ""]
    for name in SECTIONS:
        lines.append(f"[{name}]")
        tables = {k: v for k, v in d[name].items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in d[name].items() if k not in tables]
        for key, table in tables.items():  # nested tables last, as TOML needs
            lines.append(f"[{name}.{key}]")
            lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")  # pragma: no cover


def load_toml_config(path: str | Path) -> Config:
    """Read a resolved config.toml (as written by ``to_toml``) without applying any preset."""
    return from_dict(read_toml(path))
