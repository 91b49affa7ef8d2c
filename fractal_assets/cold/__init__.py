"""The cold tier: zstd Parquet files, hive-partitioned by symbol and date, read with DuckDB."""
