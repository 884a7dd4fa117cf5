"""A benchmark's results as a table: aligned columns for the terminal, or Markdown."""

from __future__ import annotations

import argparse
from typing import Any


def print_table(header: list[str], rows: list[list[str]], markdown: bool = False) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def overhead_arguments(description: str, rows: list[str], argv: list[str] | None) -> Any:
    """The doctor-overhead benchmarks' shared options, with ``rows`` checked and split."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rows", default=",".join(rows), help="comma-separated: " + ", ".join(rows))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--wall", action="store_true", help="wall-clock time, not CPU time")
    args = ap.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in args.rows:
        if r not in rows:
            ap.error(f"unknown row {r!r}; expected one of {', '.join(rows)}")
    return args
