"""Partitions of the tick-derived assets: UTC dates that hold data.

A run builds every symbol of its dates, so the one dimension is the date. The
dates are dynamic partitions, added when data of a date is first seen (by the
hot-tier sensor, ``fractal import`` and ``fractal materialize``): the axis
starts at the oldest data, whatever its year, and the UI shows dates with data
only. Dagster orders dynamic keys by insertion, not by date, so runs sort their
dates and ``fractal materialize`` forms ranges along the stored order
(docs/architecture.md, "Partitions").
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from dagster import DagsterInstance, DynamicPartitionsDefinition

from fractal_assets.config import env_value

date_partitions = DynamicPartitionsDefinition(name="date")


def valid_date(date: str) -> str:
    """A date as YYYY-MM-DD, or ValueError."""
    try:
        normal = str(np.datetime64(date, "D"))
    except ValueError:
        normal = ""
    if normal != date:
        raise ValueError(f"not a date (YYYY-MM-DD): {date!r}")
    return date


def in_range(date: str) -> bool:
    """Whether a date is on or after FRACTAL_START_DATE (no bound when it is unset)."""
    start = env_value("FRACTAL_START_DATE")
    return not start or date >= start


def register_dates(instance: DagsterInstance, dates: Iterable[str]) -> list[str]:
    """Add the dates missing from the ``date`` partitions, oldest first; returns them."""
    known = set(instance.get_dynamic_partitions(date_partitions.name))
    new = sorted({valid_date(d) for d in dates} - known)
    if new:
        instance.add_dynamic_partitions(date_partitions.name, new)
    return new
