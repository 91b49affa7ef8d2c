"""A file's identity is its content: each tick stored exactly once across paths, reruns,
fractal import and fractal ingest; changed files ingested in full; history sent to import."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.identity import identify, remember, remembering
from fractal_assets.ingest.ingestor import Ingestor, IngestReport
from fractal_assets.market.ticks import FeedChunk

START = 1_699_920_000_000
"""Midnight UTC of DAY."""
DAY = "2023-11-14"
HOUR = 3_600_000
HEADER = "ts,symbol,price,volume,side\n"


def write_frame(path: Path, n: int, start: int = START, span: int = HOUR, symbols: tuple[str, ...] = ("AAA", "BBB"),
                seed: int = 1) -> pd.DataFrame:
    """A generic CSV of n ticks over [start, start + span)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": start + np.sort(rng.integers(0, span, n)),
        "symbol": rng.choice(symbols, n),
        "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 6),
        "side": rng.choice([1, -1], n),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def stored(config: Config, symbol: str) -> pd.DataFrame:
    return get_backtest_data(symbol, DAY, DAY, config=config, use_cache=False)


def assert_each_once(config: Config, *frames: pd.DataFrame) -> None:
    """Every symbol's stored ticks are exactly the given rows, each once."""
    want = pd.concat(frames, ignore_index=True)
    for symbol, rows in want.groupby("symbol"):
        got = stored(config, symbol)
        assert sorted(zip(got["ts"], got["price"], got["volume"])) == sorted(
            zip(rows["ts"], rows["price"], rows["volume"]))


def test_the_same_content_under_another_path_is_recognized_and_skipped(config: Config, fractal, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    frame = write_frame(first, 3_000)
    assert fractal("ingest", "--source", str(first)).code == 0
    copy = tmp_path / "elsewhere" / "b.csv"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    run = fractal("ingest", "--source", str(copy))
    assert run.code == 0
    assert f"same content as {first.resolve()}" in run.out
    assert "accepted 0 ticks" in run.out and "skipped 3000 records" in run.out
    assert_each_once(config, frame)


@pytest.mark.parametrize(("first", "second"), [("import", "ingest"), ("ingest", "import")])
def test_import_and_ingest_of_the_same_content_store_each_tick_once(
    config: Config, fractal, tmp_path: Path, first: str, second: str
) -> None:
    path = tmp_path / "ticks.csv"
    frame = write_frame(path, 5_000)
    copy = tmp_path / "copy.csv"
    shutil.copy(path, copy)
    assert fractal(first, "--source", str(path)).code == 0
    run = fractal(second, "--source", str(copy))
    assert run.code == 0 and "same content as" in run.out and "skipped 5000 records" in run.out
    assert_each_once(config, frame)


def test_bars_after_import_then_ingest_count_each_tick_once(config: Config, fractal, tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    frame = write_frame(path, 4_000, symbols=("BAR",))
    assert fractal("import", "--source", str(path)).code == 0
    assert fractal("ingest", "--source", str(path)).code == 0
    assert fractal("materialize").code == 0
    with sqlite3.connect(config.warm_db) as conn:
        volume, count = conn.execute(
            "SELECT SUM(volume), SUM(tick_count) FROM fractal_bars WHERE symbol = 'BAR' AND timeframe = '1d'"
        ).fetchone()
    assert count == 4_000 and volume == pytest.approx(frame["volume"].sum(), rel=1e-12)


def test_a_changed_file_at_a_known_path_is_ingested_in_full(config: Config, fractal, tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    before = write_frame(path, 2_000, seed=1)
    assert fractal("ingest", "--source", str(path)).code == 0
    after = write_frame(path, 1_500, start=START + 2 * HOUR, seed=2)
    run = fractal("ingest", "--source", str(path))
    assert run.code == 0 and "accepted 1500 ticks" in run.out and "skipped 0 records" in run.out
    assert "same content as" not in run.out and "grew since" not in run.out
    assert_each_once(config, before, after)


def test_a_grown_file_resumes_after_what_is_stored(config: Config, fractal, tmp_path: Path) -> None:
    path = tmp_path / "growing.csv"
    first = write_frame(path, 2_000, seed=3)
    assert fractal("ingest", "--source", str(path)).code == 0
    more = write_frame(tmp_path / "more.csv", 700, start=START + 2 * HOUR, seed=4)
    with open(path, "a") as handle:
        handle.write("".join(more.to_csv(index=False).splitlines(keepends=True)[1:]))
    run = fractal("ingest", "--source", str(path))
    assert run.code == 0 and f"{path} grew since it was read" in run.out
    assert "accepted 700 ticks" in run.out and "skipped 2000 records" in run.out
    copy = tmp_path / "grown-copy.csv"
    shutil.copy(path, copy)
    run = fractal("import", "--source", str(copy))
    assert run.code == 0 and "same content as" in run.out and "imported 0 ticks" in run.out
    assert_each_once(config, first, more)


def test_history_older_than_the_newest_tick_is_refused_with_the_way_to_import_it(
    config: Config, fractal, tmp_path: Path
) -> None:
    live = write_frame(tmp_path / "live.csv", 1_000, start=START + 2 * HOUR, symbols=("HIST",), seed=5)
    assert fractal("ingest", "--source", str(tmp_path / "live.csv")).code == 0
    history_path = tmp_path / "history.csv"
    history = write_frame(history_path, 2_000, symbols=("HIST",), seed=6)
    run = fractal("ingest", "--source", str(history_path))
    assert run.code == 1
    assert "ts_backwards: 2000" in run.out and "use `fractal import --source FILE`" in run.out
    assert run.err.splitlines()[-1] == f"fractal: nothing stored from {history_path}: every new record was rejected (reasons above)"
    run = fractal("import", "--source", str(history_path))
    assert run.code == 0 and "imported 2000 ticks" in run.out
    assert_each_once(config, live, history)


def test_history_overlapping_live_ticks_is_completed_by_import(config: Config, fractal, tmp_path: Path) -> None:
    live = write_frame(tmp_path / "live.csv", 1_000, start=START + HOUR // 2, span=HOUR // 2, symbols=("MIX", "OTHER"))
    assert fractal("ingest", "--source", str(tmp_path / "live.csv")).code == 0
    history_path = tmp_path / "history.csv"
    history = write_frame(history_path, 3_000, span=2 * HOUR, symbols=("MIX", "OTHER"), seed=7)
    run = fractal("ingest", "--source", str(history_path))
    assert run.code == 0 and "ts_backwards" in run.out
    run = fractal("import", "--source", str(history_path))
    assert run.code == 0 and "skipped" in run.out
    assert_each_once(config, live, history)


def until_idle(chunks: Iterable[FeedChunk]) -> Iterator[FeedChunk]:
    """A followed file's chunks up to the first wait after its records (ingest has then flushed)."""
    seen = False
    for chunk in chunks:
        yield chunk
        if chunk.records() or chunk.rejections:
            seen = True
        elif seen:
            return


def follow(config: Config, store: HotStore, path: Path) -> IngestReport:
    """What `fractal ingest --follow` does, until the file has been read to its end."""
    identity = identify(store, path, follow=True)
    remember(store, identity, path)
    chunks = remembering(open_feed(path, follow=True, chunk_rows=200), store, identity, path)
    return Ingestor(config, store, identity.source_id).run(until_idle(chunks))


def test_a_followed_file_recreated_at_its_path_is_read_in_full(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    first = write_frame(path, 300, symbols=("FOLLOW",), seed=8)
    assert follow(config, store, path).total_accepted == 300
    path.unlink()
    path.write_text(HEADER)
    second = write_frame(tmp_path / "next.csv", 120, start=START + 2 * HOUR, symbols=("FOLLOW",), seed=9)
    with open(path, "a") as handle:
        handle.write("".join(second.to_csv(index=False).splitlines(keepends=True)[1:]))
    report = follow(config, store, path)
    assert report.total_accepted == 120 and report.skipped == 0
    assert_each_once(config, first, second)


def test_a_followed_file_keeps_going_past_bad_rows_and_resumes_after_a_restart(
    config: Config, store: HotStore, tmp_path: Path
) -> None:
    path = tmp_path / "tail.csv"
    frame = write_frame(path, 200, symbols=("TAIL",), seed=10)
    assert follow(config, store, path).total_accepted == 200
    with open(path, "a") as handle:
        handle.write("2300-01-01T00:00:00Z,TAIL,10,1,1\nnot,a,row\n1e20,TAIL,1,1,1\n")
        handle.write(f"{START + 2 * HOUR},TAIL,101.5,2,-1\n")
    report = follow(config, store, path)
    assert report.total_accepted == 1 and report.skipped == 200
    assert report.rejected == {"ts_out_of_range": 2, "unparseable": 1}
    assert stored(config, "TAIL")["ts"].tolist() == [*frame["ts"], START + 2 * HOUR]
