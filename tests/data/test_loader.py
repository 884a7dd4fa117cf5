"""DataLoader, TensorDataset and train_test_split."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.data import DataLoader, TensorDataset, train_test_split


def _data(n=10, d=3):
    X = np.arange(n * d, dtype=np.float64).reshape(n, d)
    y = np.arange(n, dtype=np.int64)
    return X, y


def test_batches_cover_every_example_once_in_order_without_shuffle():
    X, y = _data(10)
    batches = list(DataLoader((X, y), batch_size=4))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([yb.data for _, yb in batches]), y)
    assert np.array_equal(np.concatenate([xb.data for xb, _ in batches]), X.astype(np.float32))


def test_batches_are_tensors_float64_features_become_float32_labels_stay_int64():
    X, y = _data(6)
    xb, yb = next(iter(DataLoader((X, y), batch_size=6)))
    assert isinstance(xb, gw.Tensor) and isinstance(yb, gw.Tensor)
    assert xb.dtype == np.float32 and yb.dtype == np.int64
    assert not xb.requires_grad


def test_drop_last_and_len():
    X, y = _data(10)
    assert len(DataLoader((X, y), batch_size=4)) == 3
    loader = DataLoader((X, y), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [len(yb) for _, yb in loader] == [4, 4]
    assert len(DataLoader((X, y), batch_size=None)) == 1


def test_shuffle_is_a_permutation_that_changes_each_epoch_and_rows_stay_paired():
    X, y = _data(50)
    loader = DataLoader((X, y), batch_size=8, shuffle=True, seed=3)
    orders = []
    for _ in range(2):
        xs, ys = zip(*[(xb.data, yb.data) for xb, yb in loader])
        order = np.concatenate(ys)
        assert sorted(order.tolist()) == list(range(50))
        # each feature row still belongs to its label: row i of X is 3i, 3i+1, 3i+2
        assert np.array_equal(np.concatenate(xs)[:, 0], 3 * order)
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], np.arange(50))


def test_same_seed_same_order_different_seed_different_order():
    X, y = _data(40)

    def first_epoch(seed):
        return np.concatenate([yb.data for _, yb in DataLoader((X, y), 5, shuffle=True, seed=seed)])

    assert np.array_equal(first_epoch(7), first_epoch(7))
    assert not np.array_equal(first_epoch(7), first_epoch(8))


def test_order_of_an_epoch_depends_only_on_seed_and_epoch():
    X, y = _data(30)
    a = DataLoader((X, y), batch_size=4, shuffle=True, seed=1)
    for _ in range(3):  # run through epochs 0, 1, 2
        list(a)
    b = DataLoader((X, y), batch_size=4, shuffle=True, seed=1)
    b.set_epoch(3)
    ya = np.concatenate([yb.data for _, yb in a])
    yb_ = np.concatenate([yb.data for _, yb in b])
    assert np.array_equal(ya, yb_)
    assert a.epoch == b.epoch == 4


def test_state_dict_round_trip_continues_the_same_sequence():
    X, y = _data(20)
    a = DataLoader((X, y), batch_size=4, shuffle=True)  # fresh entropy
    list(a)
    b = DataLoader((X, y), batch_size=4, shuffle=True, seed=123)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(
        np.concatenate([t.data for _, t in a]), np.concatenate([t.data for _, t in b])
    )


def test_generator_seed_is_accepted():
    X, y = _data(20)
    a = DataLoader((X, y), 4, shuffle=True, seed=np.random.default_rng(5))
    b = DataLoader((X, y), 4, shuffle=True, seed=np.random.default_rng(5))
    assert np.array_equal(
        np.concatenate([t.data for _, t in a]), np.concatenate([t.data for _, t in b])
    )


def test_generic_dataset_is_collated():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float64), i

    (xb, yb), (xb2, yb2) = list(DataLoader(Squares(), batch_size=3))
    assert np.array_equal(xb.data, [[0, 0], [1, 1], [2, 4]])
    assert xb.dtype == np.float32
    assert np.array_equal(yb2.data, [3, 4])


def test_tensor_dataset_errors_name_the_mismatch():
    with pytest.raises(ValueError, match="same number of rows.*array 0: 3, array 1: 2"):
        TensorDataset(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="batch_size >= 1"):
        DataLoader((np.zeros((3, 2)), np.zeros(3)), batch_size=0)
    with pytest.raises(TypeError, match="seed"):
        DataLoader((np.zeros((3, 2)), np.zeros(3)), shuffle=True, seed="x")
    with pytest.raises(TypeError, match="DataLoader: expected"):
        DataLoader(42)


# ----------------------------------------------------------------- split
def test_split_sizes_partition_and_pairing():
    X, y = _data(25)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0)
    assert len(y_te) == 5 and len(y_tr) == 20  # ceil(0.2 * 25)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(25))
    assert np.array_equal(X_tr[:, 0], 3 * y_tr) and np.array_equal(X_te[:, 0], 3 * y_te)
    assert X_tr.dtype == np.float64  # the split keeps the caller's arrays' dtypes
    X_tr2, *_ = train_test_split(X, y, test_size=0.2, seed=0)
    assert np.array_equal(X_tr, X_tr2)
    assert len(train_test_split(X, test_size=7, seed=0)[1]) == 7


def test_stratified_split_keeps_class_proportions():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [100, 60, 40])
    rng.shuffle(y)
    X = np.arange(len(y))
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.25, seed=1, stratify=y)
    # 25% of each class exactly: 25, 15, 10 in test
    assert np.bincount(y_te).tolist() == [25, 15, 10]
    assert np.bincount(y_tr).tolist() == [75, 45, 30]


def test_stratified_split_rounds_by_largest_remainder():
    y = np.repeat([0, 1], [7, 3])
    _, _, _, y_te = train_test_split(np.arange(10), y, test_size=0.5, seed=0, stratify=True)
    # exact shares 3.5 and 1.5: 5 test rows, floors 3 + 1, one extra to a tied class
    counts = np.bincount(y_te, minlength=2).tolist()
    assert sum(counts) == 5 and counts in ([4, 1], [3, 2])


def test_split_errors():
    X, y = _data(10)
    with pytest.raises(ValueError, match="fraction in \\(0, 1\\)"):
        train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="at least 2 examples of every class"):
        train_test_split(X, np.array([0] * 9 + [1]), stratify=True)
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        train_test_split(X, y[:9])
