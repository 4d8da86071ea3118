"""The bounds view in real headless Chromium against a real `bumpfit serve`: a trained network's page draws
each output's guaranteed and reached range over the training box, and again over a box the user edits."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.conftest import Service
from tests.e2e.conftest import screenshot

RNG = np.random.default_rng(5)
X = RNG.uniform(0, 1, (300, 2))
Y = np.stack([np.sin(3 * X[:, 0]) * X[:, 1], X[:, 0] - X[:, 1] ** 2], axis=1)


def test_the_bounds_view_draws_each_output_over_a_box_the_user_edits(page: Any, service: Service) -> None:
    body = {
        "model": {
            "layers": [
                {"type": "dense", "units": 8},
                {"type": "bump", "sigma_init": 0.5},
                {"type": "dense", "units": 2},
            ]
        },
        "data": {"kind": "inline", "x": X.tolist(), "y": Y.tolist(), "normalize": "standard"},
        "training": {"epochs": 5, "seed": 1},
        "model_name": "bounded",
    }
    job = service.http.post("/v1/jobs", json=body).json()
    assert service.wait_job(job["id"])["status"] == "succeeded"
    page.goto("/#/models")
    page.click("section[data-model=bounded] a.bounds-link")
    page.wait_for_selector("#view[data-done]")
    rows = page.locator(".bounds-output")
    assert rows.count() == 2
    assert (
        page.locator(".bounds-track .guaranteed").count() == 2 and page.locator(".bounds-track .reached").count() == 2
    )
    first = service.http.post("/v1/models/bounded:bounds", json={}).json()
    assert float(page.input_value("[name=lower-0]")) == first["box"]["lower"][0]
    assert page.locator("label[data-feature=x1]").count() == 1  # the inputs by the table's own names
    page.fill("[name=lower-0]", "0.25")
    page.fill("[name=upper-0]", "0.5")
    page.select_option("[name=method]", "linear")
    page.evaluate("delete document.querySelector('#view').dataset.done")
    page.click("#bound")
    page.wait_for_selector("#view[data-done]")
    assert page.inner_text("#bounds-status").startswith("method linear")
    asked = {"box": {"lower": [0.25, first["box"]["lower"][1]], "upper": [0.5, first["box"]["upper"][1]]}}
    expected = service.http.post("/v1/models/bounded:bounds", json={**asked, "method": "linear"}).json()
    values = page.inner_text(".bounds-output[data-output='0'] .bounds-values")
    shown = str(float(f"{expected['outputs'][0]['reached']['max']:.5g}"))  # as the dashboard's fmt writes it
    assert shown in values, (shown, values)
    screenshot(page, "dashboard-bounds.png")
    assert page.errors == []
