"""The replay's bulk finiteness check against the definition, tensor by tensor."""

import math

import pytest
import torch

from gradwell.torch.replay import _SMALL, _Checks, _finite_each


def cases(seed: int) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)

    def small(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    nan, inf = small(8, 3), small(5)
    nan[2, 1], inf[4] = math.nan, -math.inf
    big = small(_SMALL + 7)  # checked by its norm, not flattened
    big_nan, big_overflow = big.clone(), torch.full((_SMALL + 1,), 3e38)
    big_nan[_SMALL] = math.nan
    return [
        small(4, 4), nan, None, torch.arange(6), small(0), inf,
        torch.full((16,), 3e38),  # finite, but its sum (and the flattened sum) overflow
        torch.tensor([6e4, 6e4], dtype=torch.float16),  # finite, the float16 sum is inf
        torch.tensor([math.inf], dtype=torch.float16),
        big, big_nan, big_overflow, small(3).double(), small(2, 2).requires_grad_(),
    ]  # fmt: skip


def truth(tensors: list[torch.Tensor | None]) -> list[bool]:
    return [t is None or not t.is_floating_point() or bool(torch.isfinite(t).all())
            for t in tensors]  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bulk_check_says_of_each_tensor_whether_it_is_finite(seed):
    tensors = cases(seed)
    expected = truth(tensors)
    assert not all(expected) and any(expected)
    assert _finite_each(tensors) == expected
    for k in range(len(tensors)):  # each alone, and the finite ones together
        assert _finite_each(tensors[k : k + 1]) == expected[k : k + 1]
    finite = [t for t, ok in zip(tensors, expected) if ok]
    assert _finite_each(finite) == [True] * len(finite)
    assert _finite_each([]) == []


def test_queued_checks_answer_each_add_in_its_order():
    tensors = cases(3)
    expected = truth(tensors)
    checks = _Checks()
    first, second = checks.add(tensors[:5]), checks.add(tensors[5:])
    assert checks.finite(second) == expected[5:]
    third = checks.add(tensors[:2])  # queued after the first read
    assert checks.finite(first) == expected[:5]
    assert checks.finite(third) == expected[:2]


def test_the_bulk_check_groups_the_tensors_by_device_when_one_group_fails(monkeypatch):
    # (tensors on several devices: flattening them into one raises, as torch.cat does)
    import gradwell.torch.replay as replay

    flattened, calls = replay._flattened, []

    def on_several_devices(tensors):
        calls.append(len(tensors))
        if len(calls) == 1:
            raise RuntimeError("Expected all tensors to be on the same device")
        return flattened(tensors)

    monkeypatch.setattr(replay, "_flattened", on_several_devices)
    tensors = cases(4)
    assert _finite_each(tensors) == truth(tensors)
    assert len(calls) == 2 and calls[0] == calls[1]  # the one group again, as one device
