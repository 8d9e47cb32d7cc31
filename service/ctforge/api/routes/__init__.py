"""One router per resource, all under /api/v1; create_app includes every module of ROUTERS."""

from ctforge.api.routes import actions, jobs, meta, metrics, stacks, templates, vmids, webhooks

ROUTERS = (meta, stacks, templates, actions, jobs, vmids, webhooks, metrics)
