"""The service's Prometheus metrics, read from the database at scrape time: every process that
serves /metrics reports the same truth, whichever of them ran the jobs.

    ctforge_jobs{kind,status}                  jobs, by kind and status (every pair, 0 included)
    ctforge_jobs_queued                        jobs waiting for a worker
    ctforge_job_duration_seconds{kind}         histogram of finished jobs' finished_at - started_at
    ctforge_vmids_in_use{range}                VMID claims inside the template / workspace range
    ctforge_vmids_total{range}                 the size of that range
    ctforge_webhook_deliveries{status}         webhook deliveries, by status

Each app has its own CollectorRegistry (`registry(service)`), not prometheus_client's global one,
so several apps in one process (tests) do not clash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from ctforge.db.models import (
    DELIVERY_STATUSES,
    JOB_DONE,
    JOB_KINDS,
    JOB_STATUSES,
    Job,
    VmidClaim,
    WebhookDelivery,
)
from ctforge.settings import KINDS

# From a quick destroy to a long rebuild (the job time-out is an hour by default).
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)


def _seconds_between(started: Any, finished: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "sqlite":  # stored as text: julianday() reads it, in days
        return (func.julianday(finished) - func.julianday(started)) * 86400.0
    return cast(func.extract("epoch", finished - started), Float)


class DatabaseCollector(Collector):
    def __init__(self, service: Any) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # nothing read at registration: the metrics come from the database at each scrape

    def collect(self) -> Iterator[Metric]:
        with self.service.db.reading() as session:
            yield from self._jobs(session)
            yield self._durations(session)
            yield from self._vmids(session)
            yield self._deliveries(session)

    def _jobs(self, session: Session) -> Iterator[Metric]:
        counts = {(kind, status): n for kind, status, n in session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))}
        jobs = GaugeMetricFamily("ctforge_jobs", "Jobs, by kind and status.", labels=["kind", "status"])
        for kind in JOB_KINDS:
            for status in JOB_STATUSES:
                jobs.add_metric([kind, status], counts.get((kind, status), 0))
        yield jobs
        yield GaugeMetricFamily("ctforge_jobs_queued", "Jobs waiting for a worker.",
                                value=sum(n for (_kind, status), n in counts.items() if status == "queued"))

    def _durations(self, session: Session) -> Metric:
        seconds = _seconds_between(Job.started_at, Job.finished_at, session.get_bind().dialect.name)
        columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
        columns += [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        rows = {row[0]: row[1:] for row in session.execute(
            select(Job.kind, *columns)
            .where(and_(Job.status.in_(JOB_DONE), Job.started_at.is_not(None), Job.finished_at.is_not(None)))
            .group_by(Job.kind))}
        family = HistogramMetricFamily("ctforge_job_duration_seconds",
                                       "How long finished jobs ran (finished_at - started_at).",
                                       labels=["kind"])
        for kind in JOB_KINDS:
            count, total, *within = rows.get(kind, (0, 0.0, *[0] * len(DURATION_BUCKETS)))
            buckets = [(repr(bound), int(n or 0)) for bound, n in zip(DURATION_BUCKETS, within, strict=True)]
            family.add_metric([kind], [*buckets, ("+Inf", int(count))], sum_value=float(total or 0.0))
        return family

    def _vmids(self, session: Session) -> Iterator[Metric]:
        settings = self.service.settings
        in_use = GaugeMetricFamily("ctforge_vmids_in_use", "VMIDs claimed inside each range.",
                                   labels=["range"])
        total = GaugeMetricFamily("ctforge_vmids_total", "The size of each VMID range.", labels=["range"])
        for kind in KINDS:
            span = settings.vmid_range(kind)
            claimed = session.scalar(select(func.count()).select_from(VmidClaim)
                                     .where(VmidClaim.vmid.between(span.first, span.last))) or 0
            in_use.add_metric([kind], claimed)
            total.add_metric([kind], span.size)
        yield in_use
        yield total

    def _deliveries(self, session: Session) -> Metric:
        counts = {status: n for status, n in session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status))}
        family = GaugeMetricFamily("ctforge_webhook_deliveries", "Webhook deliveries, by status.",
                                   labels=["status"])
        for status in DELIVERY_STATUSES:
            family.add_metric([status], counts.get(status, 0))
        return family


def registry(service: Any) -> CollectorRegistry:
    """A registry of its own holding the database collector of `service`."""
    fresh = CollectorRegistry(auto_describe=False)
    fresh.register(DatabaseCollector(service))
    return fresh
