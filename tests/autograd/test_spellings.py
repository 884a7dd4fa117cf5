"""numpy's argument names (axis=, keepdims=) and PyTorch's (dim=, keepdim=) alike, on the
gw.* functions and the Tensor methods, through the one helper torch_spelling."""

import numpy as np
import pytest

import gradwell as gw


def test_functions_and_methods_take_either_spelling_with_the_same_result():
    x = gw.tensor(np.arange(12.0).reshape(3, 4))
    pairs = [
        (gw.sum(x, axis=1, keepdims=True), gw.sum(x, dim=1, keepdim=True)),
        (x.mean(axis=0), x.mean(dim=0)),
        (gw.std(x, axis=1, correction=0), x.std(dim=1, correction=0)),
        (gw.logsumexp(x, axis=-1), x.logsumexp(dim=-1)),
        (gw.cat([x, x], axis=1), gw.cat([x, x], dim=1)),
        (
            gw.gather(x, axis=1, index=np.zeros((3, 1), np.intp)),
            gw.gather(x, 1, np.zeros((3, 1), np.intp)),
        ),
        (gw.flatten(x.reshape(3, 2, 2), start_axis=1), x.reshape(3, 2, 2).flatten(start_dim=1)),
        (x.unsqueeze(axis=0), gw.unsqueeze(x, dim=0)),
        (gw.argmax(x, axis=1, keepdims=True), x.argmax(dim=1, keepdim=True)),
    ]
    for numpy_spelt, torch_spelt in pairs:
        assert numpy_spelt.shape == torch_spelt.shape
        np.testing.assert_array_equal(numpy_spelt.data, torch_spelt.data)
    assert gw.sum(x, dim=1, keepdim=True).shape == (3, 1)
    assert x.reshape(3, 2, 2).flatten(start_dim=1).shape == (3, 4)


def test_both_spellings_of_one_argument_is_an_error_naming_the_function():
    x = gw.ones((2, 3))
    with pytest.raises(TypeError, match=r"sum\(\): got both axis= .* and dim="):
        gw.sum(x, axis=0, dim=1)
    with pytest.raises(TypeError, match=r"Tensor.mean\(\): got both keepdims= .* and keepdim="):
        x.mean(keepdims=True, keepdim=True)
