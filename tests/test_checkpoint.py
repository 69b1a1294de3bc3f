"""Checkpoints: JSON + safetensors encoding, pruning, damaged files and newer formats, no pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from gankit.errors import RunError
from gankit.training import checkpoint
from gankit.training.checkpoint import decode, encode, latest, list_steps, read, save


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive equality with torch.equal (and equal dtype) for tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b), where  # tuples come back as lists
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    else:
        assert type(a) is type(b) and a == b, where


def sample_state() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    return {
        "weights": {
            "f32": torch.randn(3, 4, generator=gen),
            "f64": torch.randn(5, generator=gen, dtype=torch.float64),
            "f16": torch.randn(2, 2, generator=gen).half(),
            "bf16": torch.randn(6, generator=gen).bfloat16(),
            "i64": torch.arange(-3, 3),
            "i32": torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32),
            "u8": torch.arange(256, dtype=torch.uint8),
            "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(7.5),
            "noncontig": torch.arange(12.0).view(3, 4).t(),
        },
        "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)},
                          1: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
                "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0, 1],
                                  "foreach": True, "fused": None, "name": "g"}]},
        "nested": [1, [2, (3, 4)], {"x": None}],
        "none": None,
        "floats": [0.1, -0.0, 1e-300, 1.7976931348623157e308],
        "ints": [0, -1, 2**62],
        "text": "ünïcode \"quoted\" back\\slash",
        "flag": False,
        "empty_dict": {},
        "empty_list": [],
    }


def test_encode_decode_round_trip() -> None:
    state = sample_state()
    tensors: dict[str, torch.Tensor] = {}
    tree = encode(state, tensors)
    text = json.dumps(tree)  # the tree is plain JSON
    back = decode(json.loads(text), tensors)
    assert_same(state, back)
    assert set(back["opt"]["state"]) == {0, 1}  # int keys survive JSON
    assert back["opt"]["param_groups"][0]["betas"] == [0.5, 0.999]  # tuple -> list
    assert back["nested"] == [1, [2, [3, 4]], {"x": None}]
    assert len(tensors) == 14


def test_encode_copies_tensors() -> None:
    t = torch.zeros(3)
    tensors: dict[str, torch.Tensor] = {}
    tree = encode({"t": t}, tensors)
    t += 1  # later changes to the live tensor do not reach the checkpoint
    assert torch.equal(decode(tree, tensors)["t"], torch.zeros(3))
    assert all(v.is_contiguous() for v in tensors.values())


def test_encode_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError, match="set"):
        encode({"a": {1, 2}}, {})
    with pytest.raises(TypeError):
        encode({"a": object()}, {})


def test_encode_int_and_str_keys_do_not_collide() -> None:
    state = {1: torch.tensor([1.0]), "1": torch.tensor([2.0])}
    tensors: dict[str, torch.Tensor] = {}
    back = decode(encode(state, tensors), tensors)
    assert torch.equal(back[1], torch.tensor([1.0]))
    assert torch.equal(back["1"], torch.tensor([2.0]))


# -- save / read / latest -----------------------------------------------------------------------


def test_save_then_latest(tmp_path: Path) -> None:
    state = sample_state()
    path = save(tmp_path / "ckpt", 12, state)
    assert path == tmp_path / "ckpt" / "step-000000012.json"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "step-000000012.json", "step-000000012.safetensors"]  # no temporary files left behind
    back = latest(tmp_path / "ckpt")
    assert back is not None and back.pop("step") == 12
    assert_same(state, back)


def test_latest_picks_newest(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    for step in (5, 20, 100):
        save(folder, step, {"x": torch.tensor([float(step)])}, keep=5)
    assert list_steps(folder) == [5, 20, 100]
    state = latest(folder)
    assert state["step"] == 100 and torch.equal(state["x"], torch.tensor([100.0]))


def test_saving_an_older_step_drops_the_abandoned_future(tmp_path: Path) -> None:
    # A run that resumed from step 20 (say step 100 was damaged) continues from 20: the
    # checkpoint of step 100 belongs to a history that no longer exists.
    folder = tmp_path / "ckpt"
    for step in (5, 100, 20):
        save(folder, step, {"x": torch.tensor([float(step)])}, keep=5)
    assert list_steps(folder) == [5, 20]
    assert latest(folder)["step"] == 20


def test_latest_of_nothing(tmp_path: Path) -> None:
    assert latest(tmp_path / "missing") is None
    assert latest(tmp_path) is None
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "step-1.json").write_text("{}")  # not the 9-digit name
    assert list_steps(tmp_path) == [] and latest(tmp_path) is None


def test_save_without_tensors(tmp_path: Path) -> None:
    save(tmp_path, 1, {"a": 1, "b": [None, "x"]})
    assert latest(tmp_path) == {"a": 1, "b": [None, "x"], "step": 1}


def test_keep_prunes_older(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        save(tmp_path, step, {"x": torch.tensor([step])}, keep=2)
    assert list_steps(tmp_path) == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000003.json", "step-000000003.safetensors",
        "step-000000004.json", "step-000000004.safetensors"]
    save(tmp_path, 5, {"x": torch.tensor([5])}, keep=1)
    assert list_steps(tmp_path) == [5]
    assert not (tmp_path / "step-000000004.safetensors").exists()


def test_overwrite_same_step(tmp_path: Path) -> None:
    save(tmp_path, 3, {"x": torch.tensor([1])})
    save(tmp_path, 3, {"x": torch.tensor([2])})
    assert list_steps(tmp_path) == [3]
    assert torch.equal(latest(tmp_path)["x"], torch.tensor([2]))


# -- damage -------------------------------------------------------------------------------------


def two_checkpoints(folder: Path) -> None:
    save(folder, 1, {"x": torch.tensor([1.0, 1.0])})
    save(folder, 2, {"x": torch.tensor([2.0, 2.0])})


def flip_bytes(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["data", "header"])
def test_flipped_weights_fall_back(tmp_path: Path, where: str) -> None:
    two_checkpoints(tmp_path)
    weights = tmp_path / "step-000000002.safetensors"
    flip_bytes(weights, -1 if where == "data" else 10)
    with pytest.raises(RunError, match="checksum"):
        read(tmp_path / "step-000000002.json")
    state = latest(tmp_path)
    assert state["step"] == 1 and torch.equal(state["x"], torch.tensor([1.0, 1.0]))


def test_truncated_json_falls_back(tmp_path: Path) -> None:
    two_checkpoints(tmp_path)
    meta = tmp_path / "step-000000002.json"
    meta.write_bytes(meta.read_bytes()[: len(meta.read_bytes()) // 2])
    with pytest.raises(RunError, match="unreadable"):
        read(meta)
    assert latest(tmp_path)["step"] == 1


@pytest.mark.parametrize(
    "damage",
    ["empty_json", "missing_weights", "truncated_weights", "foreign_json", "json_list",
     "weights_elsewhere", "state_missing_tensor", "bad_sha"],
)
def test_other_damage_falls_back(tmp_path: Path, damage: str) -> None:
    two_checkpoints(tmp_path)
    meta_path = tmp_path / "step-000000002.json"
    weights = tmp_path / "step-000000002.safetensors"
    meta = json.loads(meta_path.read_text())
    if damage == "empty_json":
        meta_path.write_bytes(b"")
    elif damage == "missing_weights":
        weights.unlink()
    elif damage == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[:20])
    elif damage == "foreign_json":
        meta_path.write_text(json.dumps({"format": "something-else", "version": 1}))
    elif damage == "json_list":
        meta_path.write_text("[1, 2, 3]")
    elif damage == "weights_elsewhere":
        meta["weights"] = "../step-000000002.safetensors"
        meta_path.write_text(json.dumps(meta))
    elif damage == "state_missing_tensor":
        meta["state"] = {"__dict__": [["x", {"__tensor__": "/nope"}]]}
        meta_path.write_text(json.dumps(meta))
    elif damage == "bad_sha":
        meta["sha256"] = "0" * 64
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(RunError):
        read(meta_path)
    state = latest(tmp_path)
    assert state["step"] == 1 and torch.equal(state["x"], torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("step_value", [None, "abc", "missing"])
def test_json_with_bad_step_falls_back(tmp_path: Path, step_value: Any) -> None:
    two_checkpoints(tmp_path)
    meta_path = tmp_path / "step-000000002.json"
    meta = json.loads(meta_path.read_text())
    if step_value == "missing":
        meta["stfp"] = meta.pop("step")
    else:
        meta["step"] = step_value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RunError):
        read(meta_path)
    assert latest(tmp_path)["step"] == 1


def test_all_corrupt_raises(tmp_path: Path) -> None:
    two_checkpoints(tmp_path)
    flip_bytes(tmp_path / "step-000000002.safetensors", -1)
    (tmp_path / "step-000000001.json").write_text("{trunc")
    with pytest.raises(RunError, match="step-00000000"):
        latest(tmp_path)


def test_newer_version_is_not_skipped(tmp_path: Path) -> None:
    two_checkpoints(tmp_path)
    meta_path = tmp_path / "step-000000002.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 999
    meta_path.write_text(json.dumps(meta))
    # An older, readable checkpoint exists, but silently training on from it would lose work.
    with pytest.raises(RunError, match="newer") as info:
        latest(tmp_path)
    assert "999" in str(info.value)
    with pytest.raises(RunError, match="newer"):
        read(meta_path)


def test_newer_version_in_older_checkpoint_is_harmless(tmp_path: Path) -> None:
    two_checkpoints(tmp_path)
    meta_path = tmp_path / "step-000000001.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 999
    meta_path.write_text(json.dumps(meta))
    assert latest(tmp_path)["step"] == 2


def test_just_written_checkpoint_is_never_pruned(tmp_path: Path) -> None:
    save(tmp_path, 9, {"x": torch.tensor([9.0])}, keep=1)
    flip_bytes(tmp_path / "step-000000009.safetensors", -1)
    save(tmp_path, 7, {"x": torch.tensor([7.0])}, keep=1)
    state = latest(tmp_path)
    assert state["step"] == 7 and torch.equal(state["x"], torch.tensor([7.0]))


# -- no pickle ----------------------------------------------------------------------------------


def test_files_are_safetensors_and_json_without_pickle(tmp_path: Path, monkeypatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "dump", forbidden)
    monkeypatch.setattr(pickle, "dumps", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch, "save", forbidden)

    state = sample_state()
    save(tmp_path, 4, state)
    back = latest(tmp_path)
    back.pop("step")
    assert_same(state, back)

    weights = tmp_path / "step-000000004.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        names = set(f.keys())
        by_path = {n.split(":", 1)[1]: n for n in names}  # names are "<index>:<path>"
        assert "/weights/f32" in by_path and "/opt/state/0/exp_avg" in by_path
        assert torch.equal(f.get_tensor(by_path["/weights/f32"]), state["weights"]["f32"])
        assert torch.equal(f.get_tensor(by_path["/weights/u8"]), state["weights"]["u8"])
        assert f.get_tensor(by_path["/weights/bf16"]).dtype == torch.bfloat16
    assert len(names) == 14
    meta = json.loads((tmp_path / "step-000000004.json").read_text(encoding="utf-8"))
    assert meta["format"] == checkpoint.FORMAT and meta["version"] == checkpoint.VERSION
    assert meta["step"] == 4 and meta["weights"] == weights.name and len(meta["sha256"]) == 64
