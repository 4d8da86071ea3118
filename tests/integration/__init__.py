"""Integration tests: the API and the queue in process, on SQLite and PostgreSQL."""
