"""One-hot encoding, imputation and the table preprocessor: fit on training data only,
saved as JSON, usable inside a scikit-learn Pipeline."""

import json

import numpy as np
import pytest

from gradwell.preprocessing import (
    ColumnMismatchError,
    Imputer,
    OneHotEncoder,
    TablePreprocessor,
    from_config,
)


def table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n)
    age[::7] = np.nan
    city = rng.choice(np.array(["paris", "rome", "oslo"], dtype=object), n)
    city[0] = "lima"  # one rare level
    city[3] = None
    return {"age": age, "city": city}


def test_one_hot_other_bucket_takes_rare_unseen_and_missing():
    enc = OneHotEncoder(min_frequency=0.05).fit({"city": table()["city"]})
    assert enc.levels_ == {"city": ["oslo", "paris", "rome"]}
    out = enc.transform({"city": np.array(["rome", "lima", "tokyo", None], dtype=object)})
    assert out.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert (out.sum(axis=1) == 1).all()


def test_imputer_learns_from_training_data_only():
    train = {"a": np.array([1.0, np.nan, 3.0, 5.0]), "c": np.array(["x", "x", None, "y"], object)}
    imp = Imputer(add_indicator=True).fit(train)
    out = imp.transform({"a": np.array([np.nan, 100.0]), "c": np.array([None, "z"], object)})
    assert out["a"].tolist() == [3.0, 100.0] and out["c"].tolist() == ["x", "z"]
    assert out["a_missing"].tolist() == [1.0, 0.0] and out["c_missing"].tolist() == [1.0, 0.0]
    assert Imputer("most_frequent").fit({"a": np.array([2.0, 2.0, 9.0])}).fill_values_ == {"a": 2.0}
    with pytest.raises(ValueError, match="every training cell is missing"):
        Imputer().fit({"a": np.array([np.nan, np.nan])})


def test_table_preprocessor_round_trips_through_json():
    train, test = table(seed=0), table(seed=1)
    pre = TablePreprocessor().fit(train)
    assert np.isfinite(pre.transform(test)).all()
    restored = from_config(json.loads(json.dumps(pre.to_config())))
    np.testing.assert_array_equal(restored.transform(test), pre.transform(test))
    assert restored.get_feature_names_out().tolist() == pre.get_feature_names_out().tolist()


def test_table_preprocessor_names_mismatched_columns():
    pre = TablePreprocessor().fit(table())
    with pytest.raises(ColumnMismatchError, match=r"missing \['city'\]; unexpected \['town'\]"):
        pre.transform({"age": table()["age"], "town": table()["city"]})


def test_inside_a_scikit_learn_pipeline():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    data = table(n=60)
    y = (np.nan_to_num(data["age"], nan=50.0) > 50).astype(int)
    pipe = make_pipeline(TablePreprocessor(), LogisticRegression())
    assert clone(pipe).fit(data, y).score(data, y) > 0.8
