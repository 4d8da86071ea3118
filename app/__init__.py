"""bumpfit API: accepts training jobs, queues them in the database, serves results."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bumpfit")  # the one place it is written: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
