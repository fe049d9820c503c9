"""Real engine servers for tests: one PostgreSQL (pgserver) per test session, fresh databases."""
