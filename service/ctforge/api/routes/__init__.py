"""One router per resource, all under /api/v1; create_app includes every module of ROUTERS."""

from ctforge.api.routes import (
    actions,
    jobs,
    meta,
    metrics,
    stacks,
    templates,
    vmids,
    webhooks,
    workspaces,
)

ROUTERS = (meta, stacks, templates, actions, workspaces, jobs, vmids, webhooks, metrics)
