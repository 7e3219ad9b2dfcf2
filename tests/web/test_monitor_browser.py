"""The monitor in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)
against a real ``pandasrv serve``: one browser session walks the pages a user clicks through, checks
what each shows against the database, and fails on any browser console error. Screenshots go to
``tests-artifacts/monitor/`` (git-ignored).

A missing browser skips locally and fails under ``CI=true`` (``.ci/apt-packages`` lists both packages).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import fresh_database
from tests.web.conftest import REPO, RunningServer, start_server
from tests.web.test_monitor import make_job

ARTIFACTS = REPO / "tests-artifacts" / "monitor"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")
QUEUE = "BROWSER_Q"
OTHER = "OTHER_Q"


def missing_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"headless browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def monitored(test_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server on a fresh SQLite database with 12 jobs on QUEUE (8 activated, 2 running, 1 finished,
    1 failed), 3 on OTHER, both queues online, and a recorded daemon run."""
    workdir = tmp_path_factory.mktemp("browser")
    with fresh_database(test_databases, "sqlite", workdir) as db_url, start_server(db_url, "sqlite", workdir) as running:
        tb = running.tb
        for name in (QUEUE, OTHER):
            running.add_queue(name)
        plan = [("activated", QUEUE, 8), ("running", QUEUE, 2), ("finished", QUEUE, 1), ("failed", QUEUE, 1),
                ("activated", OTHER, 3)]
        for state, queue, n in plan:
            extra = {"pilotErrorCode": 1305, "pilotErrorDiag": "payload failed"} if state == "failed" else {}
            tb.insert_jobs([make_job(f"{queue}.{state}.{k}", queue, "alice", **extra) for k in range(n)], status=state)
        now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
        tb.record_daemon_run("add_main", "node1", now - _dt.timedelta(seconds=3), now, "ok")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [path for path in CHROMIUM if not shutil.which(path)]
    if missing:
        missing_browser(f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMIUM[1]), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """Console messages at SEVERE level since the last call (CSP violations, failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def listed_ids(driver: Any) -> list[int]:
    from selenium.webdriver.common.by import By

    return [int(a.text) for a in driver.find_elements(By.CSS_SELECTOR, "#jobs a.job-link")]


def cells(driver: Any, column: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[column].text for row in driver.find_elements(By.CSS_SELECTOR, "#jobs tr.job")]


def navigate(driver: Any, element: Any) -> None:
    """Click a link or submit button and wait for the next page: a WebDriver click returns once the
    event is dispatched, not once the browser has loaded what it leads to."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.staleness_of(old_page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def test_walk_through_the_monitor(monitored: RunningServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d, url, tb = browser, monitored.url, monitored.tb
    errors: dict[str, list[str]] = {}

    def visited(name: str) -> None:
        shot(d, name)
        errors[name] = console_errors(d)

    # the jobs list: every job, newest first, counts per state at the top
    d.get(f"{url}/monitor/jobs")
    assert listed_ids(d) == sorted(listed_ids(d), reverse=True) and len(listed_ids(d)) == 15
    assert "activated: 11" in d.find_element(By.ID, "state-counts").text
    visited("jobs")

    # a job's detail from the list
    failed = next(row for row in d.find_elements(By.CSS_SELECTOR, "#jobs tr.job") if "failed" in row.text)
    panda_id = int(failed.find_element(By.CSS_SELECTOR, "a.job-link").text)
    navigate(d, failed.find_element(By.CSS_SELECTOR, "a.job-link"))
    assert d.find_element(By.ID, "job-state").text == "failed"
    assert "pilotError 1305" in d.find_element(By.ID, "errors").text
    log_link = d.find_element(By.CSS_SELECTOR, "#logs a")
    assert log_link.get_attribute("href") == f"{url}/cache/{QUEUE}.failed.0.log.tgz"
    assert [h.text for h in d.find_elements(By.CSS_SELECTOR, "#history td.state-failed")] == ["failed"]
    visited("job")

    # filter by state and queue with the form, three rows a page, then page forward to the end
    d.get(f"{url}/monitor/jobs")
    Select(d.find_element(By.ID, "f-state")).select_by_visible_text("activated")
    d.find_element(By.ID, "f-queue").send_keys(QUEUE)
    limit = d.find_element(By.ID, "f-limit")
    limit.clear()
    limit.send_keys("3")
    navigate(d, d.find_element(By.ID, "f-apply"))
    pages = [listed_ids(d)]
    assert set(cells(d, 2)) == {"activated"} and set(cells(d, 3)) == {QUEUE}
    visited("jobs-filtered")
    while d.find_elements(By.ID, "next-page"):
        navigate(d, d.find_element(By.ID, "next-page"))
        assert set(cells(d, 2)) <= {"activated"} and set(cells(d, 3)) <= {QUEUE}
        pages.append(listed_ids(d))
    seen = [i for page in pages for i in page]
    expected = sorted((j["PandaID"] for j in tb.monitor_list_jobs({"state": "activated", "queue": QUEUE}, limit=100)),
                      reverse=True)
    assert [len(p) for p in pages] == [3, 3, 2] and seen == expected
    errors["jobs-pages"] = console_errors(d)

    # the queue, from a job row's queue link, then the queues page
    navigate(d, d.find_element(By.ID, "first-page"))
    navigate(d, d.find_element(By.CSS_SELECTOR, "#jobs tr.job td:nth-child(4) a"))
    assert set(cells(d, 3)) == {QUEUE} and len(listed_ids(d)) == 12
    navigate(d, d.find_element(By.ID, "nav-queues"))
    row = next(r for r in d.find_elements(By.CSS_SELECTOR, "tr") if r.text.startswith(QUEUE))
    assert "online" in row.text
    visited("queues")

    # plots: one bar segment per state that changed in the last 24 h
    navigate(d, d.find_element(By.ID, "nav-plots"))
    states = {r.get_attribute("class").split()[-1] for r in d.find_elements(By.CSS_SELECTOR, "#plot-timeline rect.bar")}
    assert states == {"state-activated", "state-running", "state-finished", "state-failed"}
    assert len(d.find_elements(By.CSS_SELECTOR, "#plot-queues g.bar-group")) == 2
    visited("plots")

    # the daemon page
    navigate(d, d.find_element(By.ID, "nav-daemon"))
    assert "add_main" in d.page_source and "ok" in d.find_element(By.TAG_NAME, "main").text
    visited("daemon")

    d.get(f"{url}/monitor/jobs/{panda_id}?format=json")
    assert f'"PandaID": {panda_id}' in d.find_element(By.TAG_NAME, "body").text
    errors["json"] = console_errors(d)
    assert {page: found for page, found in errors.items() if found} == {}
