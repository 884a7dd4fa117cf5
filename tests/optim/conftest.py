"""Shared fixtures: every optimizer test runs on both update paths (numba-fused and numpy)."""

import importlib.util

import pytest

from gradwell.optim import _fused

HAVE_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(
    params=[
        pytest.param("fused", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")),
        "numpy",
    ]
)
def backend(request):
    """Run the test with the numba kernels, then with the numpy formulation."""
    previous = _fused.set_enabled(request.param == "fused")
    assert _fused.available() == (request.param == "fused")
    yield request.param
    _fused.set_enabled(previous)
