"""Webhooks from a real `bumpfit serve`: its dispatcher thread delivers a trained job's end to a
real local receiver after the receiver first refused it, signed per Standard Webhooks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import Service, seed_job, wait_for
from tests.receiver import receiver

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # a service that trains: ~30 s on 2 loaded cores


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    env = {"BUMPFIT_OUTBOX_RETRY_SECONDS": "0.2", "BUMPFIT_WEBHOOK_ALLOW_PRIVATE": "true"}  # a 127.0.0.1 receiver
    svc = Service(f"sqlite:///{tmp / 'bumpfit.db'}", workers=1, env=env, log=tmp / "serve.log")
    yield svc
    svc.stop()


def test_a_trained_job_is_announced(service: Service) -> None:
    with receiver() as rec:
        rec.statuses = [503]
        hook = service.http.post("/v1/webhooks", json={"url": rec.url, "events": ["job.succeeded"]}).json()
        job = service.http.post("/v1/jobs", json=seed_job(n=500, epochs=1)).json()["id"]
        assert service.wait_job(job)["status"] == "succeeded"
        wait_for(lambda: len(rec.requests) >= 2, 30, "the webhook's retry")
        first, second = rec.requests[:2]
        assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == f"msg_{job}_succeeded"
        event = Webhook(hook["secret"]).verify(second["body"], second["headers"])
        assert (
            event["data"]["id"] == job
            and event["data"]["metrics"] == service.http.get(f"/v1/jobs/{job}").json()["metrics"]
        )
    assert "token=abc" not in service.log_tail(400)  # the URL's query stays out of the log
