"""Open CDP orchestration: Dagster definitions, landing-file loading, sample data and CLI."""
