"""Embedding + LSTM learns a sequence task end to end: does token 7 appear among 10 tokens?

Half the sequences hold a 7 at a random place; the others hold none. A bag-of-tokens
linear model could also learn this; the point is that gradients flow through the
embedding lookup and the recurrence over time, in several seeds, in well under a second
each.
"""

import numpy as np
import pytest
from nn.token_tasks import train_and_score

import gradwell as gw

VOCAB, LENGTH, TOKEN = 10, 10, 7


def sequences(n, rng):
    ids = rng.integers(1, VOCAB, (n, LENGTH))
    ids[ids == TOKEN] = TOKEN + 1
    has = rng.random(n) < 0.5
    ids[has, rng.integers(0, LENGTH, n)[has]] = TOKEN
    return ids, has.astype(np.int64)


class Classifier(gw.nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.embed = gw.nn.Embedding(VOCAB, 8, rng=rng)
        self.lstm = gw.nn.LSTM(8, 16, batch_first=True, rng=rng)
        self.head = gw.nn.Linear(16, 2, rng=rng)

    def forward(self, ids):
        _, (h_n, _) = self.lstm(self.embed(ids))
        return self.head(h_n[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedding_and_lstm_learn_whether_a_token_appears(seed):
    rng = np.random.default_rng(seed)
    train, test = sequences(1200, rng), sequences(400, rng)
    accuracy = train_and_score(Classifier(rng), train, test, rng, epochs=3, batch_size=32, lr=0.01)
    assert accuracy >= 0.97, f"seed {seed}: test accuracy {accuracy:.3f}"
