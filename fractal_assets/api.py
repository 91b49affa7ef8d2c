"""The public Python API of fractal-alpha: data for backtests and indicators from every tier."""

from fractal_assets.access.reads import cache_stats, get_backtest_data, get_data_for_indicator, get_fractal_indicators
from fractal_assets.access.stored import get_order_books, load_backtest_result, save_backtest_result

__all__ = [
    "cache_stats",
    "get_backtest_data",
    "get_data_for_indicator",
    "get_fractal_indicators",
    "get_order_books",
    "load_backtest_result",
    "save_backtest_result",
]
