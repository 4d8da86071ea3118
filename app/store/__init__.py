"""The database: engines and sessions, migrations, the tables' registry, ids and pages, set-based
bulk writes, and the job queue (its state machine, progress, wake-ups, model versions, retention)."""
