"""The ``fractal`` command line."""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fractal_assets import filemodes
from fractal_assets.config import Config
from fractal_assets.feeds import FORMATS, TS_UNITS
from fractal_assets.market.symbols import normalize_symbol

if TYPE_CHECKING:
    import pandas as pd

    from fractal_assets.hot.store import HotStore
    from fractal_assets.ingest.identity import Identity
    from fractal_assets.ingest.ingestor import IngestReport
    from fractal_assets.market.ticks import FeedChunk


PACED_CHUNK_ROWS = 200
"""Small chunks when replaying in real time, so pacing is smooth."""

# Each command imports what it needs when it runs: `fractal --help` and the data commands
# start without loading Dagster, pandas or DuckDB.


def source_id(path: Path) -> str:
    """The source id a file's content gets when first read (see ingest.identity)."""
    from fractal_assets.ingest.identity import content_id, fingerprint

    return content_id(fingerprint(path))


def _known_total(path: Path) -> int | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix != ".parquet":
        return None
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def _identified(store: HotStore, path: Path, follow: bool = False) -> Identity:
    """The file's source by its content, said when it was read before, and remembered."""
    from fractal_assets.ingest.identity import identify, remember

    if not path.is_file():
        raise FileNotFoundError(f"no such feed file: {path}")
    identity = identify(store, path, follow)
    if identity.message(path):
        print(identity.message(path))
    remember(store, identity, path)
    return identity


def _ingest(config: Config, chunks: Iterator[FeedChunk], source: str, speed: float, total: int | None) -> IngestReport:
    from fractal_assets.hot.connection import open_store
    from fractal_assets.ingest.ingestor import Ingestor
    from fractal_assets.ingest.progress import Progress

    store = open_store(config)
    progress = Progress(total)
    try:
        ingestor = Ingestor(config, store, source)
        return ingestor.run(chunks, speed=speed, progress=progress)
    finally:
        progress.close()


def print_report(report: IngestReport, source: str) -> int:
    """The end-of-run summary: notes, accepted and rejected counts with hints; the exit code."""
    from fractal_assets.ingest.summary import INGEST_HINTS, common_lines, exit_code, nothing_new, nothing_stored

    rate = report.total_accepted / report.seconds if report.seconds else 0.0
    for line in [*report.notes, f"accepted {report.total_accepted} ticks in {report.seconds:.2f} s ({rate:,.0f} ticks/s)",
                 *common_lines(report, INGEST_HINTS), nothing_new(report, source)]:
        if line:
            print(line)
    code = exit_code(report)
    if code:
        print(f"fractal: {nothing_stored(report, source)}", file=sys.stderr)
    return code


def cmd_ingest(args: argparse.Namespace) -> int:
    from fractal_assets.feeds import open_feed
    from fractal_assets.hot.connection import open_store
    from fractal_assets.ingest.identity import remembering

    config = Config.from_env(data_dir=args.data_dir)
    path = Path(args.source)
    chunk_rows = PACED_CHUNK_ROWS if args.speed > 0 or args.follow else args.chunk_rows
    chunks = open_feed(path, args.format, chunk_rows=chunk_rows, follow=args.follow, ts_unit=args.ts_unit)
    store = open_store(config)
    identity = _identified(store, path, args.follow)
    if args.follow:
        chunks = remembering(chunks, store, identity, path)
    return print_report(_ingest(config, chunks, identity.source_id, args.speed, _known_total(path)), str(path))


def cmd_simulate(args: argparse.Namespace) -> int:
    from fractal_assets.feeds.pacing import Pacer, paced
    from fractal_assets.feeds.simulator import SimulatorSpec, simulate

    config = Config.from_env(data_dir=args.data_dir)
    symbols = tuple(normalize_symbol(s) for s in args.symbols.split(",") if s.strip())
    duration_ms = int(args.duration * 1000)
    start = args.start_ms if args.start_ms is not None else int(time.time() * 1000) - (0 if args.speed else duration_ms)
    spec = SimulatorSpec(symbols=symbols, rate=args.rate, duration_s=args.duration, start_ms=start, seed=args.seed)
    source = "sim:" + hashlib.sha1(repr(spec).encode()).hexdigest()[:16]
    total = int(args.rate * args.duration * len(symbols))
    chunks = paced(simulate(spec), Pacer(args.speed))
    return print_report(_ingest(config, chunks, source, 0.0, total), "the simulator")


def cmd_redis(args: argparse.Namespace) -> int:
    from fractal_assets.hot.connection import ensure_embedded_redis, stop_embedded_redis

    config = Config.from_env(data_dir=args.data_dir)
    if args.action == "start":
        print(ensure_embedded_redis(config.data_dir))
    elif args.action == "stop":
        print("stopped" if stop_embedded_redis(config.data_dir) else "not running")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from fractal_assets.feeds import open_feed
    from fractal_assets.hot.connection import open_store
    from fractal_assets.ingest.bulk_import import file_seq_base, import_history, stored_before
    from fractal_assets.ingest.summary import IMPORT_HINTS, common_lines, exit_code, nothing_new, nothing_stored
    from fractal_assets.ingest.validation import Bounds

    config = Config.from_env(data_dir=args.data_dir)
    path = Path(args.source)
    chunks = open_feed(path, args.format, chunk_rows=args.chunk_rows, ts_unit=args.ts_unit)
    store = open_store(config)
    source = _identified(store, path).source_id
    report = import_history(chunks, config.cold, file_seq_base(store, source), config.ts_tolerance_ms,
                            stored_before(store, source), lambda rejected: store.record_rejections(source, rejected),
                            Bounds.of(config))
    store.mark_imported(source, report.last_seq)
    for line in [*report.notes, f"imported {report.total_accepted} ticks into {len(report.partitions)} raw_ticks partitions",
                 *common_lines(report, IMPORT_HINTS), nothing_new(report, str(path))]:
        if line:
            print(line)
    if report.partitions:
        _register_imported(config, {d.date for d in report.partitions})
    code = exit_code(report)
    if code:
        print(f"fractal: {nothing_stored(report, str(path))}", file=sys.stderr)
    return code


def _register_imported(config: Config, dates: set[str]) -> None:
    """Imported dates become ``date`` partitions of the Dagster instance at DAGSTER_HOME or
    ``{data_dir}/dagster`` when there is one, so the UI lists them for a backfill; without an
    instance, importing does not pay Dagster's start-up: ``fractal materialize`` registers them."""
    if not os.environ.get("DAGSTER_HOME") and not config.dagster_home.exists():
        print("no Dagster instance yet: `fractal materialize` registers and builds the imported dates")
        return
    from fractal_assets.defs.materialize import cli_instance
    from fractal_assets.defs.partitions import register_dates

    new = register_dates(cli_instance(config), dates)
    print(f"{len(new)} new dates registered with Dagster at {config.dagster_home}: "
          "backfill them from the UI or run `fractal materialize`")


def cmd_materialize(args: argparse.Namespace) -> int:
    from fractal_assets.defs.materialize import (
        cli_instance,
        materialize_dates,
        partitions_with_data,
        submit_backfill,
    )
    from fractal_assets.defs.partitions import valid_date
    from fractal_assets.defs.resources import resources_for
    from fractal_assets.hot.connection import open_store

    config = Config.from_env(data_dir=args.data_dir)
    bounds = [valid_date(d) for d in (args.start, args.end) if d]
    symbol = normalize_symbol(args.symbol) if args.symbol else None
    days = [
        d for d in partitions_with_data(open_store(config), config.cold)
        if (not symbol or d.symbol == symbol)
        and (not args.start or d.date >= args.start) and (not args.end or d.date <= args.end)
    ]
    dates = sorted({d.date for d in days})
    for date in bounds:
        if date not in dates:
            print(f"no data{f' of {symbol}' if symbol else ''} on {date}: nothing to build for it")
    if args.daemon:
        if symbol:
            raise ValueError("--daemon builds every symbol of the dates: leave out --symbol")
        backfill = submit_backfill(dates, cli_instance(config))
        print(f"submitted backfill {backfill} of {len(dates)} dates to the Dagster instance at {config.dagster_home}: "
              "its daemon (dagster dev, or dagster-daemon run) launches the runs; follow them in the UI")
        return 0
    print(f"materializing {len(dates)} dates ({len(days)} symbol-days) on the Dagster instance at {config.dagster_home}")
    started = time.perf_counter()
    outcomes = materialize_dates(dates, cli_instance(config), resources_for(config), symbols=[symbol] if symbol else None,
                                 on_run=lambda outcome: print(outcome.line(), flush=True))
    failed = [o for o in outcomes if not o.success]
    print(f"{len(outcomes)} runs, {sum(o.symbol_days for o in outcomes)} symbol-days, "
          f"{sum(o.ticks for o in outcomes)} ticks, {sum(o.bars for o in outcomes)} bars, {len(failed)} failed, "
          f"{time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from fractal_assets.ops.backup import backup, read_manifest

    config = Config.from_env(data_dir=args.data_dir)
    target = backup(config, Path(args.dest), with_redis=args.redis)
    manifest = read_manifest(target)
    print(f"backup written to {target}")
    print(f"  {len(manifest.files)} files, {sum(f.size for f in manifest.files):,} bytes, "
          f"warm schema version {manifest.schema_version}, {manifest.redis_keys} Redis keys")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from fractal_assets.ops.backup import restore

    config = Config.from_env(data_dir=args.data_dir)
    manifest = restore(config, Path(args.src), with_redis=args.redis, force=args.force)
    print(f"restored {args.src}: warm schema version {manifest.schema_version}, "
          f"{len(manifest.cold_files())} cold-tier files, {manifest.redis_keys if args.redis else 0} Redis keys")
    return 0


OUT_FORMATS = (".parquet", ".csv")


def print_frame_summary(frame: pd.DataFrame, time_column: str) -> None:
    """Row count, time span and the first rows of a result."""
    import pandas as pd

    print(f"{len(frame)} rows")
    if len(frame):
        first, last = pd.to_datetime(frame[time_column].iloc[[0, -1]], unit="ms", utc=True)
        print(f"from {first.isoformat()} to {last.isoformat()}")
        print(frame.head().to_string(index=False))


def cmd_backtest_data(args: argparse.Namespace) -> int:
    from fractal_assets.access.reads import get_backtest_data

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in OUT_FORMATS:
        raise ValueError(f"--out {out} must end in {' or '.join(OUT_FORMATS)}")
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: no such directory {out.parent}")
    config = Config.from_env(data_dir=args.data_dir)
    frame = get_backtest_data(args.symbol, args.start, args.end, kind=args.kind, timeframe=args.timeframe, config=config)
    if out is None:
        print_frame_summary(frame, "ts" if args.kind == "ticks" else "timestamp")
    elif out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    if out is not None:
        print(f"wrote {len(frame)} rows to {out}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from fractal_assets.warm.db import connect as connect_warm
    from fractal_assets.warm.schema import current_version, migrate

    config = Config.from_env(data_dir=args.data_dir)
    conn = connect_warm(config.warm_db)
    try:
        applied = migrate(conn)
        version = current_version(conn)
    finally:
        conn.close()
    if applied:
        print(f"{config.warm_db}: applied migrations {', '.join(map(str, applied))}; now at version {version}")
    else:
        print(f"{config.warm_db}: up to date (version {version})")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from fractal_assets.ops.health import check_health

    health = check_health(Config.from_env(data_dir=args.data_dir))
    if args.json:
        print(json.dumps(health.as_dict(), indent=2))
    else:
        for name, value in health.as_dict().items():
            print(f"{name:24s} {value}")
    return 0 if health.healthy else 1


def cmd_status(args: argparse.Namespace) -> int:
    from fractal_assets.ops.health import status

    report = status(Config.from_env(data_dir=args.data_dir))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for process in report["ingest"]:
        print(f"ingest pid {process.get('pid')}: {process.get('ticks_total')} ticks, "
              f"{process.get('throughput_tps')} ticks/s, latency p50/p95/p99 "
              f"{process.get('latency_p50_ms')}/{process.get('latency_p95_ms')}/{process.get('latency_p99_ms')} ms, "
              f"indicators p50/p99 {process.get('indicator_p50_ms')}/{process.get('indicator_p99_ms')} ms")
    print(f"cache hit rate {report['cache_hit_rate']}")
    print(f"{'symbol':12s} {'in redis':>10s} {'unarchived':>10s} {'redis MB':>9s} {'ring MB':>8s}  newest tick")
    for symbol, row in report["symbols"].items():
        newest = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["newest_ts"] / 1000)) if row["newest_ts"] >= 0 else "-"
        print(f"{symbol:12s} {row['ticks_in_redis']:>10d} {row['unarchived_ticks']:>10d} "
              f"{row['redis_mb']:>9.3f} {row['ring_mb']:>8.3f}  {newest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fractal", description="fractal-alpha market data platform")
    parser.add_argument("--data-dir", default=None, help="runtime data dir (default: $FRACTAL_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="replay or tail a tick file into the hot tier")
    ingest.add_argument("--source", required=True, help="file to read")
    ingest.add_argument("--format", default="auto", choices=FORMATS)
    ingest.add_argument("--speed", type=float, default=0.0, help="0: as fast as possible; N: N x real time")
    ingest.add_argument("--follow", action="store_true", help="keep reading lines appended to the file")
    ingest.add_argument("--ts-unit", default="auto", choices=TS_UNITS,
                        help="unit of numeric timestamps in generic files (default: inferred from their magnitude)")
    ingest.add_argument("--chunk-rows", type=int, default=100_000, help=argparse.SUPPRESS)
    ingest.set_defaults(func=cmd_ingest)

    sim = sub.add_parser("simulate", help="run the built-in market simulator into the hot tier")
    sim.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated symbols")
    sim.add_argument("--rate", type=float, default=100.0, help="mean trades per second per symbol")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds of simulated market")
    sim.add_argument("--speed", type=float, default=1.0, help="0: as fast as possible; 1: real time")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--start-ms", type=int, default=None, help="epoch ms of the first event (default: now)")
    sim.set_defaults(func=cmd_simulate)

    imp = sub.add_parser("import", help="bulk-import tick history straight into raw_ticks partitions")
    imp.add_argument("--source", required=True, help="file to read")
    imp.add_argument("--format", default="auto", choices=FORMATS)
    imp.add_argument("--ts-unit", default="auto", choices=TS_UNITS,
                     help="unit of numeric timestamps in generic files (default: inferred from their magnitude)")
    imp.add_argument("--chunk-rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    imp.set_defaults(func=cmd_import)

    mat = sub.add_parser("materialize", help="archive ticks and build bars and indicators of every date with data")
    mat.add_argument("--symbol", default=None, help="build only this symbol's data of the dates")
    mat.add_argument("--start", default=None, help="first UTC date, YYYY-MM-DD")
    mat.add_argument("--end", default=None, help="last UTC date, YYYY-MM-DD")
    mat.add_argument("--daemon", action="store_true",
                     help="submit the dates as a backfill for the Dagster daemon instead of building them here")
    mat.set_defaults(func=cmd_materialize)

    data = sub.add_parser("backtest-data", help="ticks or bars of a symbol from every tier, for backtests")
    data.add_argument("symbol")
    data.add_argument("start", help="first UTC date, YYYY-MM-DD")
    data.add_argument("end", help="last UTC date, YYYY-MM-DD (inclusive)")
    data.add_argument("--kind", default="ticks", choices=("ticks", "bars"))
    data.add_argument("--timeframe", default=None, help="bar timeframe (1m, 5m, 15m, 1h, 1d); needed for bars")
    data.add_argument("--out", default=None, help="write FILE.parquet or FILE.csv instead of printing a summary")
    data.set_defaults(func=cmd_backtest_data)

    mig = sub.add_parser("migrate", help="apply pending warm-tier schema migrations to FRACTAL_WARM_DB")
    mig.set_defaults(func=cmd_migrate)

    health = sub.add_parser("health", help="check every tier; exit 1 when unhealthy")
    health.add_argument("--json", action="store_true")
    health.set_defaults(func=cmd_health)

    stat = sub.add_parser("status", help="ingest latency, throughput, memory per symbol, backlog, cache hit rate")
    stat.add_argument("--json", action="store_true")
    stat.set_defaults(func=cmd_status)

    red = sub.add_parser("redis", help="manage the embedded Redis under the data dir")
    red.add_argument("action", choices=("start", "stop"))
    red.set_defaults(func=cmd_redis)

    bak = sub.add_parser("backup", help="back up the warm and cold tiers (and Redis) into a new directory under DEST")
    bak.add_argument("dest", help="directory that receives a new fractal-backup-<UTC time> directory")
    bak.add_argument("--redis", action="store_true", help="also export this deployment's Redis keys (DUMP/PTTL)")
    bak.set_defaults(func=cmd_backup)

    res = sub.add_parser("restore", help="verify a backup's checksums, then restore it")
    res.add_argument("src", help="a fractal-backup-<UTC time> directory")
    res.add_argument("--redis", action="store_true", help="also restore the Redis keys, under this deployment's prefix")
    res.add_argument("--force", action="store_true", help="overwrite a warm DB, cold tier or Redis keys that hold data")
    res.set_defaults(func=cmd_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; ``argv`` None means the process's own arguments: the program is then
    ending, so its objects are frozen out of the garbage collector first (see ``_run``)."""
    if argv is None:
        code = _run(sys.argv[1:])
        gc.freeze()
        return code
    return _run(argv)


def _run(argv: list[str]) -> int:
    """Parse and run a command. What it creates is private to its owner: the process umask is
    that of ``filemodes`` while the command runs (restored after, for callers in-process).
    (Freezing every object before the interpreter exits spares its final cycle collections
    over pandas', pyarrow's and Redis's modules: about 0.2 s of every command.)"""
    args = build_parser().parse_args(argv)
    previous_umask = os.umask(filemodes.umask())
    try:
        return args.func(args)
    except Exception as exc:
        if _is_redis_error(exc):
            from fractal_assets.hot.connection import redis_name

            name = redis_name(Config.from_env(data_dir=args.data_dir))
            print(f"fractal: error: {name}: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
            return 1
        if not isinstance(exc, USER_ERRORS):
            raise
        print(f"fractal: error: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        os.umask(previous_umask)


USER_ERRORS = (ValueError, OSError, EOFError)
"""What a user's files, paths and arguments can make a command raise: bad values and formats
(ValueError, which includes Arrow's ArrowInvalid), missing or unreadable files (OSError), and
files that end too early (EOFError)."""
MESSAGE_CHARS = 500


def one_line(exc: BaseException) -> str:
    """An error message on one line of printable text, shortened: a message may quote a file's
    bytes."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def _is_redis_error(exc: Exception) -> bool:
    """Whether a command failed on Redis (only a command that used Redis has imported it)."""
    errors = sys.modules.get("redis.exceptions")
    return errors is not None and isinstance(exc, (errors.RedisError, errors.RedisClusterException))


if __name__ == "__main__":
    sys.exit(main())
