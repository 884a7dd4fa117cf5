import hashlib
import os
import urllib.request

import numpy as np
import pytest

from gradwell.data import datasets as D
from gradwell.data.csv import CSVFormatError

# ----------------------------------------------------------------------------- Dataset


def test_dataset_coerces_and_validates():
    ds = D.Dataset(
        np.ones((3, 2), dtype=np.float64), [0, 1, 1], ["a", "b"], ["n", "y"], "classification"
    )
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.n_classes == 2 and len(ds) == 3 and ds.n_features == 2
    with pytest.raises(ValueError, match="feature_names"):
        D.Dataset(np.ones((3, 2)), None, ["a"], [], "regression")
    with pytest.raises(ValueError, match="y with 3 rows"):
        D.Dataset(np.ones((3, 2)), np.zeros(2), ["a", "b"], ["t"], "regression")
    with pytest.raises(ValueError, match="task"):
        D.Dataset(np.ones((3, 2)), None, ["a", "b"], [], "clustering")
    with pytest.raises(ValueError, match="integer class labels"):
        D.Dataset(np.ones((2, 1)), [0.5, 1.0], ["a"], ["x", "y"], "classification")


def test_split_is_stratified_reproducible_and_disjoint():
    ds = D.load_wine()
    train, test = ds.split(0.25, seed=3)
    assert len(train) + len(test) == len(ds)
    counts = np.bincount(ds.y)
    np.testing.assert_array_equal(np.bincount(test.y), np.round(0.25 * counts).astype(int))
    again_train, again_test = ds.split(0.25, seed=3)
    np.testing.assert_array_equal(test.X, again_test.X)
    rows = {tuple(r) for r in train.X} & {tuple(r) for r in test.X}
    assert not rows
    with pytest.raises(ValueError, match="test_fraction"):
        ds.split(1.5)


def test_split_regression_and_generator_seed():
    ds = D.plane(n=100)
    train, test = ds.split(0.3, seed=np.random.default_rng(0))
    assert (len(train), len(test)) == (70, 30)


def test_columns_view_for_column_scaler():
    ds = D.load_iris()
    cols = ds.columns()
    assert list(cols) == list(ds.feature_names)
    np.testing.assert_array_equal(cols["petal width (cm)"], ds.X[:, 3])


# ------------------------------------------------------------------- scikit-learn data


@pytest.mark.parametrize(
    ("loader", "shape", "task", "n_classes"),
    [
        (D.load_iris, (150, 4), "classification", 3),
        (D.load_digits, (1797, 64), "classification", 10),
        (D.load_wine, (178, 13), "classification", 3),
        (D.load_breast_cancer, (569, 30), "classification", 2),
        (D.load_diabetes, (442, 10), "regression", 0),
    ],
)
def test_bundled_datasets_share_one_type(loader, shape, task, n_classes):
    ds = loader()
    assert isinstance(ds, D.Dataset)
    assert ds.X.shape == shape and ds.X.dtype == np.float32
    assert ds.task == task and ds.n_classes == n_classes
    assert len(ds.feature_names) == shape[1] and ds.description
    if task == "classification":
        assert ds.y.dtype == np.int64 and set(np.unique(ds.y)) == set(range(n_classes))
    else:
        assert ds.y.dtype == np.float32


def test_diabetes_raw_by_default():
    raw = D.load_diabetes()
    assert raw.X[:, 0].max() > 50  # age in years, not pre-scaled
    assert abs(D.load_diabetes(scaled=True).X[:, 0].mean()) < 1e-6


# ---------------------------------------------------------------------- 2-D synthetic

SYNTHETIC = [D.circle, D.xor, D.gaussians, D.spiral, D.plane, D.multi_gaussian]


@pytest.mark.parametrize("make", SYNTHETIC)
def test_synthetic_shape_seed_and_noise(make):
    a = make(n=201, noise=0.2, seed=7)
    assert a.X.shape == (201, 2) and a.X.dtype == np.float32 and a.feature_names == ("x1", "x2")
    b = make(n=201, noise=0.2, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = make(n=201, noise=0.2, seed=8)
    assert not np.array_equal(a.X, c.X)
    g = make(n=201, noise=0.2, seed=np.random.default_rng(7))
    assert g.X.shape == (201, 2)
    if a.task == "classification":
        assert sorted(np.bincount(a.y).tolist()) == [100, 101]
    assert np.abs(a.X).max() < 12


@pytest.mark.parametrize("make", SYNTHETIC)
def test_synthetic_argument_errors(make):
    with pytest.raises(ValueError, match="n to be an int"):
        make(n=1)
    with pytest.raises(ValueError, match="noise"):
        make(noise=-0.1)
    with pytest.raises(TypeError, match="seed"):
        make(seed="abc")


def test_gaussians_with_several_classes_put_each_cloud_on_its_own_angle():
    ds = D.gaussians(n=400, classes=4, seed=3)
    assert ds.n_classes == 4 and np.bincount(ds.y).tolist() == [100] * 4
    for j in range(4):
        centre = ds.X[ds.y == j].mean(axis=0)
        expected = 3.5 * np.array([np.cos(j * np.pi / 2), np.sin(j * np.pi / 2)])
        assert np.abs(centre - expected).max() < 0.2, (j, centre)
    np.testing.assert_array_equal(
        D.gaussians(n=50, seed=1).X, D.gaussians(n=50, seed=1, classes=2).X
    )
    with pytest.raises(ValueError, match="classes"):
        D.gaussians(classes=1)


def test_noise_free_geometry():
    c = D.circle(n=400, seed=1)
    r = np.hypot(c.X[:, 0], c.X[:, 1])
    assert r[c.y == 1].max() <= 2.5 + 1e-5 and r[c.y == 0].min() >= 3.5 - 1e-5
    x = D.xor(n=400, seed=1)
    assert np.all((x.X[:, 0] * x.X[:, 1] > 0) == (x.y == 1))
    assert np.abs(x.X).min() >= 0.3 - 1e-6
    p = D.plane(n=50, seed=1)
    np.testing.assert_allclose(p.y, p.X.sum(axis=1) / 12, atol=1e-6)
    s = D.spiral(n=300, seed=1)
    assert np.hypot(s.X[:, 0], s.X[:, 1]).max() <= 5.0


def test_noise_blurs_the_boundary():
    clean, noisy = D.circle(n=1000, seed=2), D.circle(n=1000, noise=0.5, seed=2)
    r_clean = np.hypot(*clean.X.T)
    r_noisy = np.hypot(*noisy.X.T)
    assert r_clean[clean.y == 1].max() < r_clean[clean.y == 0].min()
    assert r_noisy[noisy.y == 1].max() > r_noisy[noisy.y == 0].min()
    reg = D.multi_gaussian(n=500, noise=0.3, seed=0).y - D.multi_gaussian(n=500, seed=0).y
    assert 0.2 < reg.std() < 0.4


# --------------------------------------------------------------------------------- CSV


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_csv_quoted_header_target_and_columns(tmp_path):
    path = write(tmp_path, '"a","b","c","y"\n1,2,3,0.5\n4,5,6,1.5\n\n7,8,9,2.5\n')
    ds = D.load_csv(path, target="y")
    assert ds.feature_names == ("a", "b", "c") and ds.task == "regression"
    np.testing.assert_array_equal(ds.X, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(ds.y, [0.5, 1.5, 2.5])
    assert ds.target_names == ("y",)
    sub = D.load_csv(path, target=-1, columns=["c", "a"])
    np.testing.assert_array_equal(sub.X[:, 0], [3, 6, 9])
    assert D.load_csv(path).y is None and D.load_csv(path).n_features == 4


def test_load_csv_missing_cells_are_nan(tmp_path):
    path = write(tmp_path, "a,b\n1,\n NA ,2\n?,3\n")
    X = D.load_csv(path).X
    assert np.isnan(X[0, 1]) and np.isnan(X[1, 0]) and np.isnan(X[2, 0])


def test_load_csv_non_numeric_cell_names_row_line_and_column(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n5,abc\n")
    with pytest.raises(CSVFormatError, match=r"column 'b', got 'abc' in data row 2 \(line 4\)"):
        D.load_csv(path)


def test_load_csv_ragged_row(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5\n")
    with pytest.raises(CSVFormatError, match=r"expected 3 fields.*got 2 in data row 1 \(line 3\)"):
        D.load_csv(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "price"}, KeyError, "target column 'price'"),
        ({"target": 5}, KeyError, "index"),
        ({"columns": ["a", "zz"]}, KeyError, r"columns \['zz'\]"),
        ({"target": "a", "columns": ["a"]}, ValueError, "is the target"),
        ({"task": "ranking"}, ValueError, "task"),
    ],
)
def test_load_csv_argument_errors(tmp_path, kwargs, error, match):
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(error, match=match):
        D.load_csv(path, **kwargs)


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "header"), ("a,b\n", "at least one data row"), ("a,a\n1,2\n", "twice")],
)
def test_load_csv_bad_files(tmp_path, text, match):
    with pytest.raises(CSVFormatError, match=match):
        D.load_csv(write(tmp_path, text))


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        D.load_csv(tmp_path / "nope.csv")


def test_load_csv_class_targets(tmp_path):
    names = D.load_csv(write(tmp_path, "x,kind\n1,dog\n2,cat\n3,dog\n"), target="kind")
    assert names.task == "classification" and names.target_names == ("cat", "dog")
    np.testing.assert_array_equal(names.y, [1, 0, 1])
    ints = D.load_csv(write(tmp_path, "x,label\n1,3\n2,5\n3,3\n", "i.csv"), target="label")
    assert ints.task == "classification" and ints.target_names == ("3", "5")
    np.testing.assert_array_equal(ints.y, [0, 1, 0])
    forced = D.load_csv(write(tmp_path, "x,label\n1,3\n2,5\n", "f.csv"), "label", task="regression")
    assert forced.task == "regression"
    with pytest.raises(CSVFormatError, match=r"target column 'kind'"):
        D.load_csv(write(tmp_path, "x,kind\n1,2\n2,\n", "m.csv"), target="kind")
    with pytest.raises(CSVFormatError, match="integer class labels"):
        D.load_csv(write(tmp_path, "x,y\n1,0.5\n", "c.csv"), target="y", task="classification")


# ----------------------------------------------------------------- California housing

HEADER = ",".join(f'"{c}"' for c in D.CALIFORNIA_COLUMNS)
ROWS = [
    "-114.310000,34.190000,15.000000,5612.000000,1283.000000,1015.000000,472.000000,1.493600,66900.000000",
    "-114.470000,34.400000,19.000000,7650.000000,1901.000000,1129.000000,463.000000,1.820000,80100.000000",
    "-114.560000,33.690000,17.000000,720.000000,174.000000,333.000000,117.000000,1.650900,85700.000000",
]


@pytest.fixture
def small_california(tmp_path):
    path = tmp_path / "source" / "california_housing_train.csv"
    path.parent.mkdir()
    path.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n")
    return path


@pytest.fixture
def served(small_california, monkeypatch):
    """Point the train split's URL at a local file:// copy with its true checksum."""
    sha = hashlib.sha256(small_california.read_bytes()).hexdigest()
    files = dict(D.CALIFORNIA_FILES)
    files["train"] = (files["train"][0], small_california.as_uri(), sha)
    monkeypatch.setattr(D, "CALIFORNIA_FILES", files)
    return sha


def test_california_from_local_path(small_california):
    ds = D.load_california_housing(small_california)
    assert ds.X.shape == (3, 8) and ds.task == "regression"
    assert ds.feature_names == D.CALIFORNIA_COLUMNS[:-1]
    np.testing.assert_array_equal(ds.y, [66900, 80100, 85700])
    assert ds.name == "california_housing_train"


def test_california_rejects_other_columns(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(CSVFormatError, match="expected the columns"):
        D.load_california_housing(path)


def test_california_downloads_once_into_cache(served, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = D.load_california_housing(cache_dir=cache)
    assert len(ds) == 3
    assert (cache / "california_housing_train.csv").is_file()
    assert [p.name for p in cache.iterdir()] == ["california_housing_train.csv"]

    def no_network(*args, **kwargs):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert len(D.load_california_housing(cache_dir=cache)) == 3


def test_california_cache_from_environment(served, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADWELL_CACHE", str(tmp_path / "envcache"))
    D.load_california_housing()
    assert (tmp_path / "envcache" / "california_housing_train.csv").is_file()


def test_california_checksum_mismatch_keeps_nothing(served, tmp_path, monkeypatch):
    name, url, _ = D.CALIFORNIA_FILES["train"]
    monkeypatch.setitem(D.CALIFORNIA_FILES, "train", (name, url, "0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="expected sha256 0000"):
        D.load_california_housing(cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_california_corrupt_cache_is_replaced(served, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "california_housing_train.csv").write_text("garbage")
    assert len(D.load_california_housing(cache_dir=cache)) == 3
    with pytest.raises(OSError, match="delete it"):
        (cache / "california_housing_train.csv").write_text("garbage")
        D.load_california_housing(cache_dir=cache, download=False)


def test_california_no_download_and_no_network(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="download=False"):
        D.load_california_housing(cache_dir=tmp_path, download=False)
    name, _, sha = D.CALIFORNIA_FILES["test"]
    missing = (tmp_path / "nowhere.csv").as_uri()
    monkeypatch.setitem(D.CALIFORNIA_FILES, "test", (name, missing, sha))
    with pytest.raises(OSError, match="could not download.*path="):
        D.load_california_housing(split="test", cache_dir=tmp_path / "c")
    assert not any(p.name.endswith(".part") for p in (tmp_path / "c").iterdir())


def test_california_bad_split():
    with pytest.raises(ValueError, match="split"):
        D.load_california_housing(split="validation")


def test_default_cache_dir(monkeypatch):
    monkeypatch.delenv("GRADWELL_CACHE", raising=False)
    assert D.gradwell_cache_dir() == D.Path.home() / ".cache" / "gradwell"
    assert str(D.gradwell_cache_dir("x")) == "x"
    assert os.fspath(D.gradwell_cache_dir()).endswith("gradwell")
