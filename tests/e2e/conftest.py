"""Fixtures of the end-to-end tests: a real `bumpfit serve` per module (the dashboard's and the
CLI's tests use it; a module may define its own `service`, as the OpenAPI client's does), and for
the browser tests Debian's headless Chromium, a fresh page per test, and screenshots under
test-artifacts/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMAGES = ROOT / "docs" / "images"  # the README's and the docs' pictures of the dashboard


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real `bumpfit serve` with one worker on a SQLite file, taking sweeps of up to 20,000 jobs
    (a dashboard test draws one past the 10,000 its charts show)."""
    tmp = tmp_path_factory.mktemp("service")
    env = {"BUMPFIT_MAX_SWEEP_JOBS": "20000"}
    svc = Service(f"sqlite:///{tmp / 'bumpfit.db'}", workers=1, env=env, log=tmp / "serve.log")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no downloaded test browser)."""
    if os.environ.get("CI"):  # CI installs both (.ci/run): there a missing browser is a failure
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        assert not os.environ.get("CI"), f"{CHROMIUM} is missing"
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    """A fresh page on the service; `page.errors` collects console errors and uncaught exceptions."""
    context = browser.new_context(base_url=service.base, viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def screenshot(page: Any, name: str, docs: bool = False) -> Path:
    """Save a full-page screenshot under test-artifacts/ and print its path; with `docs` and
    BUMPFIT_DOCS_SCREENSHOTS=1, also as the picture of the same name in docs/images/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    if docs and os.environ.get("BUMPFIT_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS_IMAGES / name)
    return path
