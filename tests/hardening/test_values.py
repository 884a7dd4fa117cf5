"""Values a model cannot take are refused where they enter, naming the place: text at a
layer's input, targets outside a loss's range, CSV cells that do not fit float32."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.data.csv import CSVFormatError
from gradwell.data.datasets import load_csv


@pytest.mark.parametrize(
    "layer",
    [
        gw.nn.Linear(2, 2, rng=0),
        gw.nn.BatchNorm1d(2),
        gw.nn.Dropout(0.5, rng=0),
        gw.nn.Sequential(gw.nn.Linear(2, 2, rng=0)),
    ],
    ids=["Linear", "BatchNorm1d", "Dropout", "Sequential"],
)
@pytest.mark.parametrize(
    "x, message",
    [
        (np.array([["1", "2"], ["3", "4"]]), "expected numbers; got text"),  # numeric strings
        ([["1", "2"], ["3", "4"]], "expected numbers; got text"),
        (np.array([[1.0, None], [2.0, 3.0]]), "expected numbers; got Python objects"),
        ([[1.0, 2.0], [3.0]], "expected a rectangular array"),
    ],
)
def test_a_layer_refuses_what_is_not_numbers(layer, x, message):
    with pytest.raises((TypeError, ValueError), match=message) as err:
        layer(x)
    assert "input" in str(err.value)


def test_gw_tensor_refuses_text_even_with_a_float_dtype():
    with pytest.raises(TypeError, match="gw.tensor: expected numbers; got text"):
        gw.tensor(["1.5", "2"], dtype="float32")
    assert gw.tensor([True, False]).dtype == np.bool_  # numbers of every kind still work


@pytest.mark.parametrize("like", [gw.tensor(False), gw.tensor(3)])
def test_an_integer_beyond_64_bits_next_to_a_tensor_is_refused(like):
    # Found by the fuzz: a bool tensor plus -2**63 - 1 built an object array the op then crashed on.
    # (numpy's own OverflowError where the tensor's integer dtype is asked to hold it)
    with pytest.raises((ValueError, OverflowError), match="64 bits|too large"):
        _ = like + (-(2**63) - 1)
    assert (like + 2**62).data.dtype.kind in "iu"


@pytest.mark.parametrize(
    "target, message",
    [
        ([[2.0], [0.0]], r"got 2 at row 0, column 0"),
        ([[1.0], [-1.0]], r"got -1 at row 1, column 0"),
        ([[np.nan], [1.0]], r"got nan at row 0"),
    ],
)
def test_bce_with_logits_targets_are_probabilities(target, message):
    loss = gw.nn.BCEWithLogitsLoss()
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss: expected targets in \[0, 1\]"):
        loss(gw.tensor([[1.0], [2.0]]), gw.tensor(target))
    with pytest.raises(ValueError, match=message):
        loss(gw.tensor([[1.0], [2.0]]), np.array(target))


def test_soft_bce_targets_are_fine():
    loss_fn = gw.nn.BCEWithLogitsLoss(reduction="sum")
    assert loss_fn(gw.tensor([0.0, 0.0]), gw.tensor([0.25, 1.0])).item() > 0
    assert repr(loss_fn) == "BCEWithLogitsLoss(reduction='sum')"


@pytest.mark.parametrize(
    "target, message",
    [
        ([[-0.5, 1.5]], "class probabilities >= 0; got -0.5 at row 0, column 0"),
        ([[0.2, 0.2]], "row 0 sums to 0.4"),
        ([[0.5, 0.5], [0.7, 0.7]], "row 1 sums to 1.4"),
        ([[np.nan, 1.0]], "class probabilities >= 0; got nan"),
    ],
)
def test_cross_entropy_probability_targets(target, message):
    with pytest.raises(ValueError, match=message):
        gw.nn.CrossEntropyLoss()(gw.zeros(len(target), 2), gw.tensor(target))


def test_cross_entropy_accepts_true_distributions_and_labels():
    ce = gw.nn.CrossEntropyLoss(label_smoothing=0.1)
    assert np.isfinite(ce(gw.zeros(2, 3), gw.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])).item())
    assert np.isfinite(ce(gw.zeros(2, 3), [2, 0]).item())


@pytest.mark.parametrize(
    "cell",
    ["1e39", "-1e39", "inf", "-inf", "Infinity", "1e400"],
)
def test_csv_cells_beyond_float32_are_bad_cells(tmp_path, cell):
    path = tmp_path / "t.csv"
    path.write_text(f"a,b,y\n1,2,0\n3,{cell},1\n")
    with pytest.raises(
        CSVFormatError, match=rf"t.csv: .* column 'b', got '{cell}' in data row 1 \(line 3\)"
    ):
        load_csv(path, target="y")
    path.write_text(f"a,y\n1,0.5\n3,{cell}\n")
    with pytest.raises(CSVFormatError, match="column 'y'"):
        load_csv(path, target="y")


def test_csv_missing_cells_still_read_as_nan(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,nan\n3,\n3.4e38,NA\n")
    X = load_csv(path).X
    assert np.isnan(X[:, 1]).all() and np.isfinite(X[:, 0]).all()


def test_latin1_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "cities.csv"
    path.write_bytes(b"name,value\nparis,1\nmontr\xe9al,2\n")
    with pytest.raises(
        CSVFormatError, match=r"cities.csv: line 3 holds the byte 0xe9, .* not UTF-8"
    ):
        load_csv(path)


def test_an_overlong_field_names_the_file_and_line(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text('a,b\n1,2\n3,"' + "x" * 200_000 + '"\n')
    with pytest.raises(CSVFormatError, match=r"big.csv: cannot read line 3: a field longer than"):
        load_csv(path)
