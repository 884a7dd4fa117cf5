"""Initialisers: sample statistics match the documented formulas; fills are in place."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import init

FAN_OUT, FAN_IN = 300, 400  # 120000 samples: sample std is within ~0.5% of the true one


def filled(fn, **kwargs):
    t = gw.zeros(FAN_OUT, FAN_IN)
    assert fn(t, rng=0, **kwargs) is t  # returns the tensor it filled
    return t.numpy()


@pytest.mark.parametrize(
    "fn,kwargs,std",
    [
        (init.kaiming_uniform_, {}, math.sqrt(2 / FAN_IN)),
        (init.kaiming_normal_, {}, math.sqrt(2 / FAN_IN)),
        (init.kaiming_normal_, {"mode": "fan_out"}, math.sqrt(2 / FAN_OUT)),
        (
            init.kaiming_normal_,
            {"a": 0.2, "nonlinearity": "leaky_relu"},
            math.sqrt(2 / (1 + 0.04)) / math.sqrt(FAN_IN),
        ),
        (init.xavier_uniform_, {}, math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (init.xavier_normal_, {"gain": 5 / 3}, 5 / 3 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (init.normal_, {"mean": 1.0, "std": 0.3}, 0.3),
        (init.uniform_, {"a": -2.0, "b": 4.0}, 6 / math.sqrt(12)),
    ],
)
def test_sample_std_matches_the_formula(fn, kwargs, std):
    w = filled(fn, **kwargs)
    assert w.dtype == np.float32
    assert abs(w.std() / std - 1) < 0.02
    expected_mean = {"normal_": kwargs.get("mean", 0.0), "uniform_": 1.0}.get(fn.__name__, 0.0)
    assert abs(w.mean() - expected_mean) < 0.02 * std + 1e-3


def test_uniform_initialisers_respect_their_bounds():
    bound = math.sqrt(2) * math.sqrt(3 / FAN_IN)
    w = filled(init.kaiming_uniform_)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    w = filled(init.xavier_uniform_)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_constant_fills():
    t = gw.zeros(2, 3)
    np.testing.assert_array_equal(init.ones_(t).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(init.zeros_(t).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.constant_(t, 0.5).numpy(), np.full((2, 3), 0.5))


def test_same_seed_same_values_and_generators_advance():
    a, b = gw.zeros(4, 5), gw.zeros(4, 5)
    init.kaiming_normal_(a, rng=3)
    init.kaiming_normal_(b, rng=3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    gen = np.random.default_rng(0)
    init.normal_(a, rng=gen)
    init.normal_(b, rng=gen)
    assert not np.array_equal(a.numpy(), b.numpy())


def test_float64_and_non_contiguous_arrays_are_filled_in_place():
    t = gw.zeros(50, 60, dtype="float64")
    init.xavier_normal_(t, rng=0)
    assert t.dtype == np.float64 and t.numpy().std() > 0
    arr = np.zeros((60, 50), np.float32).T  # a transposed view
    init.normal_(arr, rng=0)
    assert arr.std() > 0.9


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.kaiming_uniform_(gw.zeros(5))
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(gw.zeros(2, 2), mode="fan_avg")


def test_calculate_gain_values():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("leaky_relu", 0.1) == math.sqrt(2 / 1.01)
