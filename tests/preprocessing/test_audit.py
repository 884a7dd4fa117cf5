import json

import numpy as np
import pytest

from gradwell.preprocessing import (
    AutoScaler,
    ColumnScaler,
    NonFiniteValueError,
    Pipeline,
    audit,
)


@pytest.fixture
def mixed(rng):
    n = 2000
    spiky = rng.normal(0, 1, n) * 10 + 50
    spiky[:5] = [5000, -4000, 9000, 7000, -6000]  # a handful of wild values
    return {
        "rooms": rng.lognormal(7.5, 0.9, n),  # heavy right tail, positive
        "latitude": rng.uniform(32.5, 42.0, n),  # bounded
        "onehot": rng.integers(0, 2, n).astype(float),  # already in [0, 1]
        "spiky": spiky,  # extreme outliers both sides
        "bell": rng.standard_t(4, n) * 3 + 10,  # mild tails
        "constant": np.full(n, 7.0),
    }


def test_recommendations_follow_the_rules(mixed):
    rec = audit(mixed).recommendations
    assert rec == {
        "rooms": "log -> linear",
        "latitude": "linear",
        "onehot": "none",
        "spiky": "clip(q=0.01,0.99) -> linear",
        "bell": "zscore",
        "constant": "none",
    }


def test_one_sided_outliers_clip_one_side(rng):
    x = rng.uniform(0, 1, 1000) * 10 - 20  # negative values: log does not apply
    x[0] = 500.0
    col = audit({"x": x})["x"]
    assert col.chain_string == "clip(q=0,0.99) -> linear"
    assert "99th" in col.reason


def test_statistics_match_numpy(rng):
    x = rng.gamma(2.0, 3.0, 999)
    x[:10] = 0
    x[10:20] = -1
    c = audit({"x": x})["x"]
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    assert c.count == 999 and c.nan_count == 0 and c.inf_count == 0
    assert c.min == x.min() and c.max == x.max()
    assert c.mean == pytest.approx(x.mean()) and c.std == pytest.approx(x.std())
    assert c.median == pytest.approx(med)
    expected_skew = np.mean((x - x.mean()) ** 3) / x.std() ** 3
    assert c.skewness == pytest.approx(expected_skew)
    out = np.mean((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr))
    assert c.outlier_fraction == pytest.approx(out)
    assert c.zero_fraction == pytest.approx(10 / 999)
    assert c.negative_fraction == pytest.approx(10 / 999)


def test_nan_and_inf_are_counted_not_fatal():
    x = np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 5.0])
    c = audit({"x": x, "y": np.arange(6.0)})["x"]
    assert (c.count, c.nan_count, c.inf_count) == (3, 1, 2)
    assert (c.min, c.max, c.mean) == (1.0, 5.0, 3.0)


def test_all_nan_column():
    c = audit({"x": np.full(4, np.nan)})["x"]
    assert c.count == 0 and c.chain_string == "none"
    assert "no finite values" in c.reason
    json.loads(audit({"x": np.full(4, np.nan)}).to_json())  # strict JSON even so


def test_scale_ratio_warnings(mixed):
    report = audit(mixed)
    flagged = {w.column for w in report.scale_ratio_warnings}
    # latitude spans ~9.5, onehot 1; rooms spans thousands: over 100x the smallest range.
    assert "rooms" in flagged and "spiky" in flagged
    assert "latitude" not in flagged and "constant" not in flagged
    w = next(w for w in report.scale_ratio_warnings if w.column == "rooms")
    assert w.reference == "onehot" and w.ratio > 100
    assert "rooms" in str(w)


def test_no_warnings_when_scales_are_similar(rng):
    assert audit(rng.normal(size=(100, 3))).scale_ratio_warnings == ()


def test_report_exports(mixed):
    report = audit(mixed)
    d = json.loads(report.to_json())
    assert d["n_rows"] == 2000
    assert [c["name"] for c in d["columns"]] == list(mixed)
    assert d["columns"][0]["chain"][0]["type"] == "LogScaler"
    assert d["scale_ratio_warnings"][0]["message"]
    assert report.to_dict()["columns"][1]["chain_string"] == "linear"
    assert report[0] is report["rooms"]
    with pytest.raises(KeyError, match="no column 'nope'"):
        report["nope"]


def test_table_is_aligned(mixed):
    text = str(audit(mixed))
    lines = text.splitlines()
    header, rule = lines[1], lines[2]
    table = lines[1 : 3 + len(mixed)]
    assert header.startswith("column") and set(rule) <= {"-", " "}
    # Every table row ends the numeric block at the same column as the header.
    ends = {line.index("recommended") for line in [header]}
    assert len({len(line[: next(iter(ends))]) for line in table}) == 1
    assert "rooms: heavy right tail" in text
    assert "scale warnings" in text


def test_make_chain_and_column_scaler(mixed):
    report = audit(mixed)
    assert isinstance(report["rooms"].make_chain(), Pipeline)
    cs = report.column_scaler()
    assert isinstance(cs, ColumnScaler)
    assert cs.fit(mixed).chains_["rooms"] == "log -> linear"


def test_audit_input_checks():
    with pytest.raises(ValueError, match="at least 1 row"):
        audit(np.empty((0, 2)))
    names = audit(np.ones((3, 2)) * [[1, 2]]).names
    assert names == ["x0", "x1"]
    assert audit(np.ones((3, 2)), feature_names=["a", "b"]).names == ["a", "b"]


def test_auto_scaler_scales_everything_into_range(mixed):
    auto = AutoScaler()
    Z = auto.fit_transform(mixed)
    assert auto.chains_["rooms"] == "log -> linear"
    assert auto.report_["rooms"].chain_string == "log -> linear"
    assert set(auto.reasons_) == set(mixed)
    np.testing.assert_allclose(auto.transform(mixed), Z)
    linear_cols = [j for j, c in enumerate(mixed) if auto.chains_[c].endswith("linear")]
    assert np.all(np.abs(Z[:, linear_cols]) <= 1 + 1e-12)
    assert np.isfinite(Z).all()


def test_auto_scaler_inverse_needs_skip_lossy_for_clipped_columns(mixed):
    auto = AutoScaler().fit(mixed)
    Z = auto.transform(mixed)
    with pytest.raises(ValueError, match="spiky"):
        auto.inverse_transform(Z)
    back = auto.inverse_transform(Z, skip_lossy=True)
    np.testing.assert_allclose(back[:, 0], mixed["rooms"], rtol=1e-9)


def test_auto_scaler_nan_policy(mixed):
    data = dict(mixed)
    data["latitude"] = mixed["latitude"].copy()
    data["latitude"][11] = np.nan
    with pytest.raises(NonFiniteValueError, match=r"'latitude' \(index 1\) at row 11"):
        AutoScaler().fit(data)
    Z = AutoScaler(nan_policy="median").fit_transform(data)
    assert np.isfinite(Z).all()


def test_auto_scaler_on_float32_array(rng):
    X = np.column_stack([rng.lognormal(5, 1, 500), rng.uniform(0, 50, 500)]).astype(np.float32)
    auto = AutoScaler(feature_names=["rooms", "age"])
    Z = auto.fit_transform(X)
    assert Z.dtype == np.float32
    assert auto.chains_ == {"rooms": "log -> linear", "age": "linear"}


def test_a_mixed_table_audits_levels_and_missing_cells():
    import json

    from gradwell.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 400
    income = rng.lognormal(10, 1, n)
    income[:60] = np.nan
    city = rng.choice(["paris", "rome", "oslo", "lima"], n, p=[0.5, 0.3, 0.195, 0.005]).astype(
        object
    )
    city[:30] = None
    city[30:40] = ""
    zips = rng.choice([75001, 75002, 10115], n)  # numbers, named categorical
    table = {"income": income, "city": city, "zip": zips, "age": rng.uniform(18, 90, n)}
    report = audit(table, categorical=["zip"], min_frequency=0.01)
    assert report.names == ["income", "age"]
    assert report["income"].missing_fraction == pytest.approx(60 / n)
    assert report["age"].missing_fraction == 0.0
    c = report["city"]
    present = [v for v in city if v not in (None, "")]
    levels, counts = np.unique(present, return_counts=True)
    assert c.missing_count == 40 and c.missing_fraction == pytest.approx(40 / n)
    assert c.levels == len(levels)
    assert set(c.rare_levels) == {lv for lv, k in zip(levels, counts) if k < 0.01 * n}
    assert c.top[0] == ("paris", int(counts[list(levels).index("paris")]))
    kept = OneHotEncoder(min_frequency=0.01).fit({"city": city}).levels_["city"]
    assert c.recommended == f"one-hot ({len(kept)} levels + other)"
    assert report["zip"].levels == 3 and report["zip"].missing_count == 0
    text = str(report)
    assert "2 number columns, 2 categorical" in text and "miss%" in text and "lima" in text
    assert json.loads(report.to_json())["categorical"][0]["missing_fraction"] == pytest.approx(0.1)
    with pytest.raises(KeyError, match="categorical columns \\['town'\\] are not in the table"):
        audit(table, categorical=["town"])
