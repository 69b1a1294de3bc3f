"""A CPU stand-in for CUDA graph capture, for tests: records the operators a function runs once
and replays them on the same tensors.

Like a CUDA graph, the replay repeats what the capture ran, on the tensors it ran on: Python
values read during capture (a learning rate as a float, a step count) stay as they were, tensors
allocated inside are made afresh each replay, and tensors from outside are read and written in
place. Reading a tensor's value on the host during capture (``float(t)``, ``.item()``) raises,
as it would break a CUDA capture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map


class HostRead(RuntimeError):
    """A tensor's value was read on the host during capture."""


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, Any, Any]] = []
        self.made: dict[int, tuple[int, int]] = {}  # id of a tensor made inside -> its slot
        self.keep: list[torch.Tensor] = []  # (so no id is reused while recording)

    def _ref(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            slot = self.made.get(id(x))
            return ("made", slot) if slot is not None else ("outside", x)
        return ("value", x)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            raise HostRead(f"{func} read a tensor's value on the host")
        out = func(*args, **kwargs)
        refs = (tree_map(self._ref, args), tree_map(self._ref, kwargs))
        k = len(self.ops)
        self.ops.append((func, *refs))
        leaves, _ = tree_flatten(out)
        for j, leaf in enumerate(leaves):
            if isinstance(leaf, torch.Tensor) and id(leaf) not in self.made:
                self.made[id(leaf)] = (k, j)
                self.keep.append(leaf)
        return out


def tape_capture(fn: Callable[[], Any]) -> Callable[[], None]:
    """Run ``fn`` once, recording its operators; returns their replay."""
    rec = _Recorder()
    with rec:
        fn()
    ops = rec.ops

    def replay() -> None:
        made: dict[tuple[int, int], torch.Tensor] = {}

        def resolve(ref: Any) -> Any:
            kind, x = ref
            return made[x] if kind == "made" else x

        def is_ref(x: Any) -> bool:
            return isinstance(x, tuple) and len(x) == 2 and x[0] in ("made", "outside", "value")

        with torch.no_grad():  # (the operators recorded are below autograd: backward's too)
            for k, (func, args, kwargs) in enumerate(ops):
                a = tree_map(resolve, args, is_leaf=is_ref)
                kw = tree_map(resolve, kwargs, is_leaf=is_ref)
                leaves, _ = tree_flatten(func(*a, **kw))
                for j, leaf in enumerate(leaves):
                    made[(k, j)] = leaf

    return replay
