"""The `bumpfit` command (`bumpfit = "app.cli:main"`): local commands and the HTTP client's."""

from app.cli.commands import main

__all__ = ["main"]
