"""Materialization metadata shared by the assets: previews, time ranges and embedded plots."""

from __future__ import annotations

import base64
import math

import numpy as np
import pandas as pd
from dagster import MetadataValue


def markdown_table(frame: pd.DataFrame, rows: int = 10) -> MetadataValue:
    """The first rows of a frame as a markdown table (no tabulate dependency needed)."""
    head = frame.head(rows)
    lines = ["| " + " | ".join(map(str, head.columns)) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def time_range(ts_ms: np.ndarray) -> dict[str, MetadataValue]:
    """First and last timestamps as ISO strings (empty when there are none)."""
    if len(ts_ms) == 0:
        return {"first": MetadataValue.text(""), "last": MetadataValue.text("")}
    iso = lambda t: str(np.datetime64(int(t), "ms")) + "Z"  # noqa: E731
    return {"first": MetadataValue.text(iso(np.min(ts_ms))), "last": MetadataValue.text(iso(np.max(ts_ms)))}


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    """An inline PNG the Dagster UI renders in the metadata panel."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
