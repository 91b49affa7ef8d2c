"""The symbol grammar: a symbol names Redis keys and file paths, so it is checked once, here."""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"^[A-Z0-9._-]{1,32}$")


class InvalidSymbol(ValueError):
    """A symbol that may not reach a Redis key or a file path."""


def normalize_symbol(symbol: str) -> str:
    """Upper-case a symbol and check it against ``SYMBOL_RE``."""
    norm = str(symbol).strip().upper()
    if not SYMBOL_RE.match(norm):
        raise InvalidSymbol(f"symbol {symbol!r} must match {SYMBOL_RE.pattern} after upper-casing")
    return norm
