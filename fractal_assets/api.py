"""The public Python API of fractal-alpha: data for backtests and indicators from every tier."""

from fractal_assets.access import cache_stats, get_backtest_data, get_data_for_indicator, get_fractal_indicators

__all__ = ["cache_stats", "get_backtest_data", "get_data_for_indicator", "get_fractal_indicators"]
