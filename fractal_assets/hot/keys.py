"""Every Redis key format of the hot tier, defined once.

Per-symbol keys carry the symbol as a ``{SYMBOL}`` hash tag, so all keys of
one symbol land in the same Redis Cluster slot and can be written in one atomic
step. A source's bookkeeping (its checkpoint, dead letters and rejection counts)
carries the source id as a ``{SOURCE_ID}`` hash tag for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from fractal_assets.market.symbols import SYMBOL_GRAMMAR, SYMBOL_RE, InvalidSymbol


@dataclass(frozen=True)
class Keys:
    """Key builder bound to an optional deployment prefix."""

    prefix: str = ""

    @staticmethod
    def _tag(symbol: str) -> str:
        """The ``{SYMBOL}`` hash tag, refusing anything that is not a normalized symbol, so no
        caller can smuggle a pattern, separator or another key into a key name."""
        if not SYMBOL_RE.match(symbol):
            raise InvalidSymbol(f"{symbol!r} is not a normalized symbol: it must match {SYMBOL_GRAMMAR}")
        return f"{{{symbol}}}"

    @staticmethod
    def _source_tag(source_id: str) -> str:
        """The ``{SOURCE_ID}`` hash tag; a brace in the id would end the tag early and move
        the key to another slot than the rest of the source's keys."""
        if not source_id or "{" in source_id or "}" in source_id:
            raise ValueError(f"{source_id!r} is not a source id: it must be non-empty and have no braces")
        return f"{{{source_id}}}"

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
        """Hash: how far the source got (every record up to ``handled`` is stored or rejected)."""
        return f"{self.prefix}ckpt:source:{self._source_tag(source_id)}"

    def content(self, source_id: str) -> str:
        """Hash: the content of a file source as last read (``path``, ``bytes``, ``digest``)."""
        return f"{self.prefix}content:{self._source_tag(source_id)}"

    def contents_by_digest(self) -> str:
        """Hash: digest of a content read -> the source id it belongs to."""
        return f"{self.prefix}contents:digest"

    def contents_by_path(self) -> str:
        """Hash: absolute path -> the source id of the content last read there."""
        return f"{self.prefix}contents:path"

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
        """Stream of every source's rejected records with their reasons (each names its source)."""
        return f"{self.prefix}deadletter:ticks"

    def dead_letter_marks(self) -> str:
        """Hash: source id -> sequence number of its last dead-lettered record. Its hash tag is
        the dead-letter stream's whole name, so the two share a cluster slot."""
        return f"{self.prefix}deadletter:marks{{{self.dead_letter()}}}"

    def ingest_metrics(self, source_id: str) -> str:
        """Hash: latency percentiles, throughput and counters of the ingest process of a source."""
        return f"{self.prefix}metrics:ingest:{source_id}"

    def symbol_metrics(self, symbol: str) -> str:
        """Hash: ring-buffer bytes, ticks and newest tick time of a symbol."""
        return f"{self.prefix}metrics:{self._tag(symbol)}"

    def rejected_counts(self, source_id: str) -> str:
        """Hash: rejection reason -> count of the source's rejected records."""
        return f"{self.prefix}stats:rejected:{self._source_tag(source_id)}"

    def backtest(self, symbol: str, start: str, end: str, kind: str, timeframe: str | None) -> str:
        """Cached ``get_backtest_data`` result (msgpack {v, version, ipc}); ``-`` for no timeframe."""
        return f"{self.prefix}backtest:{self._tag(symbol)}:{start}:{end}:{kind}:{timeframe or '-'}"

    def cache_stats(self) -> str:
        """Hash: hit / miss / skip -> backtest-data cache lookups."""
        return f"{self.prefix}stats:cache"
