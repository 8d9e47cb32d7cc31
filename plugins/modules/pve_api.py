#!/usr/bin/python
# ruff: noqa: E501  (Ansible module layout: YAML doc strings)
"""Documentation of pve_api. The action plugin plugins/action/pve_api.py does the work, on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pve_api
short_description: Call the Proxmox VE API and follow the worker task it starts
description:
  - Sends one request to C(/api2/json) and returns its C(data).
  - When the reply is a task id (UPID) and O(wait) is true, polls the task's status until it stops.
    A task that stops with an error fails the module at once with the task's own message, instead of
    waiting for a timeout as the community.proxmox modules do; C(WARNINGS) count as success.
  - Used only for what the community.proxmox modules lack (waiting on a task by UPID, polling for an address or a conversion, node storages, ctforge's own tag).
  - Runs on the controller whatever the task's host, as an action plugin, so no module is shipped.
  - In check mode, GET requests are sent and other methods are skipped.
options:
  api_host: {description: Proxmox VE API host (env PROXMOX_HOST)., type: str}
  api_port: {description: API port (env PROXMOX_PORT)., type: int, default: 8006}
  api_user: {description: User with realm (env PROXMOX_USER)., type: str}
  api_token_id: {description: Token id (env PROXMOX_TOKEN_ID)., type: str}
  api_token_secret: {description: Token secret (env PROXMOX_TOKEN_SECRET)., type: str}
  api_password: {description: Password, used when no token is given (env PROXMOX_PASSWORD)., type: str}
  validate_certs: {description: Verify the TLS certificate (env PROXMOX_VALIDATE_CERTS)., type: bool, default: true}
  method: {description: HTTP method., type: str, default: GET, choices: [GET, POST, PUT, DELETE]}
  path:
    description: Path under /api2/json, for example C(/nodes/pve1/lxc/200/clone). Required unless O(follow) is given.
    type: str
  follow:
    description:
      - A task id (UPID) to wait for instead of sending a request, for example the C(taskid) that a
        community.proxmox module returns when its own wait ran out. Fails at once with the task's own
        error when it failed. O(timeout) and O(poll_interval) apply.
    type: str
  data: {description: Parameters (query string for GET and DELETE, form body otherwise)., type: dict, default: {}}
  wait: {description: Wait for the task when the reply is a UPID., type: bool, default: true}
  timeout: {description: Seconds to wait for the task., type: int, default: 900}
  poll_interval: {description: "The longest pause between two polls, in seconds: the first comes after 0.02 s, each next one twice as long, up to this.", type: float, default: 0.25}
  until:
    description:
      - Repeat the GET until a condition holds, at most O(poll_interval) apart, at most O(timeout) seconds.
      - C(ipv4) on C(.../interfaces) waits for a global IPv4 address; C(ssh) also waits until port 22
        of that address answers with an SSH banner; C(template) on C(.../config) waits until the config says C(template=1).
      - "Running out of time fails with what is missing: C(CT 200 has no global IPv4 address after 180 s), or with
        C(ssh), once an address is shown, C(SSH does not answer on 10.0.0.5:22 after 180 s) (with that address as C(ipv4))."
    type: str
    choices: [ipv4, ssh, template]
author: ctforge
"""

RETURN = r"""
data: {description: The reply's data., returned: always, type: raw}
upid: {description: The task id when the reply was one., returned: when a task was started, type: str}
exitstatus: {description: "The task's exit status: OK, WARNINGS n or the error.", returned: when waited, type: str}
ipv4: {description: The CT's global IPv4 address., returned: "with until ipv4 or ssh, also when SSH did not answer on it", type: str}
"""
