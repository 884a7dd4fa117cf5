"""An optimizer's state no longer fits a parameter given data of another shape: an error
naming the parameter, never a write out of bounds in the fused kernels."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw

OPTIMIZERS = {
    "sgd-momentum": lambda ps: gw.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: gw.optim.Adam(ps, lr=0.1),
    "adamw": lambda ps: gw.optim.AdamW(ps, lr=0.1),
    "amsgrad": lambda ps: gw.optim.Adam(ps, lr=0.1, amsgrad=True),
    "rmsprop": lambda ps: gw.optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True),
    "adagrad": lambda ps: gw.optim.Adagrad(ps, lr=0.1),
    "adamax": lambda ps: gw.optim.Adamax(ps, lr=0.1),
    "nadam": lambda ps: gw.optim.NAdam(ps, lr=0.1),
    "radam": lambda ps: gw.optim.RAdam(ps, lr=0.1),
    "adadelta": lambda ps: gw.optim.Adadelta(ps),
}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("new_size", [64, 2, 400_000])
def test_new_data_of_another_shape_is_refused_before_the_kernel_runs(make, new_size):
    keep = gw.tensor(np.ones(3, np.float32), requires_grad=True)
    w = gw.tensor(np.ones(4, np.float32), requires_grad=True)
    w.name = "w"
    opt = make([keep, w])
    for p in (keep, w):
        p.grad = gw.tensor(np.ones(p.shape, np.float32))
    opt.step()
    w.data = np.ones(new_size, np.float32)
    w.grad = gw.tensor(np.ones(new_size, np.float32))
    before = keep.data.copy()
    with pytest.raises(ValueError, match=r"parameter 1 'w' of its group now has shape") as err:
        opt.step()
    assert f"({new_size},)" in str(err.value) and "(4,)" in str(err.value)
    # a fresh state for that parameter lets training go on
    del opt.state[w]
    opt.step()
    assert w.shape == (new_size,) and np.all(np.isfinite(w.data))
    assert not np.array_equal(keep.data, before)  # the other parameter moved on


def test_same_shape_new_data_keeps_its_state():
    w = gw.tensor(np.ones(4, np.float32), requires_grad=True)
    opt = gw.optim.Adam([w], lr=0.1)
    w.grad = gw.tensor(np.ones(4, np.float32))
    opt.step()
    w.data = w.data.astype(np.float32) * 2  # e.g. model.to(...), a reload: same shape
    opt.step()
    assert opt.state[w]["step"] == 2
