"""The bumpfit API with one extra hello-world route, the floor bench/load.py compares against."""

from app.main import create_app

app = create_app()


@app.get("/hello", include_in_schema=False)
def hello() -> dict[str, str]:
    """The cheapest FastAPI endpoint: the floor for predict's latency."""
    return {"hello": "world"}
