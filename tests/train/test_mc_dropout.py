"""Monte Carlo dropout: passes differ, and uncertainty is higher where the model is wrong."""

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn
from gradwell.train.predict import predictive_entropy


def test_passes_sample_dropout_and_leave_modes_alone():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    X = np.random.default_rng(0).normal(size=(8, 4))
    passes = gw.predict(model, X, mc_dropout=6)
    assert passes.shape == (6, 8, 3) and not np.allclose(passes[0], passes[1])
    assert model.training  # predict restored the mode it found
    np.testing.assert_allclose(gw.predict_proba(model, X).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="needs a model with Dropout layers"):
        gw.predict(nn.Linear(4, 2), X, mc_dropout=3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uncertainty_is_higher_on_misclassified_rows(seed):
    # Two overlapping blobs: the rows near the boundary are both the uncertain and the wrong ones.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 600)
    X = (rng.normal(size=(600, 2)) + 1.2 * (2 * y[:, None] - 1)).astype(np.float32)
    model = nn.Sequential(
        nn.Linear(2, 32, rng=rng), nn.ReLU(), nn.Dropout(0.3, rng=rng), nn.Linear(32, 2, rng=rng)
    )
    opt = gw.optim.Adam(model.parameters(), lr=1e-2)
    gw.fit(model, (X[:400], y[:400]), loss="cross_entropy", optimizer=opt, epochs=10,
           seed=seed, verbose=0, doctor=False)  # fmt: skip
    probs = gw.predict_proba(model, X[400:], mc_dropout=20)
    entropy = predictive_entropy(probs)
    wrong = probs.argmax(axis=1) != y[400:]
    assert 0 < wrong.sum() < 100
    assert entropy[wrong].mean() > entropy[~wrong].mean() + 0.1
