"""Storage: tables, migrations and every query (SQLite by default, PostgreSQL for replicas)."""
