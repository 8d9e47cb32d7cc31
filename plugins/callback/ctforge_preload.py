"""Callback ctforge_preload: imports, once in ansible-playbook's own process, the ctforge modules that
ctforge's action plugins use (the stack catalog and its pydantic models, the request formats).

Ansible runs each task in a worker forked from that process, and a module a worker imports is gone
with it: without this, every ctforge_stacks or ctforge_workspace_request task imported the catalog
afresh, 0.15 to 0.25 s a task, some five times a workspace and more a build. A fork inherits what its
parent imported. It does nothing else; enabled in ansible.cfg (callbacks_enabled).
"""

from __future__ import annotations

import contextlib
import importlib

from ansible.plugins.callback import CallbackBase

PRELOADED = ("ctforge.catalog", "ctforge.formats")

DOCUMENTATION = r"""
name: ctforge_preload
type: aggregate
short_description: import ctforge's catalog and formats once, before the forks
description:
  - Imports ctforge.catalog and ctforge.formats in ansible-playbook's own process, so that every
    forked worker that runs ctforge_stacks or ctforge_workspace_request finds them imported.
  - Without the ctforge package (another virtualenv) it does nothing, and the action plugins say
    what is missing.
requirements: [enabled in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ctforge_preload"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # here, not at the top: Ansible imports every callback on its path to see which are enabled
        for name in PRELOADED:
            with contextlib.suppress(ImportError):  # the action plugins name the missing package
                importlib.import_module(name)
