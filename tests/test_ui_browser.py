"""The Dagster UI and the run report in a real browser: asset graph, a materialisation, the pictures.

Starts `dagster dev` on a free loopback port with a temporary DAGSTER_HOME (a copy of the shared
sample run's, holding orchestration/dagster.yaml), drives Debian's Chromium (/usr/bin/chromium) with Playwright, and
saves screenshots to test-artifacts/. Skips only when Chromium is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.settings import PROJECT_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = PROJECT_DIR / "test-artifacts"
LOCATION = "orchestration.definitions"
EXPECTED_GROUPS = ("ingestion", "staging", "identity", "profiles", "features", "segments")
STARTUP_TIMEOUT = 300
RUN_TIMEOUT = 420

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Chromium is not installed at /usr/bin/chromium "
                              "(apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
        return response.read()


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())["data"]


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory,
               sample_pipeline_run: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`dagster dev` on a copy of the shared sample run's Dagster instance (its materialisations
    and their metadata are on the asset pages) and a warehouse of its own."""
    from tools.sample_data import generate

    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    shutil.copytree(sample_pipeline_run["DAGSTER_HOME"], home)
    shutil.copy(PROJECT_DIR / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    generate(customers=200, seed=3, out=root / "landing")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CDP_LANDING_DIR": str(root / "landing"),
        "CDP_WAREHOUSE": str(root / "warehouse.duckdb"),
        "CDP_PUBLICATION": str(root / "publication" / "cdp_bi.duckdb"),
        "CDP_SERVING_SNAPSHOT": str(root / "publication" / "cdp_serving.duckdb"),
        "CDP_ACTIVATION_DIR": str(root / "activation"),
        "CDP_LANDING_SENSOR": "stopped",
    }
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / "dagster_dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the teardown stops all it started
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"dagster dev exited with {process.returncode}:\n{_log_tail(log)}")
            try:
                _get(f"{base}/server_info")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster dev did not answer in {STARTUP_TIMEOUT}s:\n{_log_tail(log)}")
                time.sleep(1)
        yield base, log
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C for `dagster dev` (it shuts its webserver, daemon and code servers down), then harder."""
    for sig, grace in ((signal.SIGINT, 45), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    try:  # children left behind in the group (code servers) go too
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _dismiss_onboarding(page) -> None:
    """The first visit shows a 'Join the Dagster community' dialog."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5000)
        skip.click()
    except Exception:  # noqa: BLE001 - the dialog is optional (not shown once dismissed)
        pass


def _runs(base: str) -> list[dict]:
    data = _graphql(base, "{ runsOrError(limit: 20) { ... on Runs { results { runId status } } } }")
    return data["runsOrError"]["results"]


def _run_id(base: str, prefix: str) -> str:
    """The toast shows the first 8 characters of the run id."""
    (run_id,) = [r["runId"] for r in _runs(base) if r["runId"].startswith(prefix)]
    return run_id


def _run_status(base: str, run_id: str) -> str | None:
    return next((r["status"] for r in _runs(base) if r["runId"] == run_id), None)


def test_asset_graph_and_materialisation_in_the_browser(dagster_ui: tuple[str, Path]) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="the playwright Python package is not installed")
    base, log = dagster_ui
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(120_000)

            # The global asset graph lists every group.
            page.goto(f"{base}/asset-groups", wait_until="networkidle")
            _dismiss_onboarding(page)
            page.get_by_text("Global asset lineage").wait_for()
            for group in EXPECTED_GROUPS:
                page.get_by_text(group, exact=True).first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "ui_asset_graph.png"))

            # A small selection: the ingestion group (the landing-file loader).
            page.goto(f"{base}/locations/{LOCATION}/asset-groups/ingestion",
                      wait_until="networkidle")
            _dismiss_onboarding(page)
            page.get_by_text("Asset Group in").wait_for()
            page.get_by_role("button", name="Materialize all").click()
            toast = page.get_by_text("Launched run")
            toast.wait_for()
            run_id_prefix = toast.inner_text().split()[-1]
            run_id = _run_id(base, run_id_prefix)
            page.goto(f"{base}/runs/{run_id}", wait_until="networkidle")

            # Wait for the run to finish: the run page shows its status as it changes.
            deadline = time.monotonic() + RUN_TIMEOUT
            status = None
            while time.monotonic() < deadline:
                status = _run_status(base, run_id)
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(2)
            page.get_by_text("Success", exact=True).first.wait_for(
                timeout=60_000 if status == "SUCCESS" else 1)
            page.screenshot(path=str(ARTIFACTS / "ui_run_success.png"), full_page=True)
            assert status == "SUCCESS", f"run {run_id} ended {status}:\n{_log_tail(log)}"

            # The group now shows the materialisation.
            page.goto(f"{base}/locations/{LOCATION}/asset-groups/ingestion",
                      wait_until="networkidle")
            page.get_by_text("Materialized").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "ui_ingestion_materialised.png"))
        finally:
            browser.close()


def test_report_and_segment_plots_in_the_browser(dagster_ui: tuple[str, Path],
                                                 sample_pipeline_run: dict[str, str]) -> None:
    """The sample run's HTML report shows its charts, and the segment memberships asset page
    plots the member count of each segment (numeric metadata of its materialisations)."""
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="the playwright Python package is not installed")
    base, _ = dagster_ui
    report = Path(sample_pipeline_run["CDP_WAREHOUSE"]).parent / "report" / "index.html"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(report.as_uri())
            page.get_by_role("heading", name="Segment sizes over time").wait_for()
            charts = page.locator("figure.chart svg")
            assert charts.count() >= 4
            assert page.locator("figure.no-data-panel").count() == 0
            assert page.locator("svg polyline.series").count() >= 2  # one line per segment
            assert page.locator("svg rect.bar").count() > 0  # the CLV histogram
            box = charts.first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 150  # drawn, visible
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

            # The asset's overview: its metadata table lists segment/<name>, its Plots view
            # draws each numeric entry over the materialisations.
            page.goto(f"{base}/assets/segment_memberships", wait_until="networkidle")
            _dismiss_onboarding(page)
            page.get_by_text(re.compile(r"^segment/")).first.wait_for()
            page.get_by_role("button", name="Plots").first.click()
            page.locator("canvas").first.wait_for()
            assert page.get_by_text(re.compile(r"^segment/")).count() >= 2
            page.screenshot(path=str(ARTIFACTS / "ui_segment_plots.png"), full_page=True)
        finally:
            browser.close()
