"""Arrays of numbers from user data, or an error that says where the data went wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

_KIND_NAMES = {
    "U": "text",
    "S": "bytes",
    "O": "Python objects",
    "M": "dates",
    "m": "time spans",
    "V": "raw records",
    "c": "complex numbers",
}


def numeric_array(data: Any, where: str, kinds: str = "biuf") -> np.ndarray:
    """``data`` as a numpy array (no copy when it already is one) whose dtype kind is in
    ``kinds`` (bool, int, unsigned, float); a ValueError or TypeError naming ``where``.

    Text is refused even when it spells numbers: numpy would parse ``"1"`` as 1.0 only
    when asked for a float array, so a column of strings would slip through silently.
    """
    arr = data
    if not isinstance(arr, np.ndarray):
        try:  # a Tensor gives its array through __array__
            arr = np.asarray(arr)
        except ValueError as e:  # ragged nested lists
            raise ValueError(
                f"{where}: expected a rectangular array of numbers (every row the same "
                f"length); got rows of different lengths ({e})"
            ) from None
    kind = arr.dtype.kind
    if kind not in kinds:
        what = _KIND_NAMES.get(kind, f"dtype {arr.dtype}")
        hint = (
            " (convert text to numbers first, e.g. with gw.data.datasets.load_csv)"
            if kind in "US"
            else ""
        )
        raise TypeError(f"{where}: expected numbers; got {what} (dtype {arr.dtype}){hint}")
    return arr
