"""booker-assets: every Booker API report as daily-partitioned Dagster assets in DuckDB."""
