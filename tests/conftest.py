"""Settings for the whole test session.

On a machine with a GPU, ``train.device = "auto"`` resolves to the CPU in the tests, so the
suite checks the same steps (fused, generic, their names and numbers) on every machine. The
tests of device resolution (``test_devices.py``) and the tests that ask for CUDA (``cuda`` in
their names) see the machine as it is. On a machine without a GPU this changes nothing.
"""

from __future__ import annotations

import pytest

from gankit.training import devices


@pytest.fixture(autouse=True)
def _auto_is_the_cpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "cuda" in request.node.name or request.node.path.name == "test_devices.py":
        return
    monkeypatch.setattr(devices, "cuda_count", lambda: 0)
