"""Peer reads of the same ticks, run by the peers' interpreter (``FRACTAL_PEER_PYTHON``, the
``.venv-bench`` of ``make bench``): arcticdb needs pandas<3, the project runs on pandas 3.

``python bench/peers.py TICKS.parquet`` writes the ticks (a plain Parquet file of ts, price,
volume, side, seq: the frame ``get_backtest_data`` returns) into an ArcticDB library on the
LMDB backend in a temporary directory, with the same dtypes, and prints ``ready``. Then, for
each line ``arcticdb`` or ``polars`` on stdin, it prints the wall time in seconds of one read:
``lib.read(sym).data`` (the full pandas frame) or polars ``scan_parquet(...).collect()``. The
caller alternates these with its own reads, so that both see the same machine load.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable

import arcticdb
import pandas as pd
import polars as pl

SYMBOL = "ticks"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def serve(path: str, library: arcticdb.library.Library) -> None:
    """Write the ticks to the library, check they read back alike, then time reads on request."""
    ticks = pd.read_parquet(path)
    library.write(SYMBOL, ticks)
    back = library.read(SYMBOL).data
    if not back.dtypes.equals(ticks.dtypes) or len(back) != len(ticks):
        raise RuntimeError(f"arcticdb read back {back.dtypes.to_dict()} x {len(back)}")
    del ticks, back
    reads = {"arcticdb": lambda: library.read(SYMBOL).data, "polars": lambda: pl.scan_parquet(path).collect()}
    print("ready", flush=True)
    for line in sys.stdin:
        print(timed(reads[line.strip()]), flush=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fractal-bench-arctic-") as tmp:
        serve(sys.argv[1], arcticdb.Arctic(f"lmdb://{tmp}").get_library("bench", create_if_missing=True))
