"""The market data model: record layouts, ticks, bars, order books, symbols and UTC days."""
