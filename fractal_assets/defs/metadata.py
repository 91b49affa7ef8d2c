"""Materialization metadata shared by the assets: previews, time ranges and embedded plots."""

from __future__ import annotations

import base64
import math

import numpy as np
import pandas as pd
from dagster import MetadataValue

TIME_COLUMNS = ("timestamp", "ts", "first_ts")
"""Columns of epoch milliseconds, shown in previews as UTC times."""


def iso_utc(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, e.g. 2024-08-08T12:00:00.000Z."""
    return str(np.datetime64(int(ts_ms), "ms")) + "Z"


def markdown_table(frame: pd.DataFrame, rows: int = 10) -> MetadataValue:
    """The first rows of a frame as a markdown table (no tabulate dependency needed), with
    ``TIME_COLUMNS`` as UTC times rather than raw epoch milliseconds."""
    head = frame.head(rows)
    times = [c in TIME_COLUMNS for c in head.columns]
    lines = ["| " + " | ".join(map(str, head.columns)) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v, t) for v, t in zip(row, times)) + " |" for row in head.itertuples(index=False)]
    return MetadataValue.md("\n".join(lines))


def _cell(value: object, is_time: bool) -> str:
    if is_time and isinstance(value, (int, np.integer)):
        return iso_utc(value)
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def time_range(ts_ms: np.ndarray) -> dict[str, MetadataValue]:
    """First and last timestamps as ISO strings (empty when there are none)."""
    if len(ts_ms) == 0:
        return {"first": MetadataValue.text(""), "last": MetadataValue.text("")}
    return {"first": MetadataValue.text(iso_utc(np.min(ts_ms))), "last": MetadataValue.text(iso_utc(np.max(ts_ms)))}


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    """An inline PNG the Dagster UI renders in the metadata panel."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
