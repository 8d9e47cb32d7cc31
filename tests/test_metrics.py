"""GET /metrics: Prometheus' text format, read from the database at each scrape. Jobs, claims and
deliveries are rows inserted here with the session; the answer is parsed with prometheus_client's
own parser and must show exactly those counts."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from ctforge.db.models import (
    JOB_KINDS,
    JOB_STATUSES,
    Job,
    VmidClaim,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)
from service_helpers import ApiClient, service_settings


def scrape(api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, by (name, sorted labels)."""
    answer = api.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def job(kind: str, status: str, seconds: float | None = None) -> Job:
    finished = utcnow()
    return Job(kind=kind, status=status, template_name="Base", started_by="alice",
               started_at=finished - timedelta(seconds=seconds) if seconds is not None else None,
               finished_at=finished if seconds is not None else None)


def test_an_empty_database_reports_zeros(api):
    samples = scrape(api)
    for kind in JOB_KINDS:
        for status in JOB_STATUSES:
            assert samples[("ctforge_jobs", (("kind", kind), ("status", status)))] == 0
        assert samples[("ctforge_job_duration_seconds_count", (("kind", kind),))] == 0
    assert samples[("ctforge_jobs_queued", ())] == 0
    assert samples[("ctforge_vmids_in_use", (("range", "template"),))] == 0
    assert samples[("ctforge_vmids_total", (("range", "template"),))] == 500  # 500-999
    assert samples[("ctforge_vmids_total", (("range", "workspace"),))] == 400  # 100-499
    for status in ("pending", "delivered", "failed"):
        assert samples[("ctforge_webhook_deliveries", (("status", status),))] == 0


def test_metrics_show_the_rows_inserted(api):
    with api.db.writing() as session:
        session.add_all([
            job("provision", "successful", 10.0), job("provision", "successful", 100.0),
            job("provision", "failed", 4.0), job("build", "queued"), job("build", "queued"),
            job("finalize", "queued"), job("destroy", "running"),
        ])
        session.add_all([VmidClaim(vmid=vmid, kind="template") for vmid in (500, 501, 999)])
        session.add_all([VmidClaim(vmid=100, kind="workspace"), VmidClaim(vmid=1000, kind="template")])
        subscription = WebhookSubscription(url="https://hooks.example/x", secret="k" * 20, created_by="alice")
        session.add(subscription)
        session.flush()
        statuses = ("pending", "delivered", "delivered", "failed")
        session.add_all([WebhookDelivery(subscription_id=subscription.id, event="ping", body="{}",
                                         status=status) for status in statuses])

    samples = scrape(api)
    assert samples[("ctforge_jobs", (("kind", "provision"), ("status", "successful")))] == 2
    assert samples[("ctforge_jobs", (("kind", "provision"), ("status", "failed")))] == 1
    assert samples[("ctforge_jobs", (("kind", "build"), ("status", "queued")))] == 2
    assert samples[("ctforge_jobs", (("kind", "destroy"), ("status", "running")))] == 1
    assert samples[("ctforge_jobs", (("kind", "rebuild"), ("status", "queued")))] == 0
    assert samples[("ctforge_jobs_queued", ())] == 3

    provision = (("kind", "provision"),)
    assert samples[("ctforge_job_duration_seconds_count", provision)] == 3
    assert abs(samples[("ctforge_job_duration_seconds_sum", provision)] - 114.0) < 0.01
    bucket = "ctforge_job_duration_seconds_bucket"
    assert samples[(bucket, (("kind", "provision"), ("le", "5.0")))] == 1
    assert samples[(bucket, (("kind", "provision"), ("le", "15.0")))] == 2
    assert samples[(bucket, (("kind", "provision"), ("le", "60.0")))] == 2
    assert samples[(bucket, (("kind", "provision"), ("le", "120.0")))] == 3
    assert samples[(bucket, (("kind", "provision"), ("le", "+Inf")))] == 3
    # queued and running jobs have no duration yet
    assert samples[("ctforge_job_duration_seconds_count", (("kind", "build"),))] == 0
    assert samples[("ctforge_job_duration_seconds_count", (("kind", "destroy"),))] == 0

    assert samples[("ctforge_vmids_in_use", (("range", "template"),))] == 3  # 1000 is in neither range
    assert samples[("ctforge_vmids_in_use", (("range", "workspace"),))] == 1
    assert samples[("ctforge_webhook_deliveries", (("status", "pending"),))] == 1
    assert samples[("ctforge_webhook_deliveries", (("status", "delivered"),))] == 2
    assert samples[("ctforge_webhook_deliveries", (("status", "failed"),))] == 1


def test_the_ranges_are_the_settings(make_api):
    api = make_api(template_vmids="2000-2099", workspace_vmids="3000-3009")
    with api.db.writing() as session:
        session.add_all([VmidClaim(vmid=2000, kind="template"), VmidClaim(vmid=3009, kind="workspace"),
                         VmidClaim(vmid=500, kind="template")])
    samples = scrape(api)
    assert samples[("ctforge_vmids_total", (("range", "template"),))] == 100
    assert samples[("ctforge_vmids_total", (("range", "workspace"),))] == 10
    assert samples[("ctforge_vmids_in_use", (("range", "template"),))] == 1
    assert samples[("ctforge_vmids_in_use", (("range", "workspace"),))] == 1


def test_two_apps_in_one_process_each_have_their_registry(api, tmp_path):
    first = api
    second = ApiClient(api.db, service_settings(tmp_path / "second", template_vmids="2000-2009"),
                       tokens=api.tokens)
    with first.db.writing() as session:
        session.add(job("build", "queued"))
    # both read the one database (the same truth), each with its own settings
    for api, size in ((first, 500), (second, 10), (first, 500)):
        samples = scrape(api)
        assert samples[("ctforge_jobs_queued", ())] == 1
        assert samples[("ctforge_vmids_total", (("range", "template"),))] == size


def test_metrics_need_no_token_and_show_no_names(api):
    with api.db.writing() as session:
        session.add(job("build", "queued"))
        session.add(WebhookSubscription(url="https://hooks.example/x", secret="a-secret-of-twenty-chars",
                                        created_by="alice"))
    answer = api.get("/metrics")
    assert answer.status_code == 200
    for private in ("Base", "alice", "hooks.example", "a-secret-of-twenty-chars"):
        assert private not in answer.text
