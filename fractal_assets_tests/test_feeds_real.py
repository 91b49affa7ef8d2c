"""Feed readers: exact counts on the real files of shared/data (see its SOURCES.md), edge cases on tiny files."""

from __future__ import annotations

import bisect
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pandas as pd
import pytest

from fractal_assets.feeds import detect_format, open_feed
from fractal_assets.feeds.binance import DepthSync, DepthUpdate
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.orderbook import OrderBook
from fractal_assets.market.ticks import (
    RAW_QUOTE_FIELDS,
    RAW_TRADE_FIELDS,
    BookSnapshot,
    FeedChunk,
    RawQuotes,
    RawTrades,
    Rejection,
)
from fractal_assets_tests.support import shared_file

pytestmark = pytest.mark.realdata

BTCUSDT = "hftbacktest_binance_spot_feed_20240808/btcusdt_20240808.gz"
ETHUSDT = "hftbacktest_binance_spot_feed_20240808/ethusdt_20240808.gz"
TARDIS_TRADES = "tardis_binance_futures_btcusdt_20200222/trades.csv.gz"
TARDIS_QUOTES = "tardis_binance_futures_btcusdt_20200222/quotes.csv.gz"
FREQTRADE = "freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz"
DATABENTO = "databento_glbx_esh4_mbo_20231225/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def ms(text: str) -> int:
    """Epoch ms of a UTC time written as in SOURCES.md."""
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@dataclass
class Read:
    """Everything a feed yielded, concatenated across chunks."""

    trades: RawTrades
    quotes: RawQuotes
    books: list[BookSnapshot]
    rejections: list[Rejection]
    last_seqs: list[int]


def _concat(parts: list, cls: type) -> object:
    fields = RAW_TRADE_FIELDS if cls is RawTrades else RAW_QUOTE_FIELDS
    if not parts:
        return cls(*(np.empty(0) for _ in fields))
    return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def read(path: Path, chunk_rows: int = 100_000) -> Read:
    chunks: list[FeedChunk] = list(open_feed(path, chunk_rows=chunk_rows))
    return Read(
        trades=_concat([c.trades for c in chunks if c.trades is not None], RawTrades),
        quotes=_concat([c.quotes for c in chunks if c.quotes is not None], RawQuotes),
        books=[b for c in chunks for b in c.books],
        rejections=[r for c in chunks for r in c.rejections],
        last_seqs=[c.last_seq for c in chunks],
    )


def assert_sequenced(got: Read) -> None:
    """Record numbers only grow, within trades, within quotes and from chunk to chunk."""
    assert (np.diff(got.trades.seq) > 0).all()
    assert (np.diff(got.quotes.seq) > 0).all()
    assert (np.diff(got.last_seqs) >= 0).all()
    assert not set(got.trades.seq.tolist()) & set(got.quotes.seq.tolist())


@pytest.mark.parametrize(
    ("relative", "fmt"),
    [
        (BTCUSDT, "binance"),
        (ETHUSDT, "binance"),
        (TARDIS_TRADES, "tardis"),
        (TARDIS_QUOTES, "tardis"),
        (FREQTRADE, "freqtrade"),
        (DATABENTO, "databento"),
    ],
)
def test_detect_format_recognizes_each_real_file(relative: str, fmt: str) -> None:
    assert detect_format(shared_file(relative)) == fmt


@pytest.mark.parametrize(
    ("relative", "symbol", "trades", "sells", "buys", "quotes"),
    [(BTCUSDT, "BTCUSDT", 9_757, 5_654, 4_103, 28_040), (ETHUSDT, "ETHUSDT", 6_106, 2_875, 3_231, 24_077)],
)
def test_binance_trades_and_quotes_match_sources(
    relative: str, symbol: str, trades: int, sells: int, buys: int, quotes: int
) -> None:
    got = read(shared_file(relative), chunk_rows=5_000)
    assert got.rejections == []
    assert len(got.trades) == trades
    assert int((got.trades.side == -1).sum()) == sells
    assert int((got.trades.side == 1).sum()) == buys
    assert len(got.quotes) == quotes
    assert set(got.trades.symbol) == set(got.quotes.symbol) == {symbol}
    assert ms("2024-08-08 23:54:14") <= got.trades.ts.min() <= got.trades.ts.max() <= ms("2024-08-09 00:00:02")
    assert (got.quotes.bid < got.quotes.ask).all()
    assert_sequenced(got)


def test_binance_books_are_sorted_uncrossed_and_100ms_apart() -> None:
    books = read(shared_file(BTCUSDT)).books
    assert len(books) > 3_000
    for book in books:
        assert book.symbol == "BTCUSDT"
        assert book.bids.shape == book.asks.shape == (10, 2)
        assert (np.diff(book.bids[:, 0]) < 0).all()
        assert (np.diff(book.asks[:, 0]) > 0).all()
        assert book.bids[0, 0] < book.asks[0, 0]
        assert (book.bids[:, 1] > 0).all() and (book.asks[:, 1] > 0).all()
    ts = np.array([b.ts for b in books])
    assert (np.diff(ts) >= 100).all()
    assert (ts % 100 == 99).all()


@pytest.mark.parametrize("relative", [BTCUSDT, ETHUSDT])
def test_binance_book_matches_book_ticker_after_every_update(relative: str) -> None:
    """The rebuilt best bid/ask equals the exchange's own bookTicker at the same update id."""
    with gzip.open(shared_file(relative), "rt") as handle:
        messages = [json.loads(line.split(" ", 1)[1]) for line in handle]
    tickers = sorted(
        (m["data"]["u"], *(float(m["data"][k]) for k in ("b", "B", "a", "A")))
        for m in messages
        if m.get("stream", "").endswith("@bookTicker")
    )
    ticker_ids = [t[0] for t in tickers]
    sync, compared = DepthSync(), 0
    for message in messages:
        if "lastUpdateId" in message:
            sync.on_snapshot(message)
        elif message["data"].get("e") == "depthUpdate":
            sync.on_update(DepthUpdate.parse(message["data"]))
        else:
            continue
        at = bisect.bisect_right(ticker_ids, sync.update_id) - 1
        if sync.book is None or at < 0:
            continue
        bids, asks = sync.book.top(1)
        assert (bids[0, 0], bids[0, 1], asks[0, 0], asks[0, 1]) == tickers[at][1:]
        compared += 1
    assert compared > 3_000


@pytest.mark.parametrize("relative", [BTCUSDT, TARDIS_QUOTES])
def test_chunk_size_changes_nothing(relative: str) -> None:
    whole, pieces = read(shared_file(relative)), read(shared_file(relative), chunk_rows=997)
    assert np.array_equal(whole.trades.seq, pieces.trades.seq)
    assert np.array_equal(whole.quotes.seq, pieces.quotes.seq)
    assert [b.ts for b in whole.books] == [b.ts for b in pieces.books]
    for a, b in zip(whole.books, pieces.books):
        assert np.array_equal(a.bids, b.bids) and np.array_equal(a.asks, b.asks)


def test_tardis_trades_match_sources() -> None:
    got = read(shared_file(TARDIS_TRADES), chunk_rows=1_000)
    assert got.rejections == []
    assert len(got.trades) == 9_999
    assert int((got.trades.side == 1).sum()) == 5_267
    assert int((got.trades.side == -1).sum()) == 4_732
    assert got.trades.ts[0] == ms("2020-02-22 00:00:02.111")
    assert got.trades.ts[-1] == ms("2020-02-22 02:05:47.728")
    assert set(got.trades.symbol) == {"BTCUSDT"}
    assert got.trades.seq.tolist() == list(range(9_999))


def test_tardis_quotes_match_sources_with_level_one_books() -> None:
    got = read(shared_file(TARDIS_QUOTES))
    assert got.rejections == []
    assert len(got.quotes) == 9_999
    assert got.quotes.ts[0] == ms("2020-02-22 00:00:01.096")
    assert got.quotes.ts[-1] == ms("2020-02-22 00:03:47.061")
    assert_sequenced(got)
    ts = np.array([b.ts for b in got.books])
    assert (np.diff(ts) >= 100).all()
    assert all(b.bids.shape == b.asks.shape == (1, 2) for b in got.books)
    last = got.books[-1]
    assert last.ts == ms("2020-02-22 00:03:47.099")
    assert last.bids.tolist() == [[got.quotes.bid[-1], got.quotes.bid_size[-1]]]
    assert last.asks.tolist() == [[got.quotes.ask[-1], got.quotes.ask_size[-1]]]


def test_freqtrade_trades_match_sources() -> None:
    got = read(shared_file(FREQTRADE), chunk_rows=5_000)
    assert got.rejections == []
    assert len(got.trades) == 12_477
    assert int((got.trades.side == 1).sum()) == 6_524
    assert int((got.trades.side == -1).sum()) == 5_953
    assert got.trades.ts[0] == ms("2019-10-11 00:00:11.620")
    assert got.trades.ts[-1] == ms("2019-10-13 11:19:28.844")
    assert set(got.trades.symbol) == {"XRP_ETH"}
    assert_sequenced(got)


def test_databento_trades_match_sources() -> None:
    got = read(shared_file(DATABENTO), chunk_rows=10_000)
    assert got.rejections == []
    assert len(got.trades) == 2_973
    assert int((got.trades.side == 1).sum()) == 1_542
    assert int((got.trades.side == -1).sum()) == 1_430
    assert int(np.isnan(got.trades.side).sum()) == 1
    assert got.trades.ts.min() == ms("2023-12-25 23:00:00")
    assert ms("2023-12-25 23:59:56") <= got.trades.ts.max() <= ms("2023-12-25 23:59:57")
    assert set(got.trades.symbol) == {"ESH4"}
    assert ((got.trades.price > 4_000) & (got.trades.price < 6_000)).all()
    assert got.last_seqs[-1] == 68_791
    assert_sequenced(got)


@pytest.mark.parametrize("relative", [BTCUSDT, TARDIS_TRADES, FREQTRADE, DATABENTO])
def test_follow_is_refused_for_recorded_formats(relative: str) -> None:
    with pytest.raises(FeedFormatError, match="only supported for generic CSV"):
        open_feed(shared_file(relative), follow=True)


def binance_line(local_ns: int, stream: str, data: dict) -> str:
    return f"{local_ns} {json.dumps({'stream': stream, 'data': data})}"


def trade(t: int, price: str, maker: bool) -> dict:
    return {"e": "trade", "E": t, "s": "BTCUSDT", "t": t, "p": price, "q": "0.5", "T": t, "m": maker}


def depth(first: int, last: int, event_ms: int, bids: list, asks: list) -> str:
    data = {"e": "depthUpdate", "E": event_ms, "s": "BTCUSDT", "U": first, "u": last, "b": bids, "a": asks}
    return binance_line(event_ms * 1_000_000, "btcusdt@depth@100ms", data)


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def test_binance_bad_lines_are_rejected_with_their_line_numbers(tmp_path: Path) -> None:
    ticker = {"u": 1, "s": "BTCUSDT", "b": "100.0", "B": "1.0", "a": "100.5", "A": "2.0"}
    lines = [
        binance_line(1_000_000_000, "btcusdt@trade", trade(1000, "100.0", True)),
        '1000000001 {"stream": "btcusdt@trade", "data": {"e": "trade", "p": ',
        binance_line(1_000_000_002, "btcusdt@trade", trade(1002, "100.5", False)),
        binance_line(1_000_000_003, "btcusdt@trade", {k: v for k, v in trade(1003, "1", True).items() if k != "p"}),
        binance_line(1_000_000_004, "btcusdt@trade", trade(1004, "abc", True)),
        binance_line(2_000_000_005, "btcusdt@bookTicker", ticker),
    ]
    got = read(write_gz(tmp_path / "btcusdt_test.gz", lines), chunk_rows=4)
    assert [(r.seq, r.reason) for r in got.rejections] == [(1, UNPARSEABLE), (3, UNPARSEABLE), (4, UNPARSEABLE)]
    assert got.rejections[0].raw == lines[1]
    assert got.trades.seq.tolist() == [0, 2]
    assert got.trades.side.tolist() == [-1.0, 1.0]
    assert got.trades.price.tolist() == [100.0, 100.5]
    assert got.quotes.seq.tolist() == [5]
    assert got.quotes.ts.tolist() == [2_000]


def test_binance_book_follows_the_snapshot_and_update_id_rules(tmp_path: Path) -> None:
    snapshot = {"lastUpdateId": 10, "bids": [["99", "1"], ["98", "2"]], "asks": [["101", "1"], ["102", "2"]]}
    lines = [
        depth(1, 8, 5_000, [["97", "9"]], []),
        depth(9, 11, 5_010, [["99", "0"], ["99.5", "3"]], []),
        f"1 {json.dumps(snapshot)}",
        depth(12, 12, 5_050, [], [["101", "0"]]),
        depth(13, 14, 5_120, [["98", "5"]], []),
        depth(15, 15, 5_210, [], [["103", "1"]]),
        depth(17, 18, 5_320, [["50", "1"]], []),
    ]
    books = read(write_gz(tmp_path / "btcusdt_book.gz", lines)).books
    assert [b.ts for b in books] == [5_099, 5_199]
    assert books[0].bids.tolist() == [[99.5, 3.0], [98.0, 2.0]]
    assert books[0].asks.tolist() == [[102.0, 2.0]]
    assert books[1].bids.tolist() == [[99.5, 3.0], [98.0, 5.0]]


def test_order_book_applies_snapshot_updates_and_deletes() -> None:
    book = OrderBook()
    book.apply_snapshot([(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)], [(101.0, 1.5), (102.0, 2.5), (103.0, 3.5)])
    book.apply_update([(99.0, 0.0), (100.5, 4.0), (97.0, 0.0)], [(101.0, 0.0), (102.0, 7.0), (101.5, 0.25)])
    bids, asks = book.top(2)
    assert bids.tolist() == [[100.5, 4.0], [100.0, 1.0]]
    assert asks.tolist() == [[101.5, 0.25], [102.0, 7.0]]
    bids, asks = book.top(10)
    assert bids.tolist() == [[100.5, 4.0], [100.0, 1.0], [98.0, 3.0]]
    assert asks.shape == (3, 2)
    book.apply_snapshot([], [(105.0, 1.0)])
    bids, asks = book.top(5)
    assert bids.shape == (0, 2)
    assert asks.tolist() == [[105.0, 1.0]]


def test_tardis_side_empty_or_unknown_is_left_to_the_tick_rule(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance,BTCUSDT,1000000,1000100,1,buy,10,1\n"
        "binance,BTCUSDT,2000000,2000100,2,,11,1\n"
        "binance,BTCUSDT,3000999,3000100,3,unknown,12,1\n"
        "binance,BTCUSDT,4000000,4000100,4,sideways,13,1\n"
        "binance,BTCUSDT,5000000,5000100,5,sell,oops,1\n"
    )
    got = read(path)
    assert got.trades.seq.tolist() == [0, 1, 2, 3]
    assert got.trades.ts.tolist() == [1_000, 2_000, 3_000, 4_000]
    np.testing.assert_array_equal(got.trades.side, [1.0, np.nan, np.nan, 0.0])
    assert [(r.seq, r.reason) for r in got.rejections] == [(4, UNPARSEABLE)]


def test_freqtrade_rows_of_the_wrong_shape_or_type_are_rejected(tmp_path: Path) -> None:
    rows = [
        [1000, "1", None, "buy", 0.5, 10.0, 5.0],
        [1001, "2", None, "sell", 0.5],
        "not a row",
        [1003, "4", None, "sell", "abc", 10.0, 5.0],
        [1004, "5", None, "sell", 0.4, 10.0, 4.0],
    ]
    path = tmp_path / "ADA_BTC-trades.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(rows, handle)
    got = read(path, chunk_rows=4)
    assert got.trades.seq.tolist() == [0, 4]
    assert got.trades.side.tolist() == [1.0, -1.0]
    assert set(got.trades.symbol) == {"ADA_BTC"}
    assert [(r.seq, r.reason) for r in got.rejections] == [(1, UNPARSEABLE), (2, UNPARSEABLE), (3, UNPARSEABLE)]


def test_databento_without_symbol_mappings_takes_the_file_name(tmp_path: Path) -> None:
    metadata = dbn.Metadata("GLBX.MDP3", 0, dbn.SType.RAW_SYMBOL, dbn.SType.INSTRUMENT_ID, dbn.Schema.MBO)

    def mbo(action: str, side: str, price: int) -> bytes:
        return bytes(dbn.MBOMsg(1, 42, 5_000_000_000, 1, price, 3, dbn.Action(action), dbn.Side(side), 5_000_000_100))

    body = mbo("A", "B", 10**12) + mbo("T", "A", 10**12 + 25 * 10**7) + mbo("T", "N", dbn.UNDEF_PRICE)
    path = tmp_path / "nqz4-test.mbo.dbn"
    path.write_bytes(bytes(metadata) + body + b"\x00" * 7)
    got = read(path)
    assert got.trades.seq.tolist() == [1, 2]
    assert set(got.trades.symbol) == {"NQZ4"}
    assert got.trades.ts.tolist() == [5_000, 5_000]
    np.testing.assert_array_equal(got.trades.price, [1000.25, np.nan])
    np.testing.assert_array_equal(got.trades.side, [-1.0, np.nan])
    assert [(r.seq, r.reason) for r in got.rejections] == [(3, UNPARSEABLE)]
