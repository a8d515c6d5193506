"""Read one numeric series from a CSV file, with errors that say what is wrong and where."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def read_csv_series(path: str | os.PathLike, column: str | None = None, *, date_column: str | None = "auto"
                    ) -> pd.Series:
    """The column ``column`` of a CSV file as a float ``pandas.Series``, indexed by dates when the
    file has a date column.

    Args:
        path: the CSV file (a header row is expected).
        column: the values; None takes the only numeric column (an error when there are several).
        date_column: the column of dates for the index; ``"auto"`` uses the first column when it is
            not ``column`` and all of it parses as dates; None keeps a 0..n-1 index. The index gets
            its frequency inferred when the dates are regular (so a forecaster can infer the season).

    Missing values stay NaN (a forecaster refuses or fills them, as told); text that is not a
    number is an error naming the first offending rows.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "sales.csv"
        >>> _ = path.write_text("month,sales\\n2020-01,1.5\\n2020-02,2.0\\n2020-03,2.5\\n")
        >>> s = read_csv_series(path, "sales")
        >>> s.tolist(), s.index.freqstr
        ([1.5, 2.0, 2.5], 'MS')
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected an existing CSV file, got {str(path)!r} (not found)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"path: expected a readable CSV file with a header row, got {str(path)!r} ({err})") from err
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if column is None:
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
        if len(numeric) != 1:
            raise ValueError(f"column: expected the name of the value column (one of {columns}), got None and "
                             f"{len(numeric)} numeric columns {numeric}")
        column = numeric[0]
    if column not in columns:
        raise ValueError(f"column: expected one of {columns}, got {column!r}")
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        rows = [int(i) + 2 for i in bad[bad].index[:5]]  # +2: 1-based, after the header line
        examples = [str(v) for v in raw[bad].iloc[:5]]
        raise ValueError(f"column {column!r}: expected numbers, got non-numeric values {examples} on lines {rows} "
                         f"of {str(path)!r}")
    values = values.astype("float64")
    if date_column == "auto":
        first = columns[0]
        date_column = None
        if first != column and not pd.api.types.is_numeric_dtype(frame[first]):
            parsed = pd.to_datetime(frame[first], errors="coerce", format="mixed")
            if parsed.notna().all():
                date_column = first
    if date_column is not None:
        if date_column not in columns:
            raise ValueError(f"date_column: expected one of {columns}, 'auto' or None, got {date_column!r}")
        dates = pd.to_datetime(frame[date_column], errors="coerce", format="mixed")
        if dates.isna().any():
            line = int(dates[dates.isna()].index[0]) + 2
            raise ValueError(f"date_column {date_column!r}: expected dates, got {frame[date_column].iloc[line - 2]!r} "
                             f"on line {line} of {str(path)!r}")
        index = pd.DatetimeIndex(dates, name=date_column)
        if len(index) >= 3 and index.is_monotonic_increasing:
            try:
                index = pd.DatetimeIndex(index, freq="infer")
            except ValueError:  # irregular dates: no frequency
                pass
        values.index = index
    values.name = column
    return values
