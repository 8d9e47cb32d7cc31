"""The web page without a browser: FastAPI's TestClient over the rolled-back `api` fixture (SQLite and
PostgreSQL). Login and logout with an API token, the cookie's flags, a page without a cookie, a bad
token, escaping of hostile text, the CSRF check on every form, the 404 page, the buttons a status
offers, the records' refusals shown on the page, the child form and the cookie-authenticated stream.
The browser's walk through a real build is tests/test_web_browser.py."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import update

from ctforge import messages
from ctforge.api.schemas import PATTERN_RULES
from ctforge.db.models import Job, Template, Workspace
from ctforge.records import jobs as job_records
from ctforge.records import workspaces as workspace_records
from ctforge.sse import sse_events
from ctforge.web import messages as web_messages
from ctforge.web.session import COOKIE

SITE = "http://testserver"  # TestClient's base URL: the page's own origin
SAME_SITE = {"Origin": SITE}


def browser(api: Any, who: str | None = None) -> TestClient:
    """A client of its own (its own cookies), logged in as `who` through the login form."""
    client = TestClient(api.app, raise_server_exceptions=False, follow_redirects=False)
    if who is not None:
        answer = client.post("/login", data={"token": api.tokens[who], "next": "/"}, headers=SAME_SITE)
        assert answer.status_code == 303, answer.text
    return client


def shown_error(answer: Any) -> str:
    """The message of the page's error box (unescaped)."""
    found = re.search(r'id="error(?:-page)?"[^>]*>(.*?)</p>', answer.text, re.S)
    assert found, answer.text
    return html.unescape(found.group(1))


def buttons(answer: Any) -> list[str]:
    return re.findall(r'id="action-([a-z]+)"', answer.text)


def ready_base(api: Any, name: str = "Base", who: str = "alice", **fields: Any) -> dict[str, Any]:
    base = api.create(who, name, **fields)
    api.make_ready(base["id"])
    return base


# --- login, logout, cookies ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", f"/templates/{uuid.uuid4()}", f"/jobs/{uuid.uuid4()}",
                                  f"/jobs/{uuid.uuid4()}/stream"])
def test_a_page_without_a_cookie_redirects_to_login(api, path) -> None:
    answer = browser(api).get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next={path}"
    login = browser(api).get(answer.headers["location"])
    assert login.status_code == 200 and 'name="token"' in login.text
    assert f'name="next" value="{path}"' in login.text


def test_a_form_sent_without_a_cookie_goes_to_login_and_then_to_the_start(api) -> None:
    pending = api.create("alice", "pending-one")
    answer = browser(api).post(f"/templates/{pending['id']}/provision", headers=SAME_SITE)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/"
    assert api.get(f"/templates/{pending['id']}", "alice").json()["status"] == "pending"


def test_login_keeps_the_token_in_an_httponly_strict_cookie_and_logout_ends_it(api) -> None:
    client = browser(api)
    answer = client.post("/login", data={"token": api.tokens["bob"], "next": "/templates/x"},
                         headers=SAME_SITE)
    assert answer.status_code == 303 and answer.headers["location"] == "/templates/x"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={api.tokens['bob']};")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http on loopback; https gets Secure
    page = client.get("/")
    assert page.status_code == 200 and '<strong id="who">bob</strong>' in page.text
    out = client.post("/logout", headers=SAME_SITE)
    assert out.status_code == 200 and web_messages.LOGGED_OUT in out.text
    assert f'{COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert client.get("/").status_code == 303


def test_login_goes_back_only_to_a_page_of_this_site(api) -> None:
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        answer = browser(api).post("/login", data={"token": api.tokens["bob"], "next": elsewhere},
                                   headers=SAME_SITE)
        assert answer.status_code == 303 and answer.headers["location"] == "/", elsewhere


@pytest.mark.parametrize("token", ["ctf_" + "x" * 43, "not-a-token", "Bearer ctf_abc"])
def test_a_bad_token_is_refused_and_sets_no_cookie(api, token) -> None:
    answer = browser(api).post("/login", data={"token": token, "next": "/"}, headers=SAME_SITE)
    assert answer.status_code == 401
    assert shown_error(answer) == web_messages.TOKEN_REFUSED
    assert "set-cookie" not in answer.headers
    assert token not in answer.text  # nothing it sent is echoed back


def test_an_empty_token_is_asked_for(api) -> None:
    answer = browser(api).post("/login", data={"token": " ", "next": "/"}, headers=SAME_SITE)
    assert answer.status_code == 400 and shown_error(answer) == web_messages.TOKEN_EMPTY


def test_a_cookie_whose_token_is_no_longer_accepted_is_cleared(api) -> None:
    client = browser(api)
    client.cookies.set(COOKIE, "ctf_" + "y" * 43)
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/"
    assert f'{COOKIE}=""' in answer.headers["set-cookie"]


# --- escaping ---------------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def test_hostile_names_and_descriptions_are_text_on_every_page(api) -> None:
    base = ready_base(api, description=HOSTILE)
    with api.db.writing() as session:  # a name the API refuses, as if written by other means
        session.execute(update(Template).where(Template.id == uuid.UUID(base["id"])).values(name=HOSTILE))
    child = api.create("alice", "child", parent_id=base["id"], description=HOSTILE)
    job = api.post(f"/templates/{child['id']}/provision", "alice").json()
    client = browser(api, "alice")
    pages = [client.get("/"), client.get(f"/templates/{base['id']}"), client.get(f"/templates/{child['id']}"),
             client.get(f"/jobs/{job['id']}")]
    for page in pages:
        assert page.status_code == 200, page.text
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
    escaped = str(escape(HOSTILE))
    assert escaped in pages[0].text  # the tree names the base
    assert escaped in pages[1].text and escaped in pages[2].text


def test_pages_allow_only_their_own_scripts_and_no_framing(api) -> None:
    page = browser(api, "alice").get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


# --- CSRF ---------------------------------------------------------------------------------------------

CROSS_SITE = [{"Origin": "https://evil.example"}, {"Origin": "null"}, {},
              {"Referer": "https://evil.example/templates"}, {"Origin": "http://testserver.evil.example"}]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_form_from_another_site_changes_nothing(api, headers) -> None:
    base = ready_base(api)
    pending = api.create("alice", "pending-one")
    client = browser(api, "alice")
    posts = [(f"/templates/{pending['id']}/provision", {}),
             (f"/templates/{base['id']}/children", {"name": "sneaky"}),
             (f"/templates/{base['id']}/destroy", {}),
             ("/logout", {}), ("/login", {"token": api.tokens["bob"]})]
    for path, form in posts:
        answer = client.post(path, data=form, headers=headers)
        assert answer.status_code == 403, (path, answer.text)
        assert shown_error(answer) == web_messages.CROSS_SITE
        assert "set-cookie" not in answer.headers
    assert api.get(f"/templates/{pending['id']}", "alice").json()["status"] == "pending"
    assert api.get("/jobs", "alice").json()["count"] == 0
    assert api.get("/templates", "alice").json()["count"] == 2
    assert '<strong id="who">alice</strong>' in client.get("/").text  # still logged in, as alice


def test_a_form_with_this_sites_referer_and_no_origin_is_accepted(api) -> None:
    pending = api.create("alice", "pending-one")
    answer = browser(api, "alice").post(f"/templates/{pending['id']}/provision",
                                        headers={"Referer": f"{SITE}/templates/{pending['id']}"})
    assert answer.status_code == 303
    assert api.get(f"/templates/{pending['id']}", "alice").json()["status"] == "provisioning"


# --- 404 --------------------------------------------------------------------------------------------

def test_unknown_addresses_get_the_404_page_and_the_api_keeps_its_json(api) -> None:
    client = browser(api, "alice")
    nobody = uuid.UUID(int=7)
    for path, text in (("/no/such/page", web_messages.PAGE_NOT_FOUND),
                       ("/static/nothing.css", web_messages.PAGE_NOT_FOUND),
                       ("/templates/not-an-id", web_messages.TEMPLATE_NOT_FOUND.format(id="not-an-id")),
                       (f"/templates/{nobody}", web_messages.TEMPLATE_NOT_FOUND.format(id=nobody)),
                       (f"/workspaces/{nobody}", web_messages.WORKSPACE_NOT_FOUND.format(id=nobody)),
                       (f"/jobs/{nobody}", web_messages.JOB_NOT_FOUND.format(id=nobody))):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
        assert shown_error(answer) == text
        assert "Traceback" not in answer.text
    api_answer = client.get("/api/v2/templates")
    assert api_answer.status_code == 404 and api_answer.json()["detail"] == messages.ROUTE_NOT_FOUND


def test_another_users_template_is_not_there_for_you(api) -> None:
    alices = api.create("alice", "private")
    answer = browser(api, "bob").get(f"/templates/{alices['id']}")
    assert answer.status_code == 404 and "private" not in answer.text


def test_an_unknown_action_is_a_404_page(api) -> None:
    pending = api.create("alice", "pending-one")
    answer = browser(api, "alice").post(f"/templates/{pending['id']}/explode", headers=SAME_SITE)
    assert answer.status_code == 404 and shown_error(answer) == web_messages.ACTION_UNKNOWN.format(
        action="explode")


# --- the family and a template's page ---------------------------------------------------------------

def test_the_family_is_a_tree_with_status_stacks_vmid_and_latest_job(api) -> None:
    base = ready_base(api, tech_stacks=["redis"])
    child = api.create("alice", "child", parent_id=base["id"], tech_stacks=["python"])
    job = api.post(f"/templates/{child['id']}/provision", "alice").json()
    page = browser(api, "alice").get("/")
    node = re.search(rf'<li id="node-{base["id"]}">(.*)</li>', page.text, re.S)
    assert node and f'id="node-{child["id"]}"' in node.group(1)  # the child sits inside its parent
    assert f"VMID {base['vmid']}" in page.text and f"VMID {child['vmid']}" in page.text
    assert "status-ready" in page.text and "status-provisioning" in page.text
    assert f'href="/jobs/{job["id"]}"' in page.text
    child_node = page.text[page.text.index(f'id="node-{child["id"]}"'):]
    assert '<span class="stack">redis</span><span class="stack">python</span>' in child_node


def offered(status: str) -> list[str]:
    order = ("provision", "finalize", "build", "retry", "rebuild", "destroy")
    return [a for a in order if status in job_records.ACTIONS[a].statuses]


@pytest.mark.parametrize("steps", [(), ("provisioning", "staging"), ("provisioning", "staging", "ready"),
                                   ("error",)])
def test_the_buttons_are_the_actions_the_status_allows(api, steps) -> None:
    template = api.create("alice", "one")
    if steps:
        api.move(template["id"], *steps)
    status = steps[-1] if steps else "pending"
    page = browser(api, "alice").get(f"/templates/{template['id']}")
    assert buttons(page) == offered(status)
    assert re.search(rf'id="status">{status}<', page.text)
    assert ('id="child-form"' in page.text) == (status == "ready")


def test_no_buttons_while_a_job_works_and_none_for_someone_elses_template(api) -> None:
    base = ready_base(api, is_default=True)
    assert buttons(browser(api, "bob").get(f"/templates/{base['id']}")) == []
    job = api.post(f"/templates/{base['id']}/destroy", "alice").json()
    page = browser(api, "alice").get(f"/templates/{base['id']}")
    assert buttons(page) == [] and 'id="actions-waiting"' in page.text
    assert f'data-stream="/jobs/{job["id"]}/stream"' in page.text  # the live log of the running job


def test_the_template_page_shows_its_record_stacks_and_jobs(api) -> None:
    base = ready_base(api, tech_stacks=["redis"])
    child = api.create("alice", "child", parent_id=base["id"], tech_stacks=["python"])
    api.post(f"/templates/{child['id']}/provision", "alice")
    page = browser(api, "alice").get(f"/templates/{child['id']}")
    assert f'<td id="vmid">{child["vmid"]}</td>' in page.text
    assert f'href="/templates/{base["id"]}" id="parent">Base</a>' in page.text
    effective = re.search(r'id="effective-stacks">(.*?)</td>', page.text).group(1)
    assert re.findall(r'class="stack">(\w+)<', effective) == ["redis", "python"]
    assert 'id="jobs"' in page.text and ">provision</a>" in page.text


# --- the records' refusals on the page ----------------------------------------------------------------

def test_a_job_already_running_is_a_message_on_the_page(api) -> None:
    pending = api.create("alice", "pending-one")
    client = browser(api, "alice")
    assert client.post(f"/templates/{pending['id']}/provision", headers=SAME_SITE).status_code == 303
    job = api.get("/jobs", "alice").json()["data"][0]
    answer = client.post(f"/templates/{pending['id']}/provision", headers=SAME_SITE)
    assert answer.status_code == 409
    assert shown_error(answer) == messages.JOB_RUNNING_ON_TEMPLATE.format(
        name="pending-one", kind="provision", status="queued", job_id=job["id"])
    assert 'id="name">pending-one<' in answer.text  # the template's page, with the message on it
    assert "Traceback" not in answer.text


def test_a_parent_not_ready_is_a_message_on_the_page(api) -> None:
    base = ready_base(api)
    child = api.create("alice", "child", parent_id=base["id"])
    api.move(base["id"], "error")
    client = browser(api, "alice")
    answer = client.post(f"/templates/{child['id']}/provision", headers=SAME_SITE)
    assert answer.status_code == 409
    assert shown_error(answer) == messages.ACTION_PARENT_NOT_READY.format(
        action="provision", name="child", parent="Base", status="error")
    assert api.get(f"/templates/{child['id']}", "alice").json()["status"] == "pending"


# --- the child form -------------------------------------------------------------------------------------

def test_the_child_form_makes_a_child_with_the_stacks_checked(api) -> None:
    base = ready_base(api, tech_stacks=["redis"])
    client = browser(api, "bob")
    page = client.get(f"/templates/{base['id']}")
    assert page.status_code == 404  # alice's, not a default: bob does not see it
    api.patch(f"/templates/{base['id']}", "alice", json={"is_default": True})
    page = client.get(f"/templates/{base['id']}")
    offered_stacks = re.findall(r'name="stack" value="(\w+)"', page.text)
    assert "redis" not in offered_stacks and "python" in offered_stacks  # redis it has already
    answer = client.post(f"/templates/{base['id']}/children", headers=SAME_SITE,
                         data={"name": "bobs child", "description": "mine", "stack": ["python", "nodejs"]})
    assert answer.status_code == 303
    child_id = answer.headers["location"].removeprefix("/templates/")
    record = api.get(f"/templates/{child_id}", "bob").json()
    assert (record["name"], record["owner"], record["parent_id"]) == ("bobs child", "bob", base["id"])
    assert record["tech_stacks"] == ["python", "nodejs"] and record["inherited_tech_stacks"] == ["redis"]
    assert record["status"] == "pending" and record["vmid"] is not None
    assert buttons(client.get(answer.headers["location"])) == offered("pending")


def test_a_refused_child_keeps_the_form_and_says_why(api) -> None:
    base = ready_base(api)
    api.create("alice", "taken", parent_id=base["id"])
    client = browser(api, "alice")
    bad_name = client.post(f"/templates/{base['id']}/children", headers=SAME_SITE,
                           data={"name": "<no>", "description": "kept <b>", "stack": ["redis"]})
    assert bad_name.status_code == 422
    assert shown_error(bad_name) == f"name: must be {PATTERN_RULES['name']}"
    assert 'value="&lt;no&gt;"' in bad_name.text and ">kept &lt;b&gt;</textarea>" in bad_name.text
    assert re.search(r'value="redis" id="stack-redis" checked', bad_name.text)
    taken = client.post(f"/templates/{base['id']}/children", headers=SAME_SITE, data={"name": "taken"})
    assert taken.status_code == 409
    assert shown_error(taken) == messages.TEMPLATE_NAME_TAKEN.format(name="taken")
    unknown = client.post(f"/templates/{base['id']}/children", headers=SAME_SITE,
                          data={"name": "ok", "stack": ["cobol"]})
    assert unknown.status_code == 422 and "cobol" in shown_error(unknown)
    assert api.get("/templates", "alice").json()["count"] == 2


def test_a_child_of_a_parent_not_ready_is_refused_on_the_page(api) -> None:
    base = ready_base(api)
    api.move(base["id"], "error")
    answer = browser(api, "alice").post(f"/templates/{base['id']}/children", headers=SAME_SITE,
                                        data={"name": "child"})
    assert answer.status_code == 409
    assert shown_error(answer) == messages.PARENT_NOT_READY.format(name="Base", status="error")


def test_a_form_that_is_not_urlencoded_is_refused(api) -> None:
    base = ready_base(api)
    answer = browser(api, "alice").post(f"/templates/{base['id']}/children", headers=SAME_SITE,
                                        json={"name": "child"})
    assert answer.status_code == 400 and shown_error(answer) == web_messages.FORM_UNREADABLE


# --- jobs: the page, the log, the stream ---------------------------------------------------------------

def finished_job(api: Any, template_id: str) -> dict[str, Any]:
    """A provision job that ran two tasks and failed, written as the worker would."""
    job = api.post(f"/templates/{template_id}/provision", "alice").json()
    rows = [{"seq": n, "event": kind, "playbook": "provision", "task": task, "host": None, "failed": False,
             "stdout": f"TASK [{task}] ***", "data": {}}
            for n, (kind, task) in enumerate([("playbook_on_task_start", "Ensure <the> CT exists"),
                                              ("playbook_on_task_start", "Wait for SSH")], start=1)]
    with api.db.writing() as session:
        job_records.append_events(session, uuid.UUID(job["id"]), rows)
        row = session.get(Job, uuid.UUID(job["id"]))
        job_records.finish(session, row, "failed", rc=2, failed_step="ssh", error="ssh failed: <refused>")
    return job


def test_a_job_page_shows_its_record_and_its_log(api) -> None:
    pending = api.create("alice", "pending-one")
    job = finished_job(api, pending["id"])
    page = browser(api, "alice").get(f"/jobs/{job['id']}")
    assert page.status_code == 200
    assert re.search(r'id="status">failed<', page.text)
    error = re.search(r'id="job-error">(.*?)</p>', page.text).group(1)
    assert html.unescape(error) == "ssh: ssh failed: <refused>"
    log = html.unescape(re.search(r'<pre class="log" id="log">(.*?)</pre>', page.text, re.S).group(1))
    assert log == "TASK [Ensure <the> CT exists] ***\nTASK [Wait for SSH] ***\n"
    assert 'id="live-log"' not in page.text


def test_the_cookie_stream_is_the_apis_stream(api) -> None:
    pending = api.create("alice", "pending-one")
    job = finished_job(api, pending["id"])
    answer = browser(api, "alice").get(f"/jobs/{job['id']}/stream")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = list(sse_events(answer.text.splitlines()))
    assert [kind for kind, _ in events] == ["playbook_on_task_start", "playbook_on_task_start", "end"]
    assert events[0][1]["task"] == "Ensure <the> CT exists"
    assert events[-1][1] == {"status": "failed", "error": "ssh failed: <refused>", "failed_step": "ssh"}
    resumed = browser(api, "alice").get(f"/jobs/{job['id']}/stream", headers={"Last-Event-ID": "1"})
    assert [kind for kind, _ in sse_events(resumed.text.splitlines())] == ["playbook_on_task_start", "end"]
    assert browser(api, "bob").get(f"/jobs/{job['id']}/stream").status_code == 404


def test_cancel_from_the_job_page(api) -> None:
    pending = api.create("alice", "pending-one")
    job = api.post(f"/templates/{pending['id']}/provision", "alice").json()
    client = browser(api, "alice")
    assert 'id="cancel"' in client.get(f"/jobs/{job['id']}").text
    answer = client.post(f"/jobs/{job['id']}/cancel", headers=SAME_SITE)
    assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{job['id']}"
    assert api.get(f"/jobs/{job['id']}", "alice").json()["status"] == "canceled"
    again = client.post(f"/jobs/{job['id']}/cancel", headers=SAME_SITE)
    assert again.status_code == 409


def test_the_web_routes_stay_out_of_the_openapi_schema(api) -> None:
    paths = api.client.get("/api/v1/openapi.json").json()["paths"]
    assert all(path.startswith("/api/v1/") for path in paths)


# --- workspaces ------------------------------------------------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNh bob@laptop"


def test_a_workspace_page_shows_its_record_its_job_and_only_to_its_owner(api) -> None:
    base = api.create("alice", "base", tech_stacks=["redis"], is_default=True)
    api.move(base["id"], "provisioning", "staging", "ready", build_key_fingerprint="SHA256:" + "A" * 43)
    answer = api.post("/workspaces", "bob", json={"name": "dev", "stacks": ["redis", "python"],
                                                   "ssh_public_keys": [KEY]})
    assert answer.status_code == 202, answer.text
    workspace, job = answer.json()["workspace"], answer.json()["job"]
    client = browser(api, "bob")
    family = client.get("/")
    assert f'href="/workspaces/{workspace["id"]}">dev</a>' in family.text
    page = client.get(f"/workspaces/{workspace['id']}")
    assert page.status_code == 200 and 'id="name">dev<' in page.text
    assert f'data-stream="/jobs/{job["id"]}/stream"' in page.text and buttons(page) == []
    assert '<span class="stack">python</span>' in page.text
    assert browser(api, "carol").get(f"/workspaces/{workspace['id']}").status_code == 404
    # once the owner can log in, the page says how: as the dev user the run reported, at its address
    assert "<code>ssh " not in page.text
    with api.db.writing() as session:
        row = session.get(Workspace, uuid.UUID(workspace["id"]))
        workspace_records.move_status(session, row, "provisioning")
        workspace_records.note_address(session, row.id, "10.213.0.61", "dev1")
    assert "<code>ssh dev1@10.213.0.61</code>" in client.get(f"/workspaces/{workspace['id']}").text
    # the records refuse a second job on the workspace: their message is on its page
    refused = client.post(f"/workspaces/{workspace['id']}/destroy", headers=SAME_SITE)
    assert refused.status_code == 409 and 'id="name">dev<' in refused.text
    assert shown_error(refused) == messages.WORKSPACE_JOB_RUNNING.format(
        name="dev", kind="create", status="queued", job_id=job["id"])
