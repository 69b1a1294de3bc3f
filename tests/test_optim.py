"""gankit's Adam: torch's updates bit for bit, torch's state format, no compiler at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gankit.optim import Adam


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=g))
            for shape in [(7, 5), (5,), (3, 2, 4)]]


def _train(opt: object, params: list[torch.nn.Parameter], steps: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


@pytest.mark.parametrize("fused", [True, False])
def test_updates_are_torchs_bit_for_bit(fused: bool) -> None:
    mine, theirs = _params(), _params()
    kw = {"fused": True} if fused else {"foreach": True}
    ref = torch.optim.Adam(theirs, lr=3e-3, betas=(0.5, 0.99), eps=1e-7, **kw)
    opt = Adam(mine, lr=3e-3, betas=(0.5, 0.99), eps=1e-7, fused=fused)
    assert bool(opt.param_groups[0]["fused"]) is fused
    _train(opt, mine, 25)
    _train(ref, theirs, 25)
    for a, b in zip(mine, theirs, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(mine, theirs, strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[a][key].cpu(), ref.state[b][key].cpu())


def test_a_learning_rate_change_takes_effect_like_torchs() -> None:
    mine, theirs = _params(), _params()
    opt, ref = Adam(mine, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=True)
    _train(opt, mine, 3)
    _train(ref, theirs, 3)
    opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 1e-4
    _train(opt, mine, 3, seed=2)
    _train(ref, theirs, 3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))


def _torch_adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, fused=True)


@pytest.mark.parametrize("written_by", [_torch_adam, Adam])
def test_state_dicts_load_across(written_by) -> None:
    """A state written by either Adam continues bitwise in both (lr comes with the state)."""
    a = _params()
    first = written_by(a, lr=2e-3)
    _train(first, a, 4)
    cont = [[torch.nn.Parameter(p.detach().clone()) for p in a] for _ in range(2)]
    later = [_torch_adam(cont[0], lr=5.0), Adam(cont[1], lr=5.0)]
    for opt in later:  # both before either trains: torch's Adam may keep the saved tensors
        opt.load_state_dict(first.state_dict())
        assert opt.param_groups[0]["lr"] == 2e-3
    for opt, params in zip(later, cont, strict=True):
        _train(opt, params, 5, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(*cont, strict=True))


def test_state_dict_is_a_copy_on_load_and_refuses_what_does_not_fit() -> None:
    params = _params()
    opt = Adam(params, lr=1e-3)
    _train(opt, params, 2)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    other = Adam(_params(), lr=1e-3)
    other.load_state_dict(sd)
    first = other.param_groups[0]["params"][0]
    sd["state"][0]["exp_avg"].add_(1.0)  # the loaded state does not alias the dict's tensors
    assert not torch.equal(other.state[first]["exp_avg"], sd["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match="does not fit"):
        Adam(_params()[:2], lr=1e-3).load_state_dict(opt.state_dict())
    amsgrad = torch.optim.Adam(_params(), lr=1e-3, amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad"):
        Adam(_params(), lr=1e-3).load_state_dict(amsgrad.state_dict())


def test_zero_grad_and_parameters_without_gradients() -> None:
    params = _params()
    opt = Adam(params, lr=1e-2)
    params[0].grad = torch.ones_like(params[0])
    before = [p.detach().clone() for p in params]
    opt.step()  # only the parameter with a gradient moves, and only it gets state
    assert not torch.equal(params[0], before[0])
    assert torch.equal(params[1], before[1]) and torch.equal(params[2], before[2])
    assert list(opt.state_dict()["state"]) == [0]
    opt.zero_grad(set_to_none=False)
    assert torch.equal(params[0].grad, torch.zeros_like(params[0]))
    opt.zero_grad()
    assert params[0].grad is None
    with pytest.raises(ValueError):
        Adam([], lr=1e-3)
    with pytest.raises(ValueError):
        Adam(_params(), lr=1e-3, betas=(1.0, 0.999))


def test_training_never_imports_the_compiler(tmp_path) -> None:
    """torch.optim's first call imports torch._dynamo (seconds of start-up); gankit's
    training, sampling and checkpointing never do."""
    code = ("import sys; from gankit.cli import main; "
            f"rc = main(['train', '--out', {str(tmp_path / 'run')!r}, '--steps', '3', "
            "'--quiet', '--set', 'train.checkpoint_every=2']); "
            "assert rc == 0, rc; "
            "print('dynamo' if 'torch._dynamo' in sys.modules else 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"
