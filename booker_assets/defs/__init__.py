"""Dagster objects: partitions, assets, the DuckDB IO manager, checks, sensors, jobs."""
