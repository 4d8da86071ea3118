"""Fuzzing: schemathesis against the OpenAPI schema (no 5xx, responses match the schema), one
operation at a time and statefully (created jobs, datasets and models fed to the operations that
take their ids), and hypothesis on the data parsers (finite float32 arrays, or a clear refusal)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from app.datasets import uploads
from app.errors import InvalidInput
from app.jobs.schemas import JobRequest
from app.main import create_app
from app.model import data
from app.settings import Settings
from app.store import migrate
from app.store.db import engine_for
from app.store.models import Base

DB = f"sqlite:///{Path(tempfile.mkdtemp()) / 'fuzz.db'}"
migrate.upgrade(DB)
# Small limits keep generated jobs and uploads cheap (the default n, 100000, still fits); no worker
# runs, so jobs only queue.
APP = create_app(Settings(database_url=DB, max_points=100_000, max_sweep_jobs=20, max_compute=10**8))
# The events stream of an unfinished job never ends by design: it is tested in test_hostile.
# A request over a limit (a sweep of too many points) is refused with 413 before its points' types
# are checked one by one: for schema-violating data that is a refusal as good as a 422.
REJECTED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG).exclude(path_regex=r".*/events$")
# Not checked: schema-valid bodies may still break a rule the schema cannot state (x_range
# ordered, limits), and Starlette's 405 Allow header names one route's methods per path.
EXCLUDED = [checks.positive_data_acceptance, checks.allow_header_conformance]


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)


class Stateful(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls linked through the ids the responses carry (links inferred by schemathesis)."""

    def setup(self) -> None:
        # Each sequence starts from an empty database: a response must depend on the sequence alone
        # (an idempotency key or a model name left by an earlier sequence would change the answers
        # hypothesis replays, which it refuses as a flaky strategy).
        with engine_for(DB).begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
        case.validate_response(response, excluded_checks=EXCLUDED, additional_checks=additional_checks)


def test_api_statefully_never_answers_5xx() -> None:
    Stateful.run(
        settings=settings(
            max_examples=25, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
        )
    )


items = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**40), 10**40),
    st.text(max_size=3),
    st.none(),
    st.lists(st.floats(allow_nan=True), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(x=st.lists(items, max_size=6), y=st.lists(items, max_size=6))
def test_pair_parses_or_refuses_clearly(x: list[Any], y: list[Any]) -> None:
    try:
        xa, ya = data.pair(x, y, "data", 100, 4)
    except InvalidInput as exc:
        assert exc.message.startswith("data")
        return
    assert xa.dtype == ya.dtype == np.float32 and xa.shape == ya.shape == (len(x), xa.shape[1])
    assert np.isfinite(xa).all() and np.isfinite(ya).all()


@settings(max_examples=200, deadline=None)
@given(
    content=st.one_of(st.binary(max_size=200), st.text(alphabet="0123456789.,-xyen\n ", max_size=200).map(str.encode)),
    npz=st.booleans(),
)
def test_upload_parser_parses_or_refuses_clearly(content: bytes, npz: bool) -> None:
    try:
        x, y = uploads.parse("d.npz" if npz else "d.csv", content, uploads.Limits(10_000, 1000, 8))
    except InvalidInput:
        return
    assert x.shape == y.shape and len(x) > 0 and np.isfinite(x).all() and np.isfinite(y).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["layer", "data", "training", "device", "model_name", "x"]), json_values, max_size=4
    )
)
def test_job_request_validates_or_refuses(body: dict[str, Any]) -> None:
    try:
        JobRequest.model_validate(body)
    except ValidationError:
        pass
