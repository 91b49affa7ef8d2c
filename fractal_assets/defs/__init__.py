"""The Dagster code location: assets, checks, jobs, schedules, sensors, resources, partitions."""
