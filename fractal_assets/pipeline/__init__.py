"""The tick pipeline's work, free of Dagster: archive symbol-days, build and check their bars,
build their indicators (``build.build_days``)."""
