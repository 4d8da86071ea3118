"""The dashboard's lifecycle pages in headless Chromium against a real `bumpfit serve`: models with
their versions and labels, datasets, sweeps. Each action goes through the page; the API says what
happened (fixtures: tests/e2e/conftest.py)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Service, seed_job
from tests.e2e.conftest import screenshot

CSV = b"x,y\n" + b"".join(f"{i / 10},{i / 20}\n".encode() for i in range(10))


def upload(service: Service, name: str) -> str:
    # a file of its own per name (a comment after the data): the same file would be stored once (issue 34)
    res = service.http.post("/v1/datasets", files={"file": (name, CSV + f"# {name}\n".encode(), "text/csv")})
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def answering(page: Any) -> list[str]:
    """Accept every confirm dialog of the page; the list gathers their questions."""
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    return asked


def real_errors(page: Any) -> list[str]:
    """Console errors, less the browser's own line for each refused (4xx) answer."""
    return [e for e in page.errors if "Failed to load resource" not in e]


def test_the_nav_reaches_sweeps_models_and_datasets(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector("table#jobs")
    for link, selector in (("Sweeps", "table#sweeps"), ("Models", "#models"), ("Datasets", "table#datasets")):
        page.click(f"nav >> text={link}")
        page.wait_for_selector(selector)
    assert page.errors == []


def test_models_page_sets_and_removes_labels_and_deletes_a_version_once_unlabelled(page: Any, service: Service) -> None:
    ids = [
        service.http.post("/v1/jobs", json={**seed_job(sigma=s, n=2000, epochs=1), "model_name": "lc-model"}).json()[
            "id"
        ]
        for s in (0.3, 0.6)
    ]
    jobs = {job_id: service.wait_job(job_id) for job_id in ids}
    assert all(j["status"] == "succeeded" for j in jobs.values())
    job_id = ids[0]
    version = jobs[job_id]["model"]["version"]
    asked = answering(page)

    page.goto(f"/#/jobs/{job_id}")  # the job page links to the models page
    page.click("#manage-labels")
    row = page.locator(f"section.model[data-model='lc-model'] tr[data-version='{version}']")
    row.wait_for()
    assert row.locator(".c-job a").get_attribute("href") == f"#/jobs/{job_id}"
    assert "sigma=" in row.locator(".c-params").inner_text()
    assert row.locator(".c-loss").inner_text() not in ("", "—")

    row.locator("input[name=label]").fill("1bad")  # the API's 422, as phrased
    row.locator("button.set-label").click()
    page.wait_for_selector("#error:not([hidden])")
    assert "is not a label" in page.inner_text("#error")

    row.locator("input[name=label]").fill("stable")
    row.locator("button.set-label").click()
    row.locator(".model-label[data-label='stable']").wait_for()
    assert page.is_hidden("#error")
    label = service.http.get("/v1/models/lc-model/labels/stable")
    assert label.status_code == 200 and label.json()["version"] == version

    row.locator("button.delete-version").click()  # refused while the label points at it
    page.wait_for_selector("#error:not([hidden])")
    refused = service.http.delete(f"/v1/models/lc-model/versions/{version}")
    assert refused.status_code == 409
    assert page.inner_text("#error") == refused.json()["error"]["message"]
    assert f"Delete version {version} of model lc-model" in asked[-1]
    screenshot(page, "dashboard-models.png")

    row.locator(".model-label[data-label='stable'] button.unlabel").click()
    row.locator(".model-label").wait_for(state="detached")
    assert service.http.get("/v1/models/lc-model/labels/stable").status_code == 404
    assert "Remove label stable" in asked[-1]

    row.locator("button.delete-version").click()
    row.wait_for(state="detached")
    left = [v["version"] for v in service.http.get("/v1/models/lc-model").json()["versions"]]
    assert version not in left and len(left) == 1
    assert page.locator("section.model[data-model='lc-model'] tr[data-version]").count() == 1
    assert service.http.get(f"/v1/jobs/{job_id}").status_code == 200  # the job stays
    assert real_errors(page) == []


def test_datasets_page_deletes_a_dataset_and_refuses_one_a_queued_job_uses(page: Any, service: Service) -> None:
    unused, used = upload(service, "unused.csv"), upload(service, "used.csv")
    # a "gpu" job: the service's CPU worker leaves it queued
    job = service.http.post(
        "/v1/jobs", json={"data": {"kind": "dataset", "id": used}, "training": {"epochs": 1}, "device": "gpu"}
    ).json()
    asked = answering(page)
    page.goto("/#/datasets")
    used_row = page.locator(f"#datasets tr[data-dataset-id='{used}']")
    used_row.wait_for()
    assert used_row.locator(".c-filename").inner_text() == "used.csv"
    assert used_row.locator(".c-n").inner_text() == "10"
    assert used_row.locator(".c-kind").inner_text() == "upload"

    used_row.locator("button.delete").click()
    page.wait_for_selector("#error:not([hidden])")
    assert job["id"] in page.inner_text("#error")
    assert "queued or running" in page.inner_text("#error")
    assert service.http.get(f"/v1/datasets/{used}").status_code == 200

    page.click(f"#datasets tr[data-dataset-id='{unused}'] button.delete")
    page.locator(f"#datasets tr[data-dataset-id='{unused}']").wait_for(state="detached")
    assert service.http.get(f"/v1/datasets/{unused}").status_code == 404
    assert asked[-1].startswith(f"Delete dataset {unused} (unused.csv)?")

    assert service.http.post(f"/v1/jobs/{job['id']}:cancel").json()["status"] == "cancelled"
    used_row.locator("button.delete:not([disabled])").click()
    used_row.wait_for(state="detached")
    assert service.http.get(f"/v1/datasets/{used}").status_code == 404
    assert real_errors(page) == []


def test_datasets_page_reads_more_pages(page: Any, service: Service) -> None:
    for i in range(51):
        upload(service, f"d{i}.csv")
    listed = service.http.get("/v1/datasets", params={"limit": 1000}).json()["datasets"]
    page.goto("/#/datasets")
    page.wait_for_selector("#more:not([hidden])")
    rows = page.locator("#datasets tbody tr")
    assert rows.count() == 50
    page.click("#more")
    page.wait_for_selector("#more[hidden]", state="attached")
    assert rows.count() == len(listed)
    shown = [rows.nth(i).get_attribute("data-dataset-id") for i in range(rows.count())]
    assert shown == [d["id"] for d in listed]  # newest first, no row twice
    screenshot(page, "dashboard-datasets.png")
    assert page.errors == []


def test_sweeps_page_lists_a_sweep_and_links_to_it(page: Any, service: Service) -> None:
    res = service.http.post(
        "/v1/sweeps", json={"base": seed_job(n=2000, epochs=1), "grid": {"data.params.sigma": [0.3, 0.5]}}
    )
    assert res.status_code == 201, res.text
    sweep_id = res.json()["id"]
    page.goto("/#/sweeps")
    row = page.locator(f"#sweeps tr[data-sweep-id='{sweep_id}']")
    row.wait_for()
    assert row.locator(".c-jobs").inner_text() == "2"
    row.locator(".c-sweep a").click()
    page.wait_for_selector("main[data-done=true]", timeout=90_000)
    assert page.url.endswith(f"#/sweeps/{sweep_id}")
    assert "2 succeeded" in page.inner_text("#sweep-counts")
    assert page.errors == []


def test_models_page_shows_where_clients_reach_a_model(page: Any, service: Service) -> None:
    job = service.http.post("/v1/jobs", json={**seed_job(n=1000, epochs=1), "model_name": "ep-model"}).json()["id"]
    assert service.wait_job(job)["status"] == "succeeded"
    page.goto("/#/models")
    card = page.locator("section.model[data-model='ep-model']")
    card.wait_for()
    shown = {
        row.locator("th").text_content(): row.locator("code").text_content()
        for row in card.locator("table.endpoints tr").all()
    }
    base = service.base
    assert shown == {
        "TF Serving": f"POST {base}/v1/models/ep-model:predict",
        "V2 (KServe, Triton)": f"POST {base}/v2/models/ep-model/infer",
        "V2 metadata": f"GET {base}/v2/models/ep-model",
        "SavedModel": f"GET {base}/v1/models/ep-model/versions/1/artifact?format=saved_model",
        ".keras": f"GET {base}/v1/models/ep-model/versions/1/artifact",
    }
    for text in shown.values():  # each answers as said
        method, url = text.split(" ", 1)
        if method == "GET" and "format=" not in url:
            assert service.http.get(url).status_code == 200, url
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.1]}]}
    assert service.http.post(shown["V2 (KServe, Triton)"].split(" ", 1)[1], json=body).status_code == 200
    screenshot(page, "dashboard-model-endpoints.png")
    assert real_errors(page) == []
