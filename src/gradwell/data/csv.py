"""Reading numeric CSV files with errors that point at the offending cell."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Cells read as missing (NaN) rather than rejected; compared after stripping blanks.
NA_VALUES = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})


class CSVFormatError(ValueError):
    """A CSV file that cannot be read as a numeric table: the message names row and column."""


def read_csv_columns(path: str | os.PathLike) -> tuple[list[str], list[list[str]], list[int]]:
    """The header and the raw cells of every data row, with each row's line number.

    Blank lines are skipped; a row with a different number of fields than the
    header raises :class:`CSVFormatError` naming its line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_csv: expected a CSV file, got no file at {str(path)!r}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        rows: list[list[str]] = []
        lines: list[int] = []
        for fields in reader:
            if not fields or all(not cell.strip() for cell in fields):
                continue
            if header is None:
                header = [h.strip() for h in fields]
                continue
            if len(fields) != len(header):
                raise CSVFormatError(
                    f"{path.name}: expected {len(header)} fields in every row (as in the "
                    f"header), got {len(fields)} in data row {len(rows)} (line {reader.line_num})"
                )
            rows.append(fields)
            lines.append(reader.line_num)
    if header is None:
        raise CSVFormatError(f"{path.name}: expected a header row, got an empty file")
    seen: set[str] = set()
    for name in header:
        if not name:
            raise CSVFormatError(f"{path.name}: expected a name for every column, got an empty one")
        if name in seen:
            raise CSVFormatError(f"{path.name}: expected unique column names, got {name!r} twice")
        seen.add(name)
    return header, rows, lines


def parse_numeric(
    cells: Sequence[str], column: str, lines: Sequence[int], source: str
) -> np.ndarray:
    """float64 values of one column; NA cells become NaN; other text raises naming the cell."""
    try:
        # The fast path: numpy parses the whole column of number strings at once.
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        text = cell.strip()
        try:
            out[i] = float(text)
        except ValueError:
            if text.lower() in NA_VALUES:
                out[i] = np.nan
                continue
            raise CSVFormatError(
                f"{source}: expected a number in column {column!r}, got {cell!r} in data row "
                f"{i} (line {lines[i]})"
            ) from None
    return out


def is_numeric(cells: Sequence[str]) -> bool:
    try:
        parse_numeric(cells, "", [0] * len(cells), "")
    except CSVFormatError:
        return False
    return True
