"""Optional shapes of a result: UTC datetimes instead of epoch ms, and a symbol column.

Results keep their stored form by default (int64 epoch-ms ``ts`` / ``timestamp``, no
symbol column), so existing callers see no change; ``utc=True`` and
``with_symbol=True`` are for readers who want a frame they can plot or concatenate
across symbols as is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TIME_COLUMNS = ("ts", "timestamp")


def utc_datetime(epoch_ms: Any) -> Any:
    """Epoch ms (int, array or Series) as UTC pandas datetimes of millisecond unit, the
    stored precision, whatever unit the pandas version would pick by default."""
    if np.ndim(epoch_ms) == 0:
        return pd.Timestamp(int(epoch_ms), unit="ms", tz="UTC")
    return pd.DatetimeIndex(np.asarray(epoch_ms, dtype="int64").astype("datetime64[ms]")).tz_localize("UTC")


def shape(frame: pd.DataFrame, symbol: str, utc: bool, with_symbol: bool) -> pd.DataFrame:
    """``frame`` with its time column as UTC datetimes (``utc``) and a leading ``symbol``
    column (``with_symbol``); the frame itself when neither is asked for."""
    if not (utc or with_symbol):
        return frame
    out = frame.copy(deep=False)
    if utc:
        for column in TIME_COLUMNS:
            if column in out:
                out[column] = utc_datetime(out[column].to_numpy())
    if with_symbol:
        out.insert(0, "symbol", symbol)
    return out
