"""Every stored record layout, declared once: ticks, quotes, order books and bars.

A layout is an ordered list of (column, numpy type). The numpy record dtype
of the hot tier, the Arrow schema of the cold tier and the pandas dtypes of
the read path are all derived from it, so the tiers cannot drift apart.
pandas and pyarrow are imported on first use: the ingest process and the
CLI start without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class Layout:
    """Columns of one kind of record, in storage order."""

    columns: tuple[tuple[str, str], ...]

    def extend(self, *columns: tuple[str, str]) -> "Layout":
        """This layout with more columns after its own."""
        return Layout(self.columns + columns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @cached_property
    def numpy(self) -> np.dtype:
        """The structured dtype (ring buffers, Redis payloads)."""
        return np.dtype(list(self.columns))

    @cached_property
    def pandas(self) -> dict[str, str]:
        """Column -> pandas dtype name, for ``DataFrame.astype``."""
        return {name: np.dtype(kind).name for name, kind in self.columns}

    @cached_property
    def arrow(self) -> "pa.Schema":
        """The Arrow schema (Parquet files)."""
        import pyarrow as pa

        return pa.schema([(name, _arrow_type(np.dtype(kind))) for name, kind in self.columns])

    def empty_frame(self) -> pd.DataFrame:
        """A frame with no rows and the right dtypes."""
        import pandas as pd

        return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in self.pandas.items()})


def _arrow_type(dtype: np.dtype) -> "pa.DataType":
    """A numpy scalar type as its Arrow type; a fixed-size array (``(10,)<f8``) as a fixed-size list."""
    import pyarrow as pa

    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return pa.list_(pa.from_numpy_dtype(base), shape[0])
    return pa.from_numpy_dtype(dtype)


TICK = Layout((("ts", "<i8"), ("price", "<f8"), ("volume", "<f8"), ("side", "i1")))
"""A tick: epoch ms (UTC), price, volume (fractional), aggressor side (+1 buy, -1 sell)."""

STORED_TICK = TICK.extend(("seq", "<i8"))
"""An archived tick; ``seq`` is the symbol's arrival number (negative for imported history)."""

QUOTE = Layout((("ts", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("bid_size", "<f8"), ("ask_size", "<f8")))
"""A best bid/offer update."""

STORED_QUOTE = QUOTE.extend(("seq", "<i8"))
"""An archived quote; ``seq`` is the symbol's quote arrival number."""

BOOK_LEVELS = 10
"""Levels per side of a stored order-book snapshot."""

BOOK = Layout((
    ("ts", "<i8"),
    *((column, f"({BOOK_LEVELS},)<f8") for column in ("bid_price", "bid_size", "ask_price", "ask_size")),
))
"""An order-book snapshot: event time, then per side the best ``BOOK_LEVELS`` prices and sizes, best
first, NaN past the levels the book has."""

STORED_BOOK = BOOK.extend(("seq", "<i8"))
"""An archived book; ``seq`` identifies it within the symbol (imported books: the file's arrival-number
range plus the record after which the feed cut it)."""

BAR = Layout((
    ("timestamp", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("volume", "<f8"), ("buy_volume", "<f8"), ("sell_volume", "<f8"), ("tick_count", "<i8"), ("vwap", "<f8"),
))
"""An OHLCV bar: bucket start (epoch ms), prices, volume split by aggressor, tick count, VWAP."""
