"""Every Redis key format of the hot tier, defined once.

Per-symbol keys carry the symbol as a ``{SYMBOL}`` hash tag, so all keys of
one symbol land in the same Redis Cluster slot and can share a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from fractal_assets.validation import SYMBOL_RE, InvalidSymbol


@dataclass(frozen=True)
class Keys:
    """Key builder bound to an optional deployment prefix."""

    prefix: str = ""

    @staticmethod
    def _tag(symbol: str) -> str:
        """The ``{SYMBOL}`` hash tag, refusing anything that is not a normalized symbol, so no
        caller can smuggle a pattern, separator or another key into a key name."""
        if not SYMBOL_RE.match(symbol):
            raise InvalidSymbol(f"{symbol!r} is not a normalized symbol ({SYMBOL_RE.pattern})")
        return f"{{{symbol}}}"

    def ticks(self, symbol: str) -> str:
        """Stream of msgpack tick micro-batches."""
        return f"{self.prefix}tick:{self._tag(symbol)}"

    def quotes(self, symbol: str) -> str:
        """Stream of msgpack best bid/offer micro-batches."""
        return f"{self.prefix}quote:{self._tag(symbol)}"

    def order_book(self, symbol: str) -> str:
        """Stream of msgpack top-of-book snapshots {bids, asks, ts}."""
        return f"{self.prefix}ob:{self._tag(symbol)}"

    def indicator(self, symbol: str, indicator: str, timeframe: str) -> str:
        """Latest real-time indicator value, msgpack {value, ts, meta}."""
        return f"{self.prefix}ind:{self._tag(symbol)}:{indicator}:{timeframe}"

    def checkpoint(self, symbol: str) -> str:
        """Hash: source id -> highest source sequence of this symbol stored."""
        return f"{self.prefix}ckpt:{self._tag(symbol)}"

    def archived(self, symbol: str, stream: str) -> str:
        """Hash: UTC date -> newest entry id of the ``ticks`` or ``quotes`` stream whose records
        of that date are in the cold tier."""
        return f"{self.prefix}archived:{self._tag(symbol)}:{stream}"

    def source_checkpoint(self, source_id: str) -> str:
        """Every record of the source up to this sequence is fully handled."""
        return f"{self.prefix}ckpt:source:{source_id}"

    def imports(self) -> str:
        """Hash: imported file id -> its index, which fixes its arrival-number range."""
        return f"{self.prefix}imports"

    def import_counter(self) -> str:
        """Counter handing out imported-file indexes."""
        return f"{self.prefix}imports:next"

    def symbols(self) -> str:
        """Set of every symbol ingest has seen."""
        return f"{self.prefix}symbols"

    def dead_letter(self) -> str:
        """Stream of rejected ticks with their reasons."""
        return f"{self.prefix}deadletter:ticks"

    def ingest_metrics(self, source_id: str) -> str:
        """Hash: latency percentiles, throughput and counters of the ingest process of a source."""
        return f"{self.prefix}metrics:ingest:{source_id}"

    def symbol_metrics(self, symbol: str) -> str:
        """Hash: ring-buffer bytes, ticks and newest tick time of a symbol."""
        return f"{self.prefix}metrics:{self._tag(symbol)}"

    def rejected_counts(self) -> str:
        """Hash: rejection reason -> count."""
        return f"{self.prefix}stats:rejected"

    def accepted_counts(self) -> str:
        """Hash: symbol -> ticks accepted."""
        return f"{self.prefix}stats:accepted"

    def backtest(self, symbol: str, start: str, end: str, kind: str, timeframe: str | None) -> str:
        """Cached ``get_backtest_data`` result (msgpack {v, version, ipc}); ``-`` for no timeframe."""
        return f"{self.prefix}backtest:{self._tag(symbol)}:{start}:{end}:{kind}:{timeframe or '-'}"

    def cache_stats(self) -> str:
        """Hash: hit / miss / skip -> backtest-data cache lookups."""
        return f"{self.prefix}stats:cache"
