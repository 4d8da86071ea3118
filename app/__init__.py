"""bumpfit API: accepts training jobs, queues them in the database, serves results."""

__version__ = "0.1.0"
