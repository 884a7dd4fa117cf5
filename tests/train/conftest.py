"""Tiny synthetic problems and models for the training tests (fast: a few ms per fit)."""

import numpy as np
import pytest

import gradwell as gw


def make_blobs(n=96, seed=0):
    """Two Gaussian blobs in 2-D: label 1 where x0 + x1 > 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def make_model(seed=0, dropout=0.0, batchnorm=False):
    """2-16-2 ReLU MLP, optionally with BatchNorm1d and Dropout; all randomness from seed."""
    gen = np.random.default_rng(seed)
    layers = [gw.nn.Linear(2, 16, rng=gen)]
    if batchnorm:
        layers.append(gw.nn.BatchNorm1d(16))
    layers.append(gw.nn.ReLU())
    if dropout:
        layers.append(gw.nn.Dropout(dropout, rng=gen))
    layers.append(gw.nn.Linear(16, 2, rng=gen))
    return gw.nn.Sequential(*layers)


@pytest.fixture
def blobs():
    return make_blobs()


@pytest.fixture(name="make_model")
def make_model_fixture():
    return make_model
