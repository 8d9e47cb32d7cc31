#!/usr/bin/python
# ruff: noqa: E501  (Ansible module layout: YAML doc strings)
"""Documentation of ctforge_stacks. The action plugin plugins/action/ctforge_stacks.py does the work, on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ctforge_stacks
short_description: Resolve a template's tech stacks through the ctforge catalog
description:
  - Loads the catalog (C(ctforge.catalog.load_catalog)), resolves the template's own stacks with
    their requirements and accumulates them on top of the inherited ones.
  - Fails with the catalog's own message, which names the culprit, for an unknown stack or a cycle.
  - Reads only; never changes anything. Runs on the controller, in the process that runs Ansible, as an
    action plugin, so the ctforge package must be importable there (run Ansible from its virtualenv).
options:
  own: {description: The template's own stack ids., type: list, elements: str, default: []}
  inherited: {description: The parent's effective stack ids (already installed)., type: list, elements: str, default: []}
  catalog_dir: {description: Directory of the catalog; the package default when omitted., type: path}
  ignore_unknown:
    description:
      - Drop ids of O(own) and O(inherited) the catalog does not know and return them as RV(unknown) instead of failing.
        Used when O(own) comes from a CT's local facts (the base role records itself, and is no stack).
    type: bool
    default: false
author: ctforge
"""

RETURN = r"""
effective: {description: inherited + own in dependency order, each once., type: list, returned: success}
to_install: {description: The stacks of effective that are not inherited, in catalog order., type: list, returned: success}
roles: {description: The role of each stack of to_install, in the same order., type: list, returned: success}
all_roles: {description: The role of each effective stack (for verify and prepare)., type: dict, returned: success}
unknown: {description: Ids of own the catalog does not know (with ignore_unknown)., type: list, returned: success}
"""
