#!/usr/bin/python
# ruff: noqa: E402, E501  (Ansible module layout: the YAML doc strings come before the imports)
"""Resolve a template's stacks through the ctforge catalog: effective list, what to install, which roles."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ctforge_stacks
short_description: Resolve a template's tech stacks through the ctforge catalog
description:
  - Loads the catalog (C(ctforge.catalog.load_catalog)), resolves the template's own stacks with
    their requirements and accumulates them on top of the inherited ones.
  - Fails with the catalog's own message, which names the culprit, for an unknown stack or a cycle.
  - Reads only; never changes anything.
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

from ansible.module_utils.basic import AnsibleModule


def _ident(item) -> str:
    return item if isinstance(item, str) else item.id


def _stack(cat, stack_id: str):
    """The catalog entry of one id, whichever accessor the catalog offers."""
    if hasattr(cat, "get"):
        return cat.get(stack_id)
    if isinstance(getattr(cat, "stacks", None), dict):
        return cat.stacks[stack_id]
    return cat[stack_id]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "own": {"type": "list", "elements": "str", "default": []},
            "inherited": {"type": "list", "elements": "str", "default": []},
            "catalog_dir": {"type": "path"},
            "ignore_unknown": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        from ctforge import catalog as ctcatalog
    except ImportError as exc:
        module.fail_json(msg=f"the ctforge package is not importable by {__import__('sys').executable}: "
                             f"{exc}; run Ansible from ctforge's virtualenv")
    p = module.params
    try:
        cat = ctcatalog.load_catalog(p["catalog_dir"]) if p["catalog_dir"] else ctcatalog.load_catalog()
        unknown = []
        if p["ignore_unknown"]:
            unknown = [s for s in p["own"] + p["inherited"] if s not in cat]
            p["own"] = [s for s in p["own"] if s not in unknown]
            p["inherited"] = [s for s in p["inherited"] if s not in unknown]
        effective = [_ident(s) for s in cat.effective(p["inherited"], p["own"])]
        # resolve() also checks the inherited ids: a parent built from a stack the catalog lost is an error
        cat.resolve(p["inherited"])
    except (ctcatalog.UnknownStackError, ctcatalog.StackCycleError) as exc:
        module.fail_json(msg=f"stacks {p['own']}: {exc}")
    except Exception as exc:  # a malformed catalog file: the catalog's message names the file and field
        module.fail_json(msg=f"the stack catalog cannot be loaded: {exc}")
    to_install = [s for s in effective if s not in p["inherited"]]
    all_roles = {s: _stack(cat, s).role for s in effective}
    module.exit_json(changed=False, effective=effective, to_install=to_install,
                     roles=[all_roles[s] for s in to_install], all_roles=all_roles, unknown=unknown)


if __name__ == "__main__":
    main()
