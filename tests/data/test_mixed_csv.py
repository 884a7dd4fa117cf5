"""load_csv on tables of numbers, text and booleans, with missing cells."""

import numpy as np
import pytest

from gradwell.data.csv import CSVFormatError
from gradwell.data.datasets import load_csv


def write(tmp_path, text, name="t.csv", encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def test_text_and_boolean_columns_with_missing_cells(tmp_path):
    path = write(
        tmp_path,
        'age,city,member,label\n30,"Paris, FR",yes,a\n,Rome,no,b\n41,?,NA,a\n52,Rome,yes,b\n',
    )
    ds = load_csv(path, target="label")
    assert ds.categories == {"city": ("Paris, FR", "Rome")}
    frame = ds.frame()
    assert frame["city"].tolist() == ["Paris, FR", "Rome", None, "Rome"]
    assert np.isnan(frame["age"][1]) and frame["age"][3] == 52.0
    assert frame["member"][[0, 1, 3]].tolist() == [1.0, 0.0, 1.0] and np.isnan(frame["member"][2])
    assert ds.y.tolist() == [0, 1, 0, 1] and ds.task == "classification"


def test_categories_survive_a_split(tmp_path):
    rows = "".join(f"{i},{'ab'[i % 2]},{i % 2}\n" for i in range(20))
    train, test = load_csv(write(tmp_path, "x,c,y\n" + rows), target="y").split(0.25)
    assert train.categories == test.categories == {"c": ("a", "b")}
    assert set(test.frame()["c"]) == {"a", "b"}


def test_forced_categorical_numbers(tmp_path):
    ds = load_csv(write(tmp_path, "zip,y\n75001,1.5\n00100,2.5\n"), target="y", categorical=["zip"])
    assert ds.categories == {"zip": ("00100", "75001")} and ds.task == "regression"
    with pytest.raises(KeyError, match="categorical columns among the features"):
        load_csv(write(tmp_path, "zip,y\n1,2\n"), target="y", categorical=["nope"])


def test_bom_crlf_and_latin1(tmp_path):
    path = write(tmp_path, "\ufeffa,b\n1,x\n2,y\n", newline="\r\n")
    ds = load_csv(path)
    assert ds.feature_names == ("a", "b") and ds.categories == {"b": ("x", "y")}
    latin = write(tmp_path, "name,v\nmontréal,1\n", name="l.csv", encoding="latin-1")
    with pytest.raises(CSVFormatError, match=r"l.csv: line 2 holds the byte 0xe9.*encoding"):
        load_csv(latin)
    assert load_csv(latin, encoding="latin-1").frame()["name"].tolist() == ["montréal"]


def test_a_stray_word_in_a_numeric_column_is_still_a_bad_cell(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n5,abc\n")
    with pytest.raises(CSVFormatError, match=r"column 'b', got 'abc' in data row 2 \(line 4\)"):
        load_csv(path)
