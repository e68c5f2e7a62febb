"""Dagster objects: partitions, assets, the DuckDB IO manager, checks, automation."""
