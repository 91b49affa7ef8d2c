"""Malformed rows and files in every format: one line, never a traceback; the valid rows beside
them stored exactly; the bad ones dead-lettered as written; nothing stored before changes.

Rows are mutations of valid records, seeded, so a failure replays. Every
malformed row must come back as exactly one rejection (a blank CSV line is
no record and must come back as nothing).
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.config import Config
from fractal_assets.hot.store import RAW_LIMIT, HotStore
from fractal_assets.ingest.identity import content_id, fingerprint

START = 1_704_153_600_000
"""2024-01-02T00:00:00Z: every fuzzed record's day."""
DAY = "2024-01-02"
GOOD_ROWS = 400
BAD_ROWS = 160


@dataclass
class Fuzzed:
    """A file with valid records and malformed ones, and what storing it must leave."""

    path: Path
    symbol: str
    valid: list[tuple[int, float, float]] = field(default_factory=list)
    """(ts ms, price, volume) of every valid trade."""
    originals: list[object] = field(default_factory=list)
    """Each malformed record as its dead letter must hold it."""
    quotes: int = 0
    """Valid quotes in the file."""
    read_raw: Callable[[bytes], object] = bytes
    """A dead letter's raw bytes in the form ``originals`` holds them."""

    @property
    def malformed(self) -> int:
        return len(self.originals)


def slots(rng: np.random.Generator) -> np.ndarray:
    """True where a malformed row goes among GOOD_ROWS + BAD_ROWS rows (never first, so a
    timestamp going backwards has a tick to go back from)."""
    bad = np.zeros(GOOD_ROWS + BAD_ROWS, bool)
    bad[1 + rng.choice(GOOD_ROWS + BAD_ROWS - 1, BAD_ROWS, replace=False)] = True
    return bad


def good_trade(rng: np.random.Generator, i: int) -> tuple[int, float, float]:
    return START + i * 1_000 + int(rng.integers(0, 999)), round(100 + float(rng.normal(0, 1)), 2), \
        round(float(rng.exponential(1.0)) + 0.0001, 4)


CSV_MUTATIONS: list[Callable[[int, str, float, float], str | bytes]] = [
    lambda ts, s, p, v: f"yesterday,{s},{p},{v},1",
    lambda ts, s, p, v: f"2300-01-01T00:00:00Z,{s},{p},{v},1",
    lambda ts, s, p, v: f"1e20,{s},{p},{v},1",
    lambda ts, s, p, v: f"-5,{s},{p},{v},1",
    lambda ts, s, p, v: f",{s},{p},{v},1",
    lambda ts, s, p, v: f"2021-02-30T00:00:00Z,{s},{p},{v},1",
    lambda ts, s, p, v: f"99999999999999999999999,{s},{p},{v},1",
    lambda ts, s, p, v: f"{ts - 60_000},{s},{p},{v},1",
    lambda ts, s, p, v: f"{ts},{s},abc,{v},1",
    lambda ts, s, p, v: f"{ts},{s},,{v},1",
    lambda ts, s, p, v: f"{ts},{s},0,{v},1",
    lambda ts, s, p, v: f"{ts},{s},-3,{v},1",
    lambda ts, s, p, v: f"{ts},{s},nan,{v},1",
    lambda ts, s, p, v: f"{ts},{s},inf,{v},1",
    lambda ts, s, p, v: f"{ts},{s},{'9' * 5000},{v},1",
    lambda ts, s, p, v: f"{ts},{s},{p},-1,1",
    lambda ts, s, p, v: f"{ts},{s},{p},1..2,1",
    lambda ts, s, p, v: f"{ts},{s},{p},{v},maybe",
    lambda ts, s, p, v: f"{ts},BAD/SYM,{p},{v},1",
    lambda ts, s, p, v: f"{ts},{'X' * 40},{p},{v},1",
    lambda ts, s, p, v: f"{ts},,{p},{v},1",
    lambda ts, s, p, v: f"{ts},ÄÖÜ,{p},{v},1",
    lambda ts, s, p, v: f"{ts},A\x00B,{p},{v},1",
    lambda ts, s, p, v: f"{ts},{s},{p},{v},1,extra",
    lambda ts, s, p, v: f"{ts},{s},{p},{v}",
    lambda ts, s, p, v: f'{ts},"{s},X",{p},{v},1',
    lambda ts, s, p, v: f"{ts},{s}\r,{p},{v},1",
    lambda ts, s, p, v: f"{ts},".encode() + b"\xff\xfe" + f",{p},{v},1".encode(),
    lambda ts, s, p, v: "ts,symbol,price,volume,side",
    lambda ts, s, p, v: "\x1b[31m;DROP TABLE ticks;--",
]


def _line(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def generic_csv(tmp: Path, rng: np.random.Generator, gz: bool = False) -> Fuzzed:
    out = Fuzzed(tmp / ("generic.csv.gz" if gz else "generic.csv"), "FZCSV")
    lines = [b"ts,symbol,price,volume,side"]
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        if bad:
            line = _line(CSV_MUTATIONS[int(rng.integers(len(CSV_MUTATIONS)))](ts, out.symbol, price, volume))
            out.originals.append(line)
        else:
            line = f"{ts},{out.symbol},{price},{volume},{rng.choice(['1', '-1', 'buy', 'sell', ''])}".encode()
            out.valid.append((ts, price, volume))
        lines.append(line)
        if rng.random() < 0.02:
            lines.append(b"")
    data = b"\n".join(lines) + b"\n"
    out.path.write_bytes(gzip.compress(data) if gz else data)
    return out


PARQUET_MUTATIONS: list[Callable[[int, float, float], dict[str, str | None]]] = [
    lambda ts, p, v: {"ts": "yesterday", "price": str(p), "volume": str(v)},
    lambda ts, p, v: {"ts": "2300-01-01T00:00:00Z", "price": str(p), "volume": str(v)},
    lambda ts, p, v: {"ts": None, "price": str(p), "volume": str(v)},
    lambda ts, p, v: {"ts": "1e20", "price": str(p), "volume": str(v)},
    lambda ts, p, v: {"ts": str(ts), "price": "abc", "volume": str(v)},
    lambda ts, p, v: {"ts": str(ts), "price": None, "volume": str(v)},
    lambda ts, p, v: {"ts": str(ts), "price": "-1", "volume": str(v)},
    lambda ts, p, v: {"ts": str(ts), "price": str(p), "volume": "lots"},
    lambda ts, p, v: {"ts": str(ts), "price": str(p), "volume": str(v), "symbol": "BAD SYM"},
    lambda ts, p, v: {"ts": str(ts), "price": str(p), "volume": str(v), "side": "both"},
    lambda ts, p, v: {"ts": str(ts - 60_000), "price": str(p), "volume": str(v)},
]


def generic_parquet(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "generic.parquet", "FZPQ", read_raw=json.loads)
    rows = []
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        if bad:
            row = {"symbol": out.symbol, "side": "1",
                   **PARQUET_MUTATIONS[int(rng.integers(len(PARQUET_MUTATIONS)))](ts, price, volume)}
            out.originals.append(row)
        else:
            row = {"ts": str(ts), "symbol": out.symbol, "price": str(price), "volume": str(volume), "side": "-1"}
            out.valid.append((ts, price, volume))
        rows.append(row)
    columns = ("ts", "symbol", "price", "volume", "side")
    pq.write_table(pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in columns}), out.path,
                   row_group_size=97)
    out.originals = [{c: row[c] for c in columns} for row in out.originals]
    return out


def tardis_trades(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "trades.csv", "FZTARDIS")
    lines = [b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount"]
    mutations: list[Callable[[int, float, float], str | bytes]] = [
        lambda us, p, v: f"binance,{out.symbol},soon,{us},1,buy,{p},{v}",
        lambda us, p, v: f"binance,{out.symbol},{us},{us},1,buy,{p},-{v}",
        lambda us, p, v: f"binance,{out.symbol},{us},{us},1,sideways,{p},{v}",
        lambda us, p, v: f"binance,{out.symbol},{us},{us},1,buy,x{p},{v}",
        lambda us, p, v: f"binance,{out.symbol},{us},{us},1,buy,{p}",
        lambda us, p, v: f"binance,{out.symbol},{10**25},{us},1,buy,{p},{v}",
        lambda us, p, v: b"binance,\xc3\x28," + f"{us},{us},1,buy,{p},{v}".encode(),
        lambda us, p, v: f"binance,{out.symbol},{us},{us},1,buy,0,{v}",
    ]
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        us = ts * 1000 + int(rng.integers(0, 999))
        if bad:
            line = _line(mutations[int(rng.integers(len(mutations)))](us, price, volume))
            out.originals.append(line)
        else:
            line = f"binance,{out.symbol},{us},{us + 50},{i},{rng.choice(['buy', 'sell', 'unknown'])},{price},{volume}"
            line = line.encode()
            out.valid.append((ts, price, volume))
        lines.append(line)
    out.path.write_bytes(b"\n".join(lines) + b"\n")
    return out


def tardis_quotes(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "quotes.csv", "FZQUOTE")
    lines = [b"exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"]
    mutations: list[Callable[[int, float], str]] = [
        lambda us, mid: f"binance,{out.symbol},{us},{us},1,{mid - 1},{mid + 1},1",
        lambda us, mid: f"binance,{out.symbol},{us},{us},1,{mid + 1},0,1",
        lambda us, mid: f"binance,{out.symbol},{us},{us},1,abc,{mid},1",
        lambda us, mid: f"binance,{out.symbol},later,{us},1,{mid + 1},{mid},1",
        lambda us, mid: f"binance,{out.symbol},{us},{us},1,{mid + 1}",
        lambda us, mid: f"binance,{out.symbol},{10**22},{us},1,{mid + 1},{mid},1",
        lambda us, mid: f"binance,{out.symbol},{us},{us},1,,{mid},1",
    ]
    for i, bad in enumerate(slots(rng)):
        us = (START + i * 1_000) * 1000
        mid = round(100 + float(rng.normal(0, 1)), 2)
        if bad:
            line = mutations[int(rng.integers(len(mutations)))](us, mid).encode()
            out.originals.append(line)
        else:
            line = f"binance,{out.symbol},{us},{us},2,{mid + 0.5},{mid},3".encode()
            out.quotes += 1
        lines.append(line)
    out.path.write_bytes(b"\n".join(lines) + b"\n")
    return out


def binance(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "fzbin_20240102.gz", "FZBIN", read_raw=bytes.decode)

    def message(local_ns: int, data: dict[str, object], stream: str = "fzbin@trade") -> str:
        return f"{local_ns} {json.dumps({'stream': stream, 'data': data})}"

    def trade(ts: int, price: object, volume: object, maker: object = True, symbol: str = out.symbol) -> dict:
        return {"e": "trade", "E": ts, "s": symbol, "t": ts, "p": price, "q": volume, "T": ts, "m": maker}

    mutations: list[Callable[[int, float, float], str]] = [
        lambda ts, p, v: message(ts * 10**6, trade(ts, str(p), str(v)))[:-12],
        lambda ts, p, v: message(ts * 10**6, trade(ts, "abc", str(v))),
        lambda ts, p, v: message(ts * 10**6, trade(ts, None, str(v))),
        lambda ts, p, v: message(ts * 10**6, trade(ts, str(p), str(v), maker="yes")),
        lambda ts, p, v: message(ts * 10**6, trade("x", str(p), str(v))),
        lambda ts, p, v: message(ts * 10**6, {**trade(ts, str(p), str(v)), "e": "kline"}),
        lambda ts, p, v: message(ts * 10**6, trade(ts, str(p), str(v), symbol="BAD/SYM")),
        lambda ts, p, v: message(ts * 10**6, trade(ts, "-1", str(v))),
        lambda ts, p, v: f"soon {json.dumps({'data': trade(ts, str(p), str(v))})}",
        lambda ts, p, v: "",
        lambda ts, p, v: message(ts * 10**6, {"u": 1, "s": out.symbol, "b": str(p + 1), "B": "1", "a": str(p),
                                              "A": "1"}, "fzbin@bookTicker"),
    ]
    lines = []
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        if bad:
            line = mutations[int(rng.integers(len(mutations)))](ts, price, volume)
            out.originals.append(line)
        else:
            line = message(ts * 10**6, trade(ts, str(price), str(volume), maker=bool(rng.integers(2))))
            out.valid.append((ts, price, volume))
        lines.append(line)
    out.path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return out


def freqtrade(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "FZ_FT-trades.json", "FZ_FT", read_raw=json.loads)
    mutations: list[Callable[[int, float, float], object]] = [
        lambda ts, p, v: "not a row",
        lambda ts, p, v: {"ts": ts},
        lambda ts, p, v: [ts, "1", None, "buy", p],
        lambda ts, p, v: ["abc", "1", None, "buy", p, v, p * v],
        lambda ts, p, v: [None, "1", None, "buy", p, v, p * v],
        lambda ts, p, v: [ts, "1", None, "buy", "abc", v, p * v],
        lambda ts, p, v: [ts, "1", None, "maybe", p, v, p * v],
        lambda ts, p, v: [ts, "1", None, "buy", -p, v, p * v],
        lambda ts, p, v: [1e20, "1", None, "buy", p, v, p * v],
        lambda ts, p, v: [ts, "1", None, "buy", [p], v, p * v],
        lambda ts, p, v: [ts - 60_000, "1", None, "sell", p, v, p * v],
    ]
    rows = []
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        if bad:
            row = mutations[int(rng.integers(len(mutations)))](ts, price, volume)
            out.originals.append(row)
        else:
            row = [ts, str(i), None, str(rng.choice(["buy", "sell"])), price, volume, price * volume]
            out.valid.append((ts, price, volume))
        rows.append(row)
    out.path.write_text(json.dumps(rows))
    return out


def databento(tmp: Path, rng: np.random.Generator) -> Fuzzed:
    out = Fuzzed(tmp / "fzdbn-glbx.mbo.dbn", "FZDBN")
    metadata = dbn.Metadata("GLBX.MDP3", 0, dbn.SType.RAW_SYMBOL, dbn.SType.INSTRUMENT_ID, dbn.Schema.MBO)

    def mbo(ts_ms: int, price: int, size: int, action: str = "T", side: str = "B") -> bytes:
        return bytes(dbn.MBOMsg(1, 7, ts_ms * 10**6, 1, price, size, dbn.Action(action), dbn.Side(side), ts_ms * 10**6))

    mutations: list[Callable[[int, int, int], bytes]] = [
        lambda ts, p, v: mbo(ts, dbn.UNDEF_PRICE, v),
        lambda ts, p, v: mbo(ts, -p, v),
        lambda ts, p, v: mbo(10**13, p, v),
        lambda ts, p, v: mbo(0, p, v),
        lambda ts, p, v: mbo(ts - 60_000, p, v, side="A"),
    ]
    body = [bytes(metadata)]
    for i, bad in enumerate(slots(rng)):
        ts, price, volume = good_trade(rng, i)
        nanos, size = int(round(price * 100)) * 10**7, int(volume * 1000) + 1
        if bad:
            record = mutations[int(rng.integers(len(mutations)))](ts, nanos, size)
            out.originals.append(record)
        else:
            record = mbo(ts, nanos, size, side=str(rng.choice(["A", "B"])))
            out.valid.append((ts, nanos / 1e9, float(size)))
        body.append(record)
        if rng.random() < 0.1:
            body.append(mbo(ts, nanos, size, action="A"))
    out.path.write_bytes(b"".join(body))
    return out


BUILDERS: dict[str, Callable[[Path, np.random.Generator], Fuzzed]] = {
    "generic_csv": generic_csv,
    "generic_csv_gz": lambda tmp, rng: generic_csv(tmp, rng, gz=True),
    "generic_parquet": generic_parquet,
    "tardis_trades": tardis_trades,
    "tardis_quotes": tardis_quotes,
    "binance": binance,
    "freqtrade": freqtrade,
    "databento": databento,
}


def dead_letters(store: HotStore, source: str) -> list[object]:
    """The raw record of each dead letter of a source, in record order."""
    letters = [f for _, f in store.client.xrange(store.keys.dead_letter()) if f[b"source"].decode() == source]
    return [f[b"raw"] for f in sorted(letters, key=lambda f: int(f[b"seq"]))]


def baseline(fractal, tmp_path: Path) -> Callable[[], pd.DataFrame]:
    """Ticks stored before the fuzzing, by ingest and by import, and a reader of them."""
    frame = pd.DataFrame({"ts": START + np.arange(500) * 7, "symbol": np.where(np.arange(500) % 2, "BASE", "BASEIMP"),
                          "price": 50 + np.arange(500) / 100, "volume": 1.5, "side": 1})
    frame[frame.symbol == "BASE"].to_csv(tmp_path / "base.csv", index=False)
    frame[frame.symbol == "BASEIMP"].to_csv(tmp_path / "baseimp.csv", index=False)
    assert fractal("ingest", "--source", str(tmp_path / "base.csv")).code == 0
    assert fractal("import", "--source", str(tmp_path / "baseimp.csv")).code == 0

    def read() -> pd.DataFrame:
        config = Config.from_env()
        return pd.concat([get_backtest_data(s, DAY, DAY, config=config, use_cache=False) for s in ("BASE", "BASEIMP")])
    return read


@pytest.mark.parametrize("command", ["ingest", "import"])
@pytest.mark.parametrize("fmt", sorted(BUILDERS))
def test_malformed_rows_are_rejected_as_written_and_the_rest_stored(
    config: Config, store: HotStore, fractal, tmp_path: Path, fmt: str, command: str, monkeypatch
) -> None:
    monkeypatch.setenv("FRACTAL_DATA_DIR", str(config.data_dir))
    before = baseline(fractal, tmp_path)
    kept = before()
    fuzzed = BUILDERS[fmt](tmp_path, np.random.default_rng(sorted(BUILDERS).index(fmt)))
    run = fractal(command, "--source", str(fuzzed.path), "--chunk-rows", "97")
    assert run.code == 0, run.err
    assert "Traceback" not in run.err and "fractal: error" not in run.err
    assert f"rejected {fuzzed.malformed}\n" in run.out
    got = get_backtest_data(fuzzed.symbol, DAY, DAY, config=config, use_cache=False) if fuzzed.valid else None
    if fuzzed.valid:
        assert list(zip(got["ts"], got["price"], got["volume"])) == fuzzed.valid
    assert f"quotes {fuzzed.quotes}" in run.out
    raws = dead_letters(store, content_id(fingerprint(fuzzed.path)))
    assert [fuzzed.read_raw(raw) for raw in raws] == [
        o[:RAW_LIMIT] if isinstance(o, bytes) else o for o in fuzzed.originals]
    pd.testing.assert_frame_equal(before(), kept)


def malformed_files(tmp: Path) -> list[Path]:
    """Whole files that are not what their name or content says, each a new way to be wrong."""
    rng = np.random.default_rng(99)
    good = generic_csv(tmp, rng).path.read_bytes()
    files = {
        "empty.csv": b"",
        "bom-only.csv": b"\xef\xbb\xbf",
        "header-only.csv": b"ts,symbol,price,volume,side\n",
        "no-ts.csv": b"symbol,price,volume\nA,1,1\n",
        "doubled.csv": b"ts,ts,symbol,price,volume\n1,1,A,1,1\n",
        "random.csv": rng.bytes(5_000),
        "random.csv.gz": rng.bytes(5_000),
        "truncated.csv.gz": gzip.compress(good)[: len(gzip.compress(good)) // 2],
        "random.parquet": rng.bytes(5_000),
        "truncated.parquet": b"PAR1" + rng.bytes(100),
        "wrong-columns.parquet": b"",
        "random.json": rng.bytes(3_000),
        "object-trades.json": json.dumps({"trades": []}).encode(),
        "truncated-trades.json.gz": gzip.compress(b'[[1, "1", null, "buy"')[:-5],
        "random.dbn": rng.bytes(3_000),
        "random.mbo.dbn.zst": rng.bytes(3_000),
        "random_20240102.gz": gzip.compress(rng.bytes(3_000)),
        "text.bin": b"hello world\n" * 10,
    }
    paths = []
    for name, data in files.items():
        path = tmp / "bad" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    pq.write_table(pa.table({"when": [1], "what": ["x"]}), tmp / "bad" / "wrong-columns.parquet")
    parquet = tmp / "bad" / "corrupt-page.parquet"
    frame = pd.DataFrame({"ts": START + np.arange(3_000), "symbol": "FZCORRUPT", "price": 1.5, "volume": 2.0})
    frame.to_parquet(parquet, row_group_size=1_000, compression="snappy")
    data = bytearray(parquet.read_bytes())
    middle = pq.ParquetFile(parquet).metadata.row_group(1).column(0).data_page_offset
    data[middle + 20: middle + 60] = rng.bytes(40)
    parquet.write_bytes(bytes(data))
    return [*paths, parquet, tmp / "bad", tmp / "missing.csv"]


FORMAT_CHOICES = ("auto", "generic", "binance", "tardis", "freqtrade", "databento")


def test_malformed_files_end_in_one_line_and_change_nothing_stored(
    config: Config, fractal, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FRACTAL_DATA_DIR", str(config.data_dir))
    before = baseline(fractal, tmp_path)
    kept = before()
    files = malformed_files(tmp_path)
    runs = 0
    for path in files:
        for fmt in FORMAT_CHOICES:
            for command in ("ingest", "import"):
                run = fractal(command, "--source", str(path), "--format", fmt)
                runs += 1
                assert run.code in (0, 1, 2), (path, fmt, command, run)
                errors = [line for line in run.err.splitlines() if line.startswith("fractal:")]
                assert len(errors) <= 1 and "Traceback" not in run.err, (path, fmt, command, run.err)
                if run.code == 2:
                    assert errors and errors[0].startswith("fractal: error: ") and len(errors[0]) < 700
    pd.testing.assert_frame_equal(before(), kept)
    assert runs == len(files) * len(FORMAT_CHOICES) * 2
    corrupt = get_backtest_data("FZCORRUPT", DAY, DAY, config=config, use_cache=False)
    assert corrupt["ts"].tolist() == [START + i for i in range(3_000) if not 1_000 <= i < 2_000]


def test_the_fuzzing_covers_over_a_thousand_malformed_rows_and_files(tmp_path: Path) -> None:
    rows = sum(build(tmp_path / name, np.random.default_rng(1)).malformed
               for name, build in BUILDERS.items() if (tmp_path / name).mkdir() is None)
    files = len(malformed_files(tmp_path)) * len(FORMAT_CHOICES) * 2
    assert rows >= 1_000 and rows + files >= 1_200, (rows, files)
    shutil.rmtree(tmp_path)
