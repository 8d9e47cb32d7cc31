"""Action plugin ctforge_stacks: resolve a template's stacks through the catalog, on the controller.

The catalog lives on the controller, so the resolution runs in the controller's worker process instead
of a module started for it. The options and return values are documented in plugins/modules/ctforge_stacks.py.
"""

from __future__ import annotations

import sys

from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    "own": {"type": "list", "elements": "str", "default": []},
    "inherited": {"type": "list", "elements": "str", "default": []},
    "catalog_dir": {"type": "path"},
    "ignore_unknown": {"type": "bool", "default": False},
}


def _ident(item) -> str:
    return item if isinstance(item, str) else item.id


def resolve(own: list[str], inherited: list[str], catalog_dir: str | None, ignore_unknown: bool) -> dict:
    """The module's result: effective, to_install, roles, all_roles and unknown, or failed with msg."""
    try:
        from ctforge import catalog as ctcatalog
    except ImportError as exc:
        return {"failed": True, "msg": f"the ctforge package is not importable by {sys.executable}: {exc}; "
                                       "run Ansible from ctforge's virtualenv"}
    try:
        cat = ctcatalog.load_catalog(catalog_dir) if catalog_dir else ctcatalog.load_catalog()
        unknown = []
        if ignore_unknown:
            unknown = [s for s in own + inherited if s not in cat]
            own = [s for s in own if s not in unknown]
            inherited = [s for s in inherited if s not in unknown]
        effective = [_ident(s) for s in cat.effective(inherited, own)]
        # resolve() also checks the inherited ids: a parent built from a stack the catalog lost is an error
        cat.resolve(inherited)
        all_roles = {s: cat.get(s).role for s in effective}
    except (ctcatalog.UnknownStackError, ctcatalog.StackCycleError) as exc:
        return {"failed": True, "msg": f"stacks {own}: {exc}"}
    except Exception as exc:  # a malformed catalog file: the catalog's message names the file and field
        return {"failed": True, "msg": f"the stack catalog cannot be loaded: {exc}"}
    to_install = [s for s in effective if s not in inherited]
    return {"changed": False, "effective": effective, "to_install": to_install,
            "roles": [all_roles[s] for s in to_install], "all_roles": all_roles, "unknown": unknown}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(resolve(params["own"], params["inherited"], params["catalog_dir"],
                              params["ignore_unknown"]))
        return result
