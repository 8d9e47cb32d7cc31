"""The web page's routes: the template family, a page per template, workspace and job, the actions
as buttons, a form for a child template, and the live log of a running job.

Every read and every change goes through the same functions as the API: its route functions
(called as plain functions: templates.create_template, actions.start_action, jobs.stream, ...)
and the records they call, so the page and the API follow one set of rules. A refusal by the
records is shown on the page it came from, with the records' message and status.

    GET  /                              the family as a tree, and your workspaces
    GET  /login  POST /login  POST /logout
    GET  /templates/{id}                the record, its stacks, its jobs, the live log, the buttons
    POST /templates/{id}/children       a child of a ready template (the form's fields)
    POST /templates/{id}/{action}       provision, finalize, build, retry, rebuild, destroy
    GET  /workspaces/{id}               POST /workspaces/{id}/{action}: start, stop, retry, destroy
    GET  /jobs/{id}                     POST /jobs/{id}/cancel
    GET  /jobs/{id}/stream              the API's job stream, authenticated by the cookie
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse

from ctforge.api.deps import ReadSession, Service, ServiceDep
from ctforge.api.errors import _reason as field_reason  # the API's wording of a refused field
from ctforge.api.routes import actions as action_routes
from ctforge.api.routes import jobs as job_routes
from ctforge.api.routes import templates as template_routes
from ctforge.api.routes import workspaces as workspace_routes
from ctforge.api.schemas import TemplateCreate
from ctforge.db.models import JOB_DONE, Job, Template, User
from ctforge.formats import login_command
from ctforge.records import jobs as job_records
from ctforge.records import templates as template_records
from ctforge.records import workspaces as workspace_records
from ctforge.records.errors import Forbidden, NotFound, RecordError
from ctforge.web import messages
from ctforge.web.session import (
    FormFields,
    PageError,
    SameOrigin,
    WebUser,
    clear_login,
    field,
    safe_next,
    set_login,
    token_user,
)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
# Autoescape on for every file: a name, a description, a log line is always text on the page.
TEMPLATES = Jinja2Templates(env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True))
# The page loads its own CSS and script only; no frame may hold it, no form may post elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
JOBS_SHOWN = 50
# the buttons in the order a template's life takes them (records.jobs.ACTIONS decides which are shown)
BUTTON_ORDER = ("provision", "finalize", "build", "retry", "rebuild", "destroy")

router = APIRouter(include_in_schema=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.globals["login_command"] = login_command  # the CLI says it the same way


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return page(request, "error.html", {"status_code": status_code, "message": message}, status_code)


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _id(text: str, not_found: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise PageError(404, not_found.format(id=text)) from None


def _shown(exc: RecordError) -> PageError:
    return PageError(exc.status_code, exc.message)


# --- what the pages show ------------------------------------------------------------------------

def latest_jobs(session: Session, template_ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """Each template's newest job of its own (not its workspaces')."""
    if not template_ids:
        return {}
    own = (Job.template_id.in_(template_ids)) & Job.workspace_name.is_(None)
    newest = (select(Job.template_id, func.max(Job.created_at).label("at")).where(own)
              .group_by(Job.template_id).subquery())
    rows = session.scalars(select(Job).join(newest, (Job.template_id == newest.c.template_id)
                                            & (Job.created_at == newest.c.at)).where(own))
    return {job.template_id: job for job in rows if job.template_id is not None}


def may_change(user: User, template: Template) -> bool:
    try:
        template_records.check_may_change(user, template)
    except Forbidden:
        return False
    return True


def offered_actions(session: Session, user: User, template: Template) -> list[str]:
    """The actions records.jobs.ACTIONS lets start from the template's status, while no job works on
    it; what else refuses one (a parent not ready, children) shows when it is pressed."""
    if not may_change(user, template) or job_records.active_job(session, template.id) is not None:
        return []
    allowed = {name for name, rule in job_records.ACTIONS.items() if template.status in rule.statuses}
    return sorted(allowed, key=lambda a: BUTTON_ORDER.index(a) if a in BUTTON_ORDER else len(BUTTON_ORDER))


def template_context(session: Session, service: Service, user: User,
                     template_id: uuid.UUID) -> dict[str, Any]:
    try:
        template = template_records.get_template(session, template_id, user)
    except (NotFound, Forbidden):
        raise PageError(404, messages.TEMPLATE_NOT_FOUND.format(id=template_id)) from None
    record = template_routes.public(service, template)
    parent = session.get(Template, template.parent_id) if template.parent_id else None
    _, jobs = job_records.list_jobs(session, user, template_id=template.id, limit=JOBS_SHOWN)
    running = job_records.active_job(session, template.id)
    effective = set(record.effective_stacks)
    return {
        "user": user, "template": record,
        "parent": parent if parent is not None and template_records.can_see(user, parent) else None,
        "children": [template_routes.public(service, c) for c in template_records.children(session, template)
                     if template_records.can_see(user, c)],
        "workspaces": [workspace_routes.public(w) for w in workspace_records.of_template(session, template.id)
                       if workspace_records.can_see(user, w)],
        "jobs": [job_routes.job_public(j) for j in jobs if j.workspace_name is None],
        "running": job_routes.job_public(running) if running is not None else None,
        "actions": offered_actions(session, user, template),
        "may_change": may_change(user, template),
        "can_have_children": template.status == "ready" and template.vmid is not None,
        "stacks": [s for s in sorted(service.catalog, key=lambda s: s.id) if s.id not in effective],
        "form": {"name": "", "description": "", "stacks": []},
    }


def template_page(request: Request, service: Service, user: User, template_id: uuid.UUID, *,
                  error: RecordError | PageError | None = None,
                  form: dict[str, Any] | None = None) -> HTMLResponse:
    with service.db.reading() as session:
        context = template_context(session, service, user, template_id)
    if form is not None:
        context["form"] = form
    context["error"] = error.message if error is not None else None
    return page(request, "template.html", context, error.status_code if error is not None else 200)


# --- the pages ----------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def family(request: Request, session: ReadSession, user: WebUser, service: ServiceDep) -> HTMLResponse:
    tree = template_routes.template_tree(session, user, service)
    ids: list[uuid.UUID] = []
    stack = list(tree.data)
    while stack:
        node = stack.pop()
        ids.append(node.id)
        stack.extend(node.children)
    latest = {tid: job_routes.job_public(job) for tid, job in latest_jobs(session, ids).items()}
    _, workspaces = workspace_records.list_workspaces(session, user, limit=500)
    return page(request, "family.html", {
        "user": user, "tree": tree, "latest": latest,
        "workspaces": [workspace_routes.public(w) for w in workspaces]})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse, dependencies=[SameOrigin])
def login(request: Request, form: FormFields, service: ServiceDep) -> Response:
    token, next_path = field(form, "token").strip(), safe_next(field(form, "next"))
    error = messages.TOKEN_EMPTY if not token else None
    if token and token_user(service, token) is None:
        error = messages.TOKEN_REFUSED
    if error is not None:
        return page(request, "login.html", {"next": next_path, "error": error}, 401 if token else 400)
    response = see_other(next_path)
    set_login(response, request, token)
    return response


@router.post("/logout", dependencies=[SameOrigin])
def logout(request: Request) -> Response:
    response = page(request, "login.html", {"next": "/", "error": None, "notice": messages.LOGGED_OUT})
    clear_login(response, request)
    return response


@router.get("/templates/{template_id}", response_class=HTMLResponse)
def template_detail(template_id: str, request: Request, user: WebUser, service: ServiceDep) -> HTMLResponse:
    return template_page(request, service, user, _id(template_id, messages.TEMPLATE_NOT_FOUND))


@router.post("/templates/{template_id}/children", response_class=HTMLResponse, dependencies=[SameOrigin])
def create_child(template_id: str, request: Request, user: WebUser, service: ServiceDep,
                 form: FormFields) -> Response:
    parent_id = _id(template_id, messages.TEMPLATE_NOT_FOUND)
    wanted = {"name": field(form, "name").strip(), "description": field(form, "description"),
              "stacks": form.get("stack", [])}
    try:
        body = TemplateCreate(name=wanted["name"], description=wanted["description"], parent_id=parent_id,
                              tech_stacks=wanted["stacks"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: "
                             f"{field_reason({**e, 'loc': ('body', *e['loc'])})}" for e in exc.errors())
        return template_page(request, service, user, parent_id, error=PageError(422, problems), form=wanted)
    try:
        with service.db.writing() as session:
            child = template_routes.create_template(body, session, user, service, request, Response())
    except RecordError as exc:
        return template_page(request, service, user, parent_id, error=exc, form=wanted)
    return see_other(f"/templates/{child.id}")


@router.post("/templates/{template_id}/{action}", response_class=HTMLResponse, dependencies=[SameOrigin])
def template_action(template_id: str, action: str, request: Request, user: WebUser,
                    service: ServiceDep) -> Response:
    tid = _id(template_id, messages.TEMPLATE_NOT_FOUND)
    if action not in job_records.ACTIONS:
        raise PageError(404, messages.ACTION_UNKNOWN.format(action=action))
    try:
        with service.db.writing() as session:
            template = template_records.get_template(session, tid, user, for_update=True)
            action_routes.start_action(cast(action_routes.Action, action), template, session, user, service)
    except RecordError as exc:
        return template_page(request, service, user, tid, error=exc)
    return see_other(f"/templates/{tid}")


def workspace_page(request: Request, service: Service, user: User, workspace_id: uuid.UUID, *,
                   error: RecordError | None = None) -> HTMLResponse:
    with service.db.reading() as session:
        try:
            workspace = workspace_records.get_workspace(session, workspace_id, user)
        except NotFound:
            raise PageError(404, messages.WORKSPACE_NOT_FOUND.format(id=workspace_id)) from None
        _, jobs = job_records.list_jobs(session, user, workspace_id=workspace.id, limit=JOBS_SHOWN)
        running = workspace_records.active_job(session, workspace.id)
        offered = [] if running is not None else [
            name for name, rule in workspace_records.ACTIONS.items() if workspace.status in rule.statuses]
        context = {"user": user, "workspace": workspace_routes.public(workspace),
                   "jobs": [job_routes.job_public(j) for j in jobs],
                   "running": job_routes.job_public(running) if running is not None else None,
                   "actions": offered, "error": error.message if error is not None else None}
    return page(request, "workspace.html", context, error.status_code if error is not None else 200)


@router.get("/workspaces/{workspace_id}", response_class=HTMLResponse)
def workspace_detail(workspace_id: str, request: Request, user: WebUser, service: ServiceDep) -> HTMLResponse:
    return workspace_page(request, service, user, _id(workspace_id, messages.WORKSPACE_NOT_FOUND))


@router.post("/workspaces/{workspace_id}/{action}", response_class=HTMLResponse, dependencies=[SameOrigin])
def workspace_action(workspace_id: str, action: str, request: Request, user: WebUser,
                     service: ServiceDep) -> Response:
    wid = _id(workspace_id, messages.WORKSPACE_NOT_FOUND)
    if action not in workspace_records.ACTIONS:
        raise PageError(404, messages.ACTION_UNKNOWN.format(action=action))
    try:
        with service.db.writing() as session:
            workspace = workspace_records.get_workspace(session, wid, user, for_update=True)
            workspace_routes.workspace_action(cast(workspace_routes.Action, action), workspace, session, user,
                                              service)
    except RecordError as exc:
        return workspace_page(request, service, user, wid, error=exc)
    return see_other(f"/workspaces/{wid}")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_detail(job_id: str, request: Request, session: ReadSession, user: WebUser) -> HTMLResponse:
    jid = _id(job_id, messages.JOB_NOT_FOUND)
    try:
        job = job_records.get_job(session, jid, user)
    except NotFound:
        raise PageError(404, messages.JOB_NOT_FOUND.format(id=jid)) from None
    done = job.status in JOB_DONE
    log = bytes(job_routes.get_log(jid, session, user).body).decode() if done else ""
    template = session.get(Template, job.template_id) if job.template_id else None
    may_cancel = not done and (template is None or may_change(user, template))
    return page(request, "job.html", {"user": user, "job": job_routes.job_public(job), "log": log,
                                      "may_cancel": may_cancel})


@router.post("/jobs/{job_id}/cancel", response_class=HTMLResponse, dependencies=[SameOrigin])
def cancel_job(job_id: str, request: Request, user: WebUser, service: ServiceDep) -> Response:
    jid = _id(job_id, messages.JOB_NOT_FOUND)
    try:
        with service.db.writing() as session:
            job_routes.cancel(jid, session, user, service)
    except RecordError as exc:
        raise _shown(exc) from None
    return see_other(f"/jobs/{jid}")


@router.get("/jobs/{job_id}/stream")
def job_stream(job_id: str, user: WebUser, service: ServiceDep, after: job_routes.After = 0,
               last_event_id: Annotated[str | None, Header()] = None) -> EventSourceResponse:
    """The API's stream of the job (GET /api/v1/jobs/{id}/stream), for the page's EventSource,
    which cannot send an Authorization header: the cookie says who asks."""
    jid = _id(job_id, messages.JOB_NOT_FOUND)
    try:
        with service.db.reading() as session:
            return job_routes.stream(jid, session, user, service, after, last_event_id)
    except RecordError as exc:
        raise _shown(exc) from None
