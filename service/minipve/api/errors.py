"""Errors as Proxmox answers them, and the texts tests assert on."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error reply: the reason phrase is the message's first line, as Proxmox sends it."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def fail(message: str) -> ApiError:
    return ApiError(500, message)


def param_error(name: str, message: str) -> ApiError:
    return ApiError(400, "Parameter verification failed.", {name: message})


NO_TICKET = "No ticket"
AUTH_FAILURE = "authentication failure"
INVALID_TICKET = "permission denied - invalid PVE ticket"
INVALID_CSRF = "Permission denied - invalid csrf token"
INVALID_TOKEN = "invalid token value!"
CT_MISSING = "Configuration file '{path}' does not exist"
CT_EXISTS = "CT {vmid} already exists on node '{node}'"
CT_LOCKED = "CT is locked ({lock})"
CT_RUNNING = "CT {vmid} already running"
CT_NOT_RUNNING = "CT {vmid} not running"
DESTROY_RUNNING = "unable to destroy CT {vmid} - container is running"
START_TEMPLATE = "you can't start a CT if it's a template"
TEMPLATE_OF_TEMPLATE = "you can't convert a template to a template"
TEMPLATE_RUNNING = "you can't convert a CT to template if the CT is running"
BASE_IN_USE = "base volume '{volid}' is still in use by linked clones"
LINKED_STORAGE = "parameter 'storage' not allowed for linked clones"
LINKED_NEEDS_TEMPLATE = "linked clone feature is not available for non-template CTs"
FULL_CLONE_RUNNING = "Cannot do full clones on a running container without snapshots"
NO_FREE_VMID = "unable to get any free VMID in range [{lower}, {upper}]"
VM_EXISTS = "VM {vmid} already exists"
NO_SUCH_STORAGE = "storage '{storage}' does not exist"
ROOTDIR_UNSUPPORTED = "storage '{storage}' does not support container directories"
VZTMPL_UNSUPPORTED = "storage '{storage}' does not support templates"
NO_SUCH_TEMPLATE = "no such template"
NO_SUCH_NODE = (
    "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
)
DIGEST_MISMATCH = "detected modified configuration - file changed by other user? Try again."
BAD_UPID = "unable to parse worker upid"
NO_SUCH_TASK = "no such task"
NOT_IMPLEMENTED = "Method '{method} {path}' not implemented"
