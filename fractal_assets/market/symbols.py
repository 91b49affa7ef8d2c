"""The symbol grammar: a symbol names Redis keys and file paths, so it is checked once, here.

A symbol is 1 to 32 characters of ``A-Z``, ``0-9``, ``.``, ``_`` and ``-`` (lower case is
upper-cased first), holding at least one letter or digit and not starting with ``-``:
``BTCUSDT``, ``BTC-PERPETUAL``, ``ES.FUT``, ``.BXBT`` and ``1000PEPEUSDT`` are symbols,
``..``, ``---`` and ``-X`` (which reads as a command-line option) are not.
"""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"^(?=[A-Z0-9._-]*[A-Z0-9])[A-Z0-9._][A-Z0-9._-]{0,31}$")
SYMBOL_GRAMMAR = "the symbol grammar (1-32 of A-Z 0-9 . _ -, with a letter or digit, not starting with '-')"
"""``SYMBOL_RE`` in words, for error messages."""


class InvalidSymbol(ValueError):
    """A symbol that may not reach a Redis key or a file path."""


def normalize_symbol(symbol: str) -> str:
    """Upper-case a symbol and check it against the grammar."""
    norm = str(symbol).strip().upper()
    if not SYMBOL_RE.match(norm):
        raise InvalidSymbol(f"symbol {symbol!r} must match {SYMBOL_GRAMMAR} after upper-casing")
    return norm
