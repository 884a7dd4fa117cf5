import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def housing_like(rng):
    """A small dict of columns shaped like the California housing features."""
    n = 400
    return {
        "longitude": rng.uniform(-124.3, -114.3, n),
        "latitude": rng.uniform(32.5, 42.0, n),
        "total_rooms": rng.lognormal(7.6, 0.8, n),
        "median_income": rng.gamma(4.0, 1.0, n),
    }
