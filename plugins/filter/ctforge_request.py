"""Filter ctforge_request_problems: what is wrong with a playbook request's fields, one message each.

The checks and their messages are ctforge.formats.request_problems, Proxmox's own formats by variable;
playbooks/tasks/check_request.yml refuses a request with them before anything reads or changes Proxmox.
"""

from __future__ import annotations

import sys

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: ctforge_request_problems
short_description: the fields of a playbook request that do not have Proxmox's formats
description:
  - Takes a mapping of request variables to their values (None for a field not given) and returns a
    list of messages, one per problem, each naming the variable; an empty list when every field is right.
  - The values of ctforge_env_vars may be secrets; a message names their keys, never their values.
positional: _input
options:
  _input: {description: "The request: variable name to value.", type: dict, required: true}
"""


def ctforge_request_problems(check) -> list[str]:
    try:
        from ctforge.formats import request_problems
    except ImportError as exc:
        raise AnsibleFilterError(f"the ctforge package is not importable by {sys.executable}: {exc}; "
                                 "run Ansible from ctforge's virtualenv") from None
    if not isinstance(check, dict):
        raise AnsibleFilterError(f"ctforge_request_problems takes a mapping, not {type(check).__name__}")
    return request_problems(check)


class FilterModule:
    def filters(self):
        return {"ctforge_request_problems": ctforge_request_problems}
