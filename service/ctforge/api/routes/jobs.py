"""Jobs: what each lifecycle action did and does now. Reads show the jobs of templates the caller
may see (and the caller's own); cancel needs the template's owner or an admin.

    GET  /jobs                  newest first; ?template_id= ?status=
    GET  /jobs/{id}             the record: status, rc, failed_step, error, artifacts_dir
    GET  /jobs/{id}/log         the plain output of its runs, as ansible-playbook printed it
    GET  /jobs/{id}/events      Ansible's events, paged by seq (?after=N&limit=M)
    GET  /jobs/{id}/stream      server-sent events: from the start, or after ?after=N / Last-Event-ID,
                                ending with an `end` event when the job has ended
    POST /jobs/{id}/cancel      stops the run (ansible-runner's cancel callback); the template goes
                                to error with "canceled by USER"
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import PlainTextResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ctforge.api.deps import CurrentUser, OptionalUser, ReadSession, ServiceDep, WriteSession, commit
from ctforge.api.routes.templates import ERRORS, TOKEN_OPTIONAL, Limit, Offset
from ctforge.api.schemas import JobEventPublic, JobEventsPublic, JobPublic, JobsPublic, JobStatus
from ctforge.db.models import JOB_DONE, Job, Template
from ctforge.records import jobs as records
from ctforge.records import templates as template_records

router = APIRouter(prefix="/jobs", tags=["jobs"])

# How often a stream looks for new events; each look is one indexed read.
STREAM_POLL_SECONDS = 0.3
EventLimit = Annotated[int, Query(ge=1, le=1000, description="At most this many events.")]
SEQ_MAX = 2**31 - 1  # an event number fits the column on SQLite and PostgreSQL alike
After = Annotated[int, Query(ge=0, le=SEQ_MAX, description="Only events after this seq (0: from the start).")]


def job_public(job: Job) -> JobPublic:
    return JobPublic.model_validate(job, from_attributes=True)


def event_public(event: object) -> JobEventPublic:
    return JobEventPublic.model_validate(event, from_attributes=True)


@router.get("", response_model=JobsPublic, responses=ERRORS, openapi_extra=TOKEN_OPTIONAL)
def list_jobs(session: ReadSession, user: OptionalUser, limit: Limit = 50, offset: Offset = 0,
              template_id: uuid.UUID | None = None, status: JobStatus | None = None) -> JobsPublic:
    total, rows = records.list_jobs(session, user, template_id=template_id, status=status,
                                    limit=limit, offset=offset)
    return JobsPublic(data=[job_public(job) for job in rows], count=total)


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS, openapi_extra=TOKEN_OPTIONAL)
def get_job(job_id: uuid.UUID, session: ReadSession, user: OptionalUser) -> JobPublic:
    return job_public(records.get_job(session, job_id, user))


TEXT = {"schema": {"type": "string"}}


LOG_RESPONSES = {**ERRORS, 200: {"description": "The output of the job's runs.",
                                 "content": {"text/plain": TEXT}}}
# one server-sent event: `event` the Ansible event's type (or `end`), `id` its seq, `data` the JSON
# of a JobEventPublic (or, for `end`, of the job's status, error and failed_step)
SSE_EVENT = {"schema": {"type": "object", "properties": {
    "event": {"type": "string"}, "id": {"type": "string"}, "data": {"type": "string"},
    "retry": {"type": "integer"}}}}
STREAM_RESPONSES = {**ERRORS, 200: {"description": "Server-sent events: one per Ansible event, then `end`.",
                                    "content": {"text/event-stream": SSE_EVENT}}}


@router.get("/{job_id}/log", openapi_extra=TOKEN_OPTIONAL, response_class=Response, responses=LOG_RESPONSES)
def get_log(job_id: uuid.UUID, session: ReadSession, user: OptionalUser) -> PlainTextResponse:
    records.get_job(session, job_id, user)
    parts, after = [], 0
    while batch := records.events(session, job_id, after=after, limit=1000):
        parts.extend(event.stdout + "\n" for event in batch if event.stdout)
        after = batch[-1].seq
    return PlainTextResponse("".join(parts))


@router.get("/{job_id}/events", response_model=JobEventsPublic, responses=ERRORS,
            openapi_extra=TOKEN_OPTIONAL)
def get_events(job_id: uuid.UUID, session: ReadSession, user: OptionalUser, after: After = 0,
               limit: EventLimit = 200) -> JobEventsPublic:
    job = records.get_job(session, job_id, user)
    batch = records.events(session, job_id, after=after, limit=limit)
    last = batch[-1].seq if batch else after
    return JobEventsPublic(data=[event_public(e) for e in batch], next=last,
                           done=job.status in JOB_DONE and last >= job.event_count)


@router.get("/{job_id}/stream", openapi_extra=TOKEN_OPTIONAL, response_class=Response,
            responses=STREAM_RESPONSES)
def stream(job_id: uuid.UUID, session: ReadSession, user: OptionalUser, service: ServiceDep,
           after: After = 0, last_event_id: Annotated[str | None, Header()] = None) -> EventSourceResponse:
    records.get_job(session, job_id, user)
    # a reconnecting EventSource sends the last id it saw; anything else in the header is ignored
    resumed = last_event_id.strip() if last_event_id else ""
    plain = resumed.isascii() and resumed.isdigit() and len(resumed) <= 10
    start = int(resumed) if plain and int(resumed) <= SEQ_MAX else after

    def read(since: int) -> tuple[list[JobEventPublic], Job | None]:
        with service.db.reading() as reading:
            job = reading.get(Job, job_id)
            batch = [event_public(e) for e in records.events(reading, job_id, after=since, limit=500)]
        return batch, job

    async def events() -> AsyncIterator[ServerSentEvent]:
        since = start
        while True:
            batch, job = await run_in_threadpool(read, since)
            for event in batch:
                since = event.seq
                yield ServerSentEvent(data=event.model_dump_json(), event=event.event, id=str(event.seq))
            if job is None:
                return
            if job.status in JOB_DONE and since >= job.event_count and not batch:
                yield ServerSentEvent(data=json.dumps({"status": job.status, "error": job.error,
                                                       "failed_step": job.failed_step}), event="end")
                return
            if not batch:
                await asyncio.sleep(STREAM_POLL_SECONDS)

    return EventSourceResponse(events(), ping=15)


@router.post("/{job_id}/cancel", response_model=JobPublic, status_code=202, responses=ERRORS)
def cancel(job_id: uuid.UUID, session: WriteSession, user: CurrentUser, service: ServiceDep) -> JobPublic:
    """Ask the job to stop: a running one within a second or two, a queued one at once."""
    job = records.get_job(session, job_id, user)
    template = session.get(Template, job.template_id) if job.template_id else None
    if template is not None:
        template_records.check_may_change(user, template)
    job = records.request_cancel(session, job, user)
    if job.status == "queued":
        records.cancel_queued(session, job, user)
    answer = commit(session, job_public(job))
    if service.deliverer is not None:
        service.deliverer.wake()
    return answer
