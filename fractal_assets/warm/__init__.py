"""The warm tier: SQLite tables prefixed ``fractal_``, safe to share a host application's database."""
