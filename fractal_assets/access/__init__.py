"""Reading every tier for users: backtest data, indicator data, the result cache."""
