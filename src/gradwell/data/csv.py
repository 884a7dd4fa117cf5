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
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            for fields in reader:
                if not fields or all(not cell.strip() for cell in fields):
                    continue
                if header is None:
                    header = [h.strip() for h in fields]
                    continue
                if len(fields) != len(header):
                    raise CSVFormatError(
                        f"{path.name}: expected {len(header)} fields in every row (as in the "
                        f"header), got {len(fields)} in data row {len(rows)} (line "
                        f"{reader.line_num})"
                    )
                rows.append(fields)
                lines.append(reader.line_num)
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except csv.Error as e:
            limit = csv.field_size_limit()
            why = (
                f"a field longer than {limit} characters (is a quote left open, or is this "
                "not a CSV table?)"
                if "field limit" in str(e)
                else str(e)
            )
            raise CSVFormatError(
                f"{path.name}: cannot read line {max(reader.line_num, 1)}: {why}"
            ) from None
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


def _not_utf8(path: Path) -> CSVFormatError:
    """The error for a file that is not UTF-8 text, naming the line of the first bad byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = f" line {line} holds the byte 0x{data[e.start]:02x}, which"
    return CSVFormatError(
        f"{path.name}:{where} is not UTF-8 text; save the file as UTF-8 (for example "
        f"with iconv -f latin1 -t utf-8 {path.name})"
    )


#: The largest magnitude a cell may hold: features and targets are stored as float32.
LARGEST = float(np.finfo(np.float32).max)


def parse_numeric(
    cells: Sequence[str], column: str, lines: Sequence[int], source: str
) -> np.ndarray:
    """float64 values of one column; NA cells become NaN; other text, infinities and
    numbers too large for float32 raise naming the cell."""
    values = _parse(cells, column, lines, source)
    with np.errstate(invalid="ignore"):
        too_large = np.flatnonzero(np.abs(values) > LARGEST)
    if too_large.size:
        i = int(too_large[0])
        raise CSVFormatError(
            f"{source}: expected a finite number of magnitude at most {LARGEST:.4g} (float32) "
            f"in column {column!r}, got {cells[i]!r} in data row {i} (line {lines[i]})"
        )
    return values


def _parse(cells: Sequence[str], column: str, lines: Sequence[int], source: str) -> np.ndarray:
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
    """Whether every cell is a number or missing (however large)."""
    try:
        _parse(cells, "", [0] * len(cells), "")
    except CSVFormatError:
        return False
    return True
