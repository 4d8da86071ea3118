"""`python -m app.cli`: the `bumpfit` command."""

from app.cli import main

if __name__ == "__main__":
    main()
