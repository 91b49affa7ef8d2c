"""Dagster software-defined assets of fractal-alpha."""
