"""The replay's paths through a loss that refuses a non-finite output or hides one, and the
helpers it reads the model and the anomaly with, against their definitions."""

import math
import warnings

import pytest
import torch
from torch import nn

from gradwell.torch.replay import _anomaly, _finite, _named_parameters, replay_nonfinite


class LogOfRelu(nn.Module):
    """log of a ReLU output: -inf wherever the ReLU is 0 (the forward makes it)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.inner = nn.Linear(n, n)

    def forward(self, x):
        return torch.log(torch.relu(self.inner(x)))  # the log line


def sick_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), LogOfRelu(8), nn.Linear(8, 3))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)


def refusing(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A loss that checks its input (as BCELoss checks its range) and raises."""
    if not bool(torch.isfinite(out).all()):
        raise ValueError("the loss refuses inf and NaN")
    return nn.functional.cross_entropy(out, y)


def hiding(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A loss that comes out finite whatever the output holds."""
    return nn.functional.cross_entropy(out.nan_to_num(0.0, 0.0, 0.0), y)


@pytest.mark.parametrize("loss_fn", [refusing, hiding], ids=["refusing", "hiding"])
def test_a_nonfinite_output_is_found_in_the_forward_whatever_the_loss_makes_of_it(loss_fn):
    x, y = batch()
    anomaly, note = replay_nonfinite(sick_model(), x, y, loss_fn)
    assert anomaly is not None, note
    assert anomaly["phase"] == "forward" and anomaly["op"] == "log" and anomaly["module"] == "1"
    assert anomaly["input_ranges"][0][0] == 0.0 and "the log line" in anomaly["code"]


def test_a_loss_that_raises_on_a_finite_output_is_reported():
    x, y = batch()
    model = nn.Sequential(nn.Linear(4, 3))

    def broken(out, target):
        raise ValueError("a bug in the loss")

    anomaly, note = replay_nonfinite(model, x, y, broken)
    assert anomaly is None and "Replaying the batch failed" in note and "a bug in the loss" in note


def test_a_nonfinite_batch_behind_a_finite_loss_names_nothing():
    # every module receives NaN (none makes it) and the loss hides it: the gradients are
    # NaN, but it is the forward's output that is not finite, and no module is to blame
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = batch()
    x[3, 1] = math.nan
    anomaly, note = replay_nonfinite(model, x, y, hiding)
    assert anomaly is None and "produced no non-finite value" in note


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 4, bias=False)  # (its bias is registered as None)
        self.block = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 4)
        self.head.weight = self.embed.weight  # tied: one parameter under two names
        self.block[0].bias.requires_grad_(False)


def test_the_parameters_read_off_the_modules_are_named_parameters():
    model = Tied()
    named = _named_parameters(dict(model.named_modules()))
    assert [(n, id(p)) for n, p in named] == [(n, id(p)) for n, p in model.named_parameters()]


def test_the_finiteness_of_one_element_tensors_is_read_without_a_warning():
    cases = [torch.tensor(math.nan), torch.tensor([-math.inf]), torch.tensor([[3e38]]),
             torch.tensor(6e4, dtype=torch.float16), torch.tensor(2.0, requires_grad=True) * 3,
             torch.tensor([5]), torch.zeros(0)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [_finite(t) for t in cases] == [False, False, True, True, True, True, True]


def test_the_anomaly_reads_each_input_range_and_the_output_counts_as_defined():
    inf, nan = math.inf, math.nan
    ins = [
        torch.tensor([[-2.0, 0.5], [3.0, 1.0]], requires_grad=True),
        torch.tensor([inf, -1.0, 4.0, nan]),  # the range of its finite values
        torch.tensor([nan, inf]),  # none finite
        torch.arange(3, 9),  # integers
        torch.zeros(0),  # empty
        torch.tensor([1.5, -6e4], dtype=torch.float16),
        torch.tensor([0.1, 0.7], dtype=torch.float64),
    ]
    outs = [torch.tensor([nan, inf, -inf, 1.0]), torch.tensor([[nan, 2.0]]), torch.arange(2)]
    a = _anomaly("backward", "__truediv__", "m", ins, outs, "x.py:1: y")
    assert a["input_ranges"] == [[-2.0, 3.0], [-1.0, 4.0], None, [3.0, 8.0], None,
                                 [-6e4, 1.5], [0.1, 0.7]]  # fmt: skip
    assert a["input_shapes"] == [[2, 2], [4], [2], [6], [0], [2], [2]]
    assert a["nonfinite"] == {"nan": 2, "inf": 2}
    assert (a["phase"], a["op"], a["module"], a["code"]) == ("backward", "div", "m", "x.py:1: y")
    assert a["details"] == {"torch_op": "__truediv__"}
    assert _anomaly("forward", "log", None, [], [], "?")["nonfinite"] == {"nan": 0, "inf": 0}


@pytest.mark.parametrize("clones", ["foreach", "each"])
def test_the_replay_puts_the_buffers_and_the_random_state_back_whichever_way_it_clones(
    clones, monkeypatch
):
    import gradwell.torch.replay as replay

    if clones == "each":  # a torch without torch._foreach_clone
        monkeypatch.setattr(replay, "_clones", replay._each_cloned)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), LogOfRelu(8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch()
    rng = torch.random.get_rng_state()
    anomaly, note = replay_nonfinite(model, x, y, hiding)
    assert anomaly is not None and anomaly["op"] == "log", note
    assert all(v.equal(model.state_dict()[k]) for k, v in before.items())
    assert torch.random.get_rng_state().equal(rng)
