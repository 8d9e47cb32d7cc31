"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver, against the session's `ctforge serve` on minipve. bob logs in with his token,
makes a child of the canonical chain's ready base with the child form (one cheap stack: redis),
provisions it and finalizes it with the buttons, watching the live log show the tasks while each
job runs and the status and buttons the page offers after each, then destroys it with its button.
Screenshots of each step are kept under artifacts/web/ (or $CTFORGE_TEST_ARTIFACTS); the test
prints where. What it made is gone at the end (the CT destroyed, the record deleted), so the other
job tests count what they counted before."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from job_helpers import JOB_TIMEOUT, REPO

pytestmark = [pytest.mark.host, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHILD = "web-child"  # a DNS label: the playbooks' format for a template name
PAGE_TIMEOUT = 30.0


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CTFORGE_TEST_ARTIFACTS") or REPO / "artifacts" / "web")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are missing: run `bash scripts/setup.sh`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # root has no user namespace sandbox here; /dev/shm is small in containers and CI
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1800", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """What the test reads off the page and does on it; each read finds its element afresh (the live
    log reloads the page when its job ends)."""

    def __init__(self, driver: Any, base_url: str, shots: Path) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, shots
        self.taken: list[Path] = []

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def text(self, element_id: str) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.ID, element_id).text)

    def has(self, element_id: str) -> bool:
        from selenium.webdriver.common.by import By

        return bool(self.driver.find_elements(By.ID, element_id))

    def buttons(self) -> list[str]:
        from selenium.webdriver.common.by import By

        return [str(b.get_attribute("id")).removeprefix("action-")
                for b in self.driver.find_elements(By.CSS_SELECTOR, "#actions button")]

    def click(self, element_id: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, element_id).click()

    def type(self, element_id: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def wait(self, what: str, until: Callable[[], Any], timeout: float = PAGE_TIMEOUT) -> Any:
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                                 ).until(lambda _driver: until())
        except Exception as exc:
            shown = self.driver.find_element("tag name", "main").text[:3000]
            raise AssertionError(f"the page never showed {what} in {timeout:.0f} s: "
                                 f"{self.driver.current_url}\n{shown}") from exc

    def shot(self, name: str) -> Path:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.taken.append(path)
        print(f"screenshot: {path}")
        return path


def status_is(page: Page, status: str) -> Callable[[], bool]:
    return lambda: page.text("status") == status


def live_log_shows_a_task(page: Page) -> Callable[[], bool]:
    return lambda: "TASK [" in page.text("live-log")


def offered(status: str) -> list[str]:
    from ctforge.records.jobs import ACTIONS

    order = ("provision", "finalize", "build", "retry", "rebuild", "destroy")
    return [a for a in order if status in ACTIONS[a].statuses]


def clean_up(api: Any, template_id: str) -> None:
    """The child's CT destroyed and its record deleted, whatever step the test stopped at."""
    record = api.template(template_id)
    if "id" not in record:
        return
    for job in api.get("/jobs", params={"template_id": template_id, "status": "running"}).json()["data"]:
        api.post(f"/jobs/{job['id']}/cancel")
        api.wait(job["id"])
    for job in api.get("/jobs", params={"template_id": template_id, "status": "queued"}).json()["data"]:
        api.post(f"/jobs/{job['id']}/cancel")
    if api.template(template_id)["status"] != "destroyed":
        api.wait(api.act(template_id, "destroy")["id"])
    reply = api.http.delete(f"/templates/{template_id}")
    assert reply.status_code == 204, reply.text


def test_a_child_template_made_provisioned_and_finalized_in_the_browser(canonical_chain, job_service,
                                                                       browser) -> None:
    started = time.monotonic()
    base = canonical_chain["templates"]["base"]
    bob = job_service.bob
    token = str(bob.http.headers["Authorization"]).removeprefix("Bearer ")
    page = Page(browser, job_service.service.url, artifacts_dir())
    child_id: str | None = None
    try:
        # log in: the page asks for the token and goes back where it was sent
        page.open(f"/templates/{base['id']}")
        page.wait("the login form", lambda: page.has("token"))
        assert "/login?next=" in browser.current_url
        page.type("token", token)
        page.click("login")
        page.wait("the base's page", lambda: page.text("name") == "base")
        assert page.text("who") == "bob" and page.text("status") == "ready"
        assert page.buttons() == []  # alice's base: bob builds on it, he does not act on it
        assert page.has("child-form")

        # the child form: a name, a description, one stack of the catalog
        page.type("child-name", CHILD)
        page.type("child-description", "made in the browser <b>test</b>")
        page.click("stack-redis")
        page.click("create-child")
        page.wait("the child's page", lambda: page.text("name") == CHILD)
        child_id = browser.current_url.rsplit("/", 1)[-1]
        record = bob.template(child_id)
        assert (record["parent_id"], record["tech_stacks"], record["owner"]) == (base["id"], ["redis"], "bob")
        assert page.text("status") == "pending" and page.buttons() == offered("pending")
        assert page.text("vmid") == str(record["vmid"])
        assert page.text("description") == "made in the browser <b>test</b>"  # text, not markup
        assert page.text("effective-stacks").split() == [*base["effective_stacks"], "redis"]
        page.shot("created")

        # provision: the status moves at once, the buttons go, the live log shows the tasks as they run
        page.click("action-provision")
        page.wait("provisioning", status_is(page, "provisioning"))
        assert page.buttons() == [] and page.has("actions-waiting")
        page.wait("a task in the live log", live_log_shows_a_task(page), timeout=120)
        running = bob.get("/jobs", params={"template_id": child_id, "status": "running"}).json()
        assert running["count"] == 1 and running["data"][0]["kind"] == "provision"
        assert page.text("status") == "provisioning"
        page.shot("provisioning-live-log")
        page.wait("staging (the page reloads when the job ends)", status_is(page, "staging"),
                  timeout=JOB_TIMEOUT)
        assert page.buttons() == offered("staging")
        assert page.has("staging-ip") and not page.has("running-job")
        page.shot("staging")

        # finalize: staging until the template is converted and smoke-tested, then ready
        page.click("action-finalize")
        page.wait("the finalize job's live log", live_log_shows_a_task(page), timeout=120)
        assert page.text("status") == "staging" and page.buttons() == []
        page.shot("finalizing-live-log")
        page.wait("ready", status_is(page, "ready"), timeout=JOB_TIMEOUT)
        assert page.buttons() == offered("ready") and page.has("child-form")
        assert bob.template(child_id)["status"] == "ready"
        page.shot("ready")

        # the family: the child under the base, ready, its latest job the finalize
        page.open("/")
        node = page.text(f"node-{child_id}")
        assert CHILD in node and "ready" in node and "finalize" in node and "successful" in node
        under_base = browser.find_element("id", f"node-{base['id']}").get_attribute("innerHTML")
        assert f"node-{child_id}" in under_base
        page.shot("family")

        # a refusal is a message on the page: the name is taken
        page.open(f"/templates/{base['id']}")
        page.type("child-name", CHILD)
        page.click("create-child")
        page.wait("the refusal", lambda: page.has("error"))
        assert f"{CHILD!r}" in page.text("error") and "Traceback" not in page.text("error")

        # destroy with its button: the CT goes, the record stays, destroyed
        page.open(f"/templates/{child_id}")
        page.click("action-destroy")
        page.wait("destroyed", status_is(page, "destroyed"), timeout=JOB_TIMEOUT)
        assert page.buttons() == offered("destroyed") and page.text("vmid") == "–"
        page.shot("destroyed")
    except Exception:
        with contextlib.suppress(Exception):
            page.shot("failed")
        raise
    finally:
        if child_id is not None:
            clean_up(bob, child_id)
    print(f"web browser test: {time.monotonic() - started:.0f} s, screenshots in {page.shots}")
