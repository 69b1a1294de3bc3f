"""Property-based tests (hypothesis): the config parser and the array/IDX readers never crash.

Whatever they are fed, they return a valid result or raise gankit's own error (one line at the
command line): never a stray exception, never a half-valid object.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gankit.config import (
    SECTIONS,
    Config,
    from_dict,
    load_toml_config,
    parse_override,
    resolve,
    to_dict,
    to_toml,
)
from gankit.data.arrays import load_array
from gankit.data.mnist import read_idx
from gankit.errors import ConfigError, DataError

# 60 examples per property in CI; `make stress` sets GANKIT_EXAMPLES=1000.
EXAMPLES = int(os.environ.get("GANKIT_EXAMPLES", 60))
FAST = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = {name: [f.name for f in cls.__dataclass_fields__.values()]
        for name, cls in SECTIONS.items()}
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
# Mostly real keys (so validation is reached), sometimes made-up ones.
section_names = st.sampled_from([*SECTIONS, "preset", "bogus"])


@st.composite
def raw_configs(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name in draw(st.lists(section_names, max_size=4, unique=True)):
        if name in KEYS:
            keys = st.sampled_from([*KEYS[name], "nope"])
            raw[name] = draw(st.dictionaries(keys, values, max_size=4))
        else:
            raw[name] = draw(values)
    return raw


@FAST
@given(raw_configs())
def test_from_dict_validates_or_refuses(raw: dict[str, Any]) -> None:
    try:
        cfg = from_dict(raw)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert isinstance(cfg, Config)
    assert from_dict(to_dict(cfg)) == cfg  # a valid config survives the round trip


@FAST
@given(st.text(max_size=40))
def test_parse_override_any_text(text: str) -> None:
    try:
        out = parse_override(text)
    except ConfigError:
        return
    ((section, inner),) = out.items()
    ((key, _),) = inner.items()
    assert section and key and "." not in section


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_toml_text_never_crashes(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            cfg = resolve(file=p)
        except ConfigError as e:
            assert "\n" not in str(e)
            return
        assert isinstance(cfg, Config)


@FAST
@given(st.integers(1, 10**6), st.floats(1e-8, 1.0), st.floats(0.0, 0.99),
       st.sampled_from(["leaky_relu", "relu", "tanh"]), st.text(min_size=1, max_size=20))
def test_valid_configs_round_trip_through_toml(steps: int, lr: float, ema: float, act: str,
                                               source: str) -> None:
    cfg = resolve(values={"train": {"steps": steps, "lr_g": lr, "ema": ema},
                          "model": {"activation": act}, "data": {"source": source}})
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "config.toml"
        p.write_text(to_toml(cfg), encoding="utf-8")
        assert load_toml_config(p) == cfg


# -- array readers ------------------------------------------------------------------------------

dtypes = (hnp.integer_dtypes() | hnp.unsigned_integer_dtypes() | hnp.floating_dtypes()
          | hnp.boolean_dtypes() | hnp.complex_number_dtypes() | st.just(np.dtype("U2")))
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=1, max_dims=5, max_side=6))


def check_dataset(path: Path) -> None:
    try:
        data = load_array(path)
    except DataError as e:
        assert str(e) and "\n" not in str(e)
        return
    x = data.images
    assert x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[0] >= 1
    assert bool(((x >= 0) & (x <= 1)).all())  # finite and in range


@FAST
@given(arrays, st.booleans(), st.booleans())
def test_any_array_loads_or_is_refused(a: np.ndarray, as_npz: bool, labelled: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("a.npz" if as_npz else "a.npy")
        with open(path, "wb") as f:
            if as_npz:
                extra = {"labels": np.arange(len(a)) - 1} if labelled and a.ndim else {}
                np.savez(f, images=a, **extra)
            else:
                np.save(f, a)
        check_dataset(path)


@FAST
@given(hnp.arrays(np.uint8, (3, 5, 5)), st.data())
def test_damaged_array_files_are_refused(a: np.ndarray, data: st.DataObject) -> None:
    buf = io.BytesIO()
    np.savez(buf, images=a)
    raw = buf.getvalue()
    cut = data.draw(st.integers(0, len(raw) - 1))
    flips = data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=4))
    damaged = bytearray(raw[:cut] if data.draw(st.booleans()) else raw)
    for i in flips:
        if i < len(damaged):
            damaged[i] ^= 0xFF
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npz"
        path.write_bytes(bytes(damaged))
        check_dataset(path)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_as_npy(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npy"
        path.write_bytes(b"\x93NUMPY" + raw if raw[:1] == b"\0" else raw)
        check_dataset(path)


@FAST
@given(st.binary(max_size=64), st.booleans())
def test_random_idx_files(raw: bytes, magic: bool) -> None:
    if magic and len(raw) >= 2:
        raw = b"\0\0" + raw[2:]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x-idx"
        path.write_bytes(raw)
        try:
            a = read_idx(path)
        except DataError as e:
            assert "\n" not in str(e)
            return
        assert a.ndim == raw[3] and a.dtype.isnative


def test_huge_float64_is_out_of_range_not_infinite() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npy"
        np.save(path, np.full((2, 4, 4), 1e300))
        with pytest.raises(DataError, match="from 1e"):
            load_array(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_refused(bad: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npy"
        a = np.zeros((2, 4, 4), np.float32)
        a[1, 2, 3] = bad
        np.save(path, a)
        with pytest.raises(DataError, match="NaN or infinite"):
            load_array(path)
