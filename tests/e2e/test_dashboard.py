"""The dashboard in real headless Chromium (Debian's `chromium`) against a real `bumpfit serve`,
and the SVG plot files. Screenshots are kept under test-artifacts/ (fixtures: tests/e2e/conftest.py)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from app.dashboard.plots import job_svg, nice_ticks
from app.http.auth import new_key
from app.store import queue
from app.store.db import session_scope
from tests.conftest import Service, seed_job
from tests.e2e.conftest import screenshot

SVG = "{http://www.w3.org/2000/svg}"
# Count the drawn (non-transparent) pixels of the first canvas under a selector.
INKED = """(sel) => {
  const c = document.querySelector(sel + ' canvas');
  if (!c) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""


def test_dashboard_loads_offline_without_console_errors(page: Any, service: Service) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto("/")
    page.wait_for_selector("table#jobs")
    assert page.title() == "bumpfit"
    assert page.evaluate("typeof uPlot") == "function"
    page.click("text=Submit")
    page.wait_for_selector("#submit-form")
    assert page.input_value("[name='data.params.sigma']") == "0.5"
    assert page.input_value("[name='data.n']") == "100000"
    assert page.input_value("[name='training.epochs']") == "5"
    assert page.errors == []
    foreign = [u for u in requested if not u.startswith((service.base, "data:"))]
    assert foreign == [], "the dashboard must work offline (no CDN)"


def test_form_job_appears_progresses_live_and_shows_its_chart(page: Any, service: Service) -> None:
    page.goto("/#/new")
    page.wait_for_selector("#submit-form")
    # Record what the new row shows on every DOM change, from before it exists to the end (no reloads).
    page.evaluate("""() => {
      window.seen = [];
      new MutationObserver(() => {
        const tr = document.querySelector('tr.new');
        if (!tr) return;
        const s = tr.dataset.status + ' ' + tr.querySelector('.c-progress').textContent;
        if (window.seen[window.seen.length - 1] !== s) window.seen.push(s);
      }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
    }""")
    for name, value in {
        "data.params.sigma": "0.3",
        "data.n": "5000",
        "training.epochs": "2",
        "data.seed": "1",
        "training.seed": "2",
    }.items():
        page.fill(f"[name='{name}']", value)
    page.click("#submit-job")
    row = page.locator("tr.new")
    row.wait_for()
    job_id = row.get_attribute("data-job-id")
    page.wait_for_selector("tr.new[data-status=succeeded]", timeout=90_000)
    seen = page.evaluate("window.seen")
    assert seen[-1] == "succeeded 2/2", seen
    assert any(s.split()[0] in ("queued", "running") for s in seen), seen  # it changed while we watched
    sigma = float(row.locator(".c-sigma").inner_text())
    assert sigma == pytest.approx(service.http.get(f"/v1/jobs/{job_id}").json()["params"]["sigma"], rel=1e-3)
    assert row.locator(".c-data-sigma").inner_text() == "0.3"
    assert row.locator(".c-device").inner_text().startswith(("CPU", "GPU"))
    screenshot(page, "dashboard-jobs.png", docs=True)

    row.locator(".c-id a").click()
    page.wait_for_selector("#chart-loss canvas")
    page.wait_for_selector("#chart-fit canvas")
    assert page.get_attribute("#chart-loss", "data-points") == "2"
    assert page.get_attribute("#chart-params", "data-points") == "2"
    assert int(page.get_attribute("#chart-fit", "data-points") or 0) > 400  # sample + curve grid
    for chart in ("#chart-loss", "#chart-params", "#chart-fit"):
        assert page.evaluate(INKED, chart) > 1000, f"{chart} looks blank"
    assert "sigma=" in page.inner_text("#learned")
    screenshot(page, "dashboard-job.png", docs=True)
    assert page.errors == []


def test_sweep_page_plots_learned_against_target_sigma(page: Any, service: Service) -> None:
    base = seed_job(n=5000, epochs=2)
    grid = {"data.params.sigma": [0.2, 0.35, 0.5]}
    res = service.http.post("/v1/sweeps", json={"base": base, "grid": grid})
    assert res.status_code == 201, res.text
    sweep = res.json()
    page.goto(f"/#/sweeps/{sweep['id']}")
    page.wait_for_selector("main[data-done=true]", timeout=90_000)
    page.wait_for_selector("#chart-sweep canvas")
    assert page.get_attribute("#chart-sweep", "data-points") == "3"
    assert page.evaluate(INKED, "#chart-sweep") > 1000
    assert page.evaluate(INKED, "#chart-sweep-error") > 500
    rows = page.locator("#sweep-jobs tbody tr")
    assert rows.count() == 3
    assert page.locator("#sweep-jobs tr[data-status=succeeded]").count() == 3
    assert "3 succeeded" in page.inner_text("#sweep-counts")
    screenshot(page, "dashboard-sweep.png", docs=True)
    assert page.errors == []


def test_cancel_button_stops_a_running_job(page: Any, service: Service) -> None:
    job = service.http.post("/v1/jobs", json=seed_job(n=2000, epochs=20000)).json()
    page.goto(f"/#/jobs/{job['id']}")
    page.click("button.cancel")
    page.wait_for_selector("main .toolbar .status.cancelled", timeout=60_000)
    assert service.http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert page.locator("button.cancel").count() == 0
    assert page.errors == []


def test_form_shows_the_api_error_as_phrased(page: Any, service: Service) -> None:
    page.goto("/#/new")
    page.fill("[name='data.params.sigma']", "-1")
    page.click("#submit-job")
    page.wait_for_selector("#error:not([hidden])")
    expected = service.http.post("/v1/jobs", json={"data": {"kind": "synthetic", "params": {"sigma": -1}}})
    assert expected.status_code == 422
    assert page.inner_text("#error") == expected.json()["error"]["message"]
    assert page.url.endswith("#/new")  # nothing was submitted


def test_unknown_job_page_shows_the_api_error(page: Any) -> None:
    page.goto("/#/jobs/nope")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "no job with id 'nope'"


def test_with_keys_on_the_dashboard_asks_for_a_key_and_works_with_a_read_key(browser: Any, tmp_path: Path) -> None:
    read, read_entry = new_key("read")
    submit, submit_entry = new_key("submit")
    env = {"BUMPFIT_API_KEYS": f"{read_entry},{submit_entry}"}
    svc = Service(f"sqlite:///{tmp_path / 'keys.db'}", workers=0, env=env, log=tmp_path / "serve.log")
    context = browser.new_context(base_url=svc.base, viewport={"width": 1400, "height": 1000})
    try:
        job = svc.http.post("/v1/jobs", json=seed_job(), headers={"Authorization": f"Bearer {submit}"}).json()
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[Any] = []
        page.on("request", lambda r: requests.append(r))
        page.goto("/")
        page.wait_for_selector("#key-form")
        assert "missing API key" in page.inner_text("#key-reason")
        page.fill("#api-key", "bf_not-a-key")
        page.click("#use-key")
        page.wait_for_function("() => document.querySelector('#key-reason')?.textContent.includes('unknown API key')")
        screenshot(page, "dashboard-key-form.png")
        page.fill("#api-key", read)
        signed_in = len(requests)
        page.click("#use-key")
        row = page.locator(f"#jobs tr[data-job-id='{job['id']}'][data-status=queued]")
        row.wait_for()
        screenshot(page, "dashboard-keys.png")
        page.reload()  # the tab keeps its key
        row.wait_for()
        assert page.evaluate("sessionStorage.getItem('bumpfit.api-key')") == read
        # From then on every API call, the job's event stream included, carried the key in a header.
        calls = [r for r in requests[signed_in:] if "/v1/" in r.url]
        (stream, *_) = [r for r in calls if r.url.endswith(f"/v1/jobs/{job['id']}/events")]
        assert stream.response().status == 200
        assert {r.all_headers().get("authorization") for r in calls} == {f"Bearer {read}"}
        assert not [r.url for r in requests if read in r.url]  # never in a URL
        row.locator("button.cancel").click()  # a read key may not cancel: the API's refusal shows
        page.wait_for_selector("#error:not([hidden])")
        assert "'read'" in page.inner_text("#error")
        page.click("#forget-key")
        page.wait_for_selector("#key-form")
        assert page.evaluate("sessionStorage.getItem('bumpfit.api-key')") is None
        assert [e for e in errors if "Failed to load resource" not in e] == []  # the 401s and 403 themselves
    finally:
        context.close()
        svc.stop()


def test_plot_svg_and_sample(service: Service) -> None:
    job = service.http.post("/v1/jobs", json=seed_job(sigma=0.4, n=5000, epochs=3)).json()
    service.wait_job(job["id"])
    res = service.http.get(f"/v1/jobs/{job['id']}/plot.svg")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(res.text)
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f".//{SVG}polyline")) == 2  # loss and sigma
    assert "data sigma 0.4" in res.text
    sample = service.http.get(f"/v1/jobs/{job['id']}/sample", params={"size": 50}).json()
    assert sample["n"] == 5000 and len(sample["x"]) == len(sample["y"]) == 50
    for x, y in zip(sample["x"], sample["y"], strict=True):
        expected = math.exp(-0.4 / (0.4 - x * x)) if x * x < 0.16 else 0.0
        assert y == pytest.approx(expected, abs=1e-6)
    missing = service.http.get("/v1/jobs/nope/plot.svg")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no job with id 'nope'"
    spec = service.http.get("/openapi.json").json()
    responses = spec["paths"]["/v1/jobs/{job_id}/plot.svg"]["get"]["responses"]
    assert "image/svg+xml" in responses["200"]["content"]
    assert service.http.get("/").headers["content-type"].startswith("text/html")
    assert service.http.get("/dashboard/static/%2e%2e/router.py").status_code == 404


def test_job_svg_draws_log_loss_and_every_parameter() -> None:
    job = {
        "id": "j1",
        "status": "running",
        "progress": {"epoch": 3, "epochs": 5},
        "spec": {"data": {"params": {"a": 1.0, "b": 1.0, "c": 0.0}}},
    }
    history = [
        {
            "epoch": e,
            "loss": 10.0**-e,
            "val_loss": 0.0 if e == 1 else 2 * 10.0**-e,
            "params": {"a": 1 + e, "b": [0.5, 0.6], "c": -e},
        }
        for e in (1, 2, 3)
    ]
    root = ET.fromstring(job_svg(job, history))
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"loss", "val_loss", "a", "b[0]", "b[1]", "c", "0.001", "0.1"} <= labels
    # loss, val_loss (its 0 is left off the log axis), and a, b[0], b[1], c
    assert len(root.findall(f".//{SVG}polyline")) == 6
    empty = ET.fromstring(job_svg(job, []))
    assert "no finished epochs yet" in {t.text for t in empty.iter(f"{SVG}text")}
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_a_20000_job_sweep_page_samples_its_charts_and_lists_the_first_rows(page: Any, service: Service) -> None:
    # "gpu" jobs: the service's CPU worker leaves them queued, and the test settles them at once
    size = 20_000
    sigmas = [round(0.1 + 0.8 * i / (size - 1), 6) for i in range(size)]
    body = {
        "base": {**seed_job(n=100, epochs=1), "device": "gpu"},
        "points": [{"data.params.sigma": s} for s in sigmas],
    }
    res = service.http.post("/v1/sweeps", json=body, timeout=120)
    assert res.status_code == 201, res.text
    with session_scope(service.database_url) as s:
        token, jobs = queue.claim(s, "test:1", ("gpu",), size, 60)
        assert len(jobs) == size
        queue.succeed_many(
            s,
            token,
            {
                j.id: {
                    "params": {"sigma": j.spec["data"]["params"]["sigma"] * 1.001},
                    "metrics": {"loss": 1e-6},
                    "warnings": [],
                }
                for j in jobs
            },
        )
    page.goto(f"/#/sweeps/{res.json()['id']}")
    page.wait_for_selector("main[data-done=true]", timeout=60_000)
    # one job in two, from the first sigma to the last: the charts span the whole sweep
    assert page.get_attribute("#chart-sweep", "data-points") == "10000"
    assert page.evaluate(INKED, "#chart-sweep") > 1000
    note = page.inner_text("#sweep-table-note")
    assert "first 500 of 20000" in note and "one job in 2" in note
    assert page.locator("#sweep-jobs tbody tr").count() == 500
    page.click("#more-jobs")  # the table is paged
    page.wait_for_function("() => document.querySelectorAll('#sweep-jobs tbody tr').length === 1000")
    assert "20000 jobs: 20000 succeeded" in page.inner_text("#sweep-counts")
    screenshot(page, "dashboard-sweep-10000.png")
    page.click("a[href='#/']")  # and the page still answers: back to the jobs list
    page.wait_for_selector("#jobs tbody tr")
    assert page.errors == []


def test_a_finished_job_shows_its_labels_and_its_delete_button_deletes_it(page: Any, service: Service) -> None:
    job = service.http.post("/v1/jobs", json={**seed_job(n=2000, epochs=1), "model_name": "dash-del"}).json()
    done = service.wait_job(job["id"])
    assert done["status"] == "succeeded"
    assert service.http.put("/v1/models/dash-del/labels/stable", json={"version": 1}).status_code == 200
    page.on("dialog", lambda d: d.accept())
    page.goto(f"/#/jobs/{job['id']}")
    page.wait_for_selector("button.delete")
    assert page.inner_text("#labels") == "stable"
    page.click("button.delete")  # refused while the label points at its version
    page.wait_for_selector("#error:not([hidden])")
    assert "stable" in page.inner_text("#error")
    assert service.http.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert service.http.delete("/v1/models/dash-del/labels/stable").status_code == 204
    page.reload()
    page.wait_for_selector("button.delete:not([disabled])")
    page.click("button.delete")
    page.wait_for_function("() => location.hash === '#/'")  # a function: an expression is eval'd, which the CSP refuses
    assert service.http.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert [e for e in page.errors if "Failed to load resource" not in e] == []  # the 409 answer itself


def test_a_network_sweep_and_job_show_params_per_layer_and_the_swept_values(page: Any, service: Service) -> None:
    net = [{"type": "dense", "units": 12}, {"type": "bump"}, {"type": "dense", "units": 1}]
    base = {
        "model": {"layers": net},
        "data": {"kind": "inline", "x": [[i / 20, 1 - i / 20] for i in range(20)], "y": [[i / 40] for i in range(20)]},
        "training": {"epochs": 2, "validation_split": 0.25, "metrics": ["mae"]},
        "device": "gpu",  # the service's CPU worker leaves them queued: the test settles them
    }
    res = service.http.post("/v1/sweeps", json={"base": base, "grid": {"model.layers.1.sigma_init": [0.2, 0.7]}})
    assert res.status_code == 201, res.text
    ids = res.json()["jobs"]
    with session_scope(service.database_url) as s:
        token, jobs = queue.claim(s, "test:1", ("gpu",), 2, 60)
        assert sorted(j.id for j in jobs) == sorted(ids)
        results = {
            job_id: {
                "params": {"bump_1": {"sigma": [0.3 + i / 10 + u / 100 for u in range(12)]}},
                "metrics": {"loss": 0.02 + i, "val_loss": 0.03 + i, "mae": 0.1, "val_mae": 0.12 + i},
                "warnings": [],
            }
            for i, job_id in enumerate(ids)
        }
        queue.succeed_many(s, token, results)
    page.goto(f"/#/sweeps/{res.json()['id']}")
    page.wait_for_selector("main[data-done=true]")
    heads = page.locator("#sweep-jobs thead th").all_text_contents()  # as written, not upper-cased by CSS
    assert "target σ" not in heads and "learned σ" not in heads
    row = dict(zip(heads, page.locator(f"#sweep-jobs tr[data-job-id='{ids[1]}'] td").all_inner_texts(), strict=True))
    assert row["model.layers.1.sigma_init"] == "0.7"
    assert row["learned"] == "bump_1.sigma=median 0.46 in [0.4, 0.51] (12 units)"
    assert (row["loss"], row["val_loss"], row["val_mae"]) == ("1.02", "1.03", "1.12")
    screenshot(page, "dashboard-network-sweep.png")
    assert page.errors == []
    page.goto(f"/#/jobs/{ids[0]}")
    page.wait_for_selector("#network")
    assert page.inner_text("#learned") == "bump_1.sigma=median 0.36 in [0.3, 0.41] (12 units)"
    assert "val_mae=0.12" in page.inner_text("dl.summary")
    assert page.errors == []
