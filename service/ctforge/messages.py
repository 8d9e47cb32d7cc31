"""Error texts of the catalog, the role checks and the CLI: one place, so tests assert on the constant.

Each is a `str.format` template; the names of its fields say what fills them.
"""

# A stack file that cannot be read as a catalog entry: its path, then each field ("-" for the file
# as a whole) and why, joined with "; ".
STACK_FILE_INVALID = "{path}: {problems}"
STACK_FIELD_PROBLEM = "field {field!r}: {reason}"
STACK_FILE_SUFFIX = "stack files end in .yml: rename it to {name!r}"
STACK_FILE_UNREADABLE = "cannot read the file ({error})"
STACK_FILE_NOT_YAML = "not valid YAML: {error}"
STACK_FILE_NOT_MAPPING = "must be a YAML mapping of fields, not {kind}"
STACK_FILE_DUPLICATE_KEY = "the key {key!r} appears twice (line {line})"
STACK_ID_NOT_FILE_NAME = "must equal the file name {stem!r} (stacks/<id>.yml)"
STACK_ROLE_NOT_ID = "must equal the stack id {stack_id!r} (a stack is installed by the role of its name)"
STACK_FIELD_MISSING = "is required but missing"
STACK_FIELD_UNKNOWN = "is not a stack field (the fields are: {fields})"
STACK_LIST_DUPLICATE = "lists {item!r} more than once"

# The catalog as a whole.
CATALOG_MISSING = "no stack catalog at {path}: the directory does not exist"
CATALOG_EMPTY = "the stack catalog at {path} has no stacks/<id>.yml files"
DUPLICATE_STACK = "stack {stack_id!r} is defined more than once"
UNKNOWN_STACK = "unknown stack {stack_id!r}; the catalog has: {known}"
UNKNOWN_REQUIREMENT = "stack {stack_id!r} requires {required!r}, which is not in the catalog"
STACK_CYCLE = "stacks require each other in a cycle: {cycle}"
MISSING_ROLE = "stack {stack_id!r} names role {role!r}, but {path} does not exist"

# Role argument specs against role defaults.
ROLE_SPEC_UNREADABLE = "role {role!r}: {path} cannot be read: {reason}"
ROLE_SPEC_MISMATCH = (
    "role {role!r}: defaults/main.yml and meta/argument_specs.yml disagree: "
    "only in defaults: {only_defaults}; only in argument specs: {only_specs}"
)

# The command line.
CLI_ERROR = "error: {message}"

# The service's settings.
VMID_RANGE_SYNTAX = "{value!r} is not a VMID range: write FIRST-LAST, e.g. 500-999"
VMID_RANGE_BOUNDS = "{value!r}: a VMID range runs from {low} to {high}, first id not above the last"
VMID_RANGES_OVERLAP = (
    "the template VMIDs ({templates}) and the workspace VMIDs ({workspaces}) overlap: "
    "set CTFORGE_TEMPLATE_VMIDS and CTFORGE_WORKSPACE_VMIDS to ranges apart"
)

# The database.
DATABASE_UNREACHABLE = "cannot open the database {url}: {error}"
DATABASE_BEHIND = (
    "the database {url} is at revision {current}, the service needs {head}: "
    "run `ctforge db upgrade` first"
)

# Users and tokens.
USER_NAME_INVALID = "{name!r} is not a user name: lower-case letters, digits, '.', '_' and '-' ({pattern})"
USER_EXISTS = "a user named {name!r} exists already"
USER_NOT_FOUND = "no user named {name!r}: add one with `ctforge users add {name}`"
TOKEN_MISSING = (
    "this route needs a bearer token: send `Authorization: Bearer <token>` "
    "(make one with `ctforge tokens create USER`)"
)
TOKEN_INVALID = (
    "the bearer token is not valid: it was revoked or mistyped; "
    "make one with `ctforge tokens create USER`"
)

# Proxmox, as the service reads it.
PROXMOX_DOWN = (
    "Proxmox VE at {where} did not answer ({error}): nothing was changed; "
    "check that it runs and that PROXMOX_HOST and PROXMOX_PORT point at it"
)
PROXMOX_REFUSED = (
    "Proxmox VE at {where} refused to list the cluster's guests (HTTP {status}: {reason}): "
    "nothing was changed; check PROXMOX_USER, PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET, and the "
    "token's VM.Audit right"
)

# VMIDs.
VMID_RANGE_EXHAUSTED = (
    "no free VMID left for a {kind} in {range}: every id there is claimed or in use on the cluster; "
    "free one (delete a record or a CT) or widen the range (CTFORGE_TEMPLATE_VMIDS, CTFORGE_WORKSPACE_VMIDS)"
)

# Templates.
TEMPLATE_NOT_FOUND = "no template with id {id}"
TEMPLATE_NOT_VISIBLE = "template {id} belongs to another user and is not a default: ask its owner or an admin"
TEMPLATE_NOT_YOURS = "template {name!r} belongs to {owner!r}: only its owner or an admin may change it"
TEMPLATE_NAME_TAKEN = "you have a template named {name!r} already: choose another name"
TEMPLATE_BUSY = "template {name!r} is {status}: a job works on it; wait until it ends, then try again"
TEMPLATE_HAS_CHILDREN = (
    "template {name!r} cannot be deleted: templates inherit from it ({children}); delete them first"
)
DEFAULT_NEEDS_ADMIN = "only an admin may make a template a default (is_default), or stop it being one"
PARENT_NOT_FOUND = "no parent template with id {id} that you may use: it does not exist or is not yours"
PARENT_NOT_READY = (
    "parent template {name!r} is {status}: a child is made from a ready parent with a VMID; "
    "build the parent first"
)
PARENT_CYCLE = "template {name!r} cannot inherit from {parent!r}: the parent chain would be a cycle ({chain})"
PARENT_REMOVED = (
    "template {name!r} has a parent: a child cannot become a base; make a new base template instead"
)
CHILD_BASE_GIVEN = (
    "a child inherits its base CT template from its parent: {parent!r} is built on {parent_base!r}, "
    "not {base!r}; leave base_ct_template out"
)
BASE_NEEDS_APPLIANCE = (
    "a template without a parent starts from an appliance: give base_ct_template "
    "(e.g. debian-12-standard)"
)
STATUS_ILLEGAL = "template {name!r} cannot go from {current} to {to}; from {current} it can go to: {allowed}"
STATUS_CHANGED_MEANWHILE = (
    "template {name!r} was {expected} but is {found} now: another writer moved it first"
)
VMID_OUT_OF_RANGE = "VMID {vmid} is outside the {kind} range {range}: pick one inside it, or leave vmid out"
VMID_IN_USE_ON_CLUSTER = "VMID {vmid} is in use on the Proxmox cluster: pick another, or leave vmid out"
VMID_CLAIMED = "VMID {vmid} is claimed by another record: pick another, or leave vmid out"

# The HTTP API.
DATABASE_BUSY = "the database did not answer in time: nothing was changed; try again in a moment"
BODY_TOO_LARGE = "the request body is over {limit} bytes: send less ({setting} sets the limit)"
ROUTE_NOT_FOUND = "no such route: the API lives under /api/v1 (see /docs)"
METHOD_NOT_ALLOWED = "this route does not take {method}; it takes: {allowed}"
STACK_NOT_FOUND = "no stack {stack_id!r} in the catalog; it has: {known}"
SETTINGS_INVALID = "the service's settings are wrong: {problems}"

# Jobs (lifecycle actions).
JOB_NOT_FOUND = "no job with id {id}"
JOB_RUNNING_ON_TEMPLATE = (
    "template {name!r} has a {kind} job that is {status} ({job_id}): one job at a time on a template; "
    "wait for it or cancel it (POST /api/v1/jobs/{job_id}/cancel)"
)
ACTION_NEEDS_STATUS = (
    "cannot {action} template {name!r}: it is {status}; {action} takes a template that is {wanted}"
)
ACTION_PARENT_NOT_READY = (
    "cannot {action} template {name!r}: its parent {parent!r} is {status}; a child is made from a ready "
    "parent, so build the parent first"
)
RETRY_NOTHING_FAILED = "template {name!r} has no failed job to retry: start it with provision or build"
DESTROY_HAS_CHILDREN = (
    "template {name!r} cannot be destroyed: templates are built on it ({children}); destroy them first"
)
JOB_ALREADY_DONE = "job {job_id} has ended already ({status}): there is nothing to cancel"
JOB_CANCELED_BY = "canceled by {user}"
JOB_TIMED_OUT = "timed out after {seconds} s (CTFORGE_JOB_TIMEOUT_SECONDS) during {step}"
JOB_SERVICE_RESTARTED = "service restarted during the run"
JOB_STEP_FAILED = "{step} failed: {cause}"
JOB_REQUEST_INVALID = "the record does not make a valid {playbook} request: {problems}"
JOB_PROXMOX_UNREACHABLE = "the Proxmox API did not answer while the job was prepared: {cause}"

# --- webhooks and metrics (issue #13: telling others) ---------------------------------------------
WEBHOOKS_NEED_ADMIN = "only an admin may list, add or remove webhook subscriptions and read their deliveries"
WEBHOOK_NOT_FOUND = "no webhook subscription with id {id}"
WEBHOOK_HTTP_STATUS = "the subscriber answered HTTP {status} {reason}: only a 2xx counts as delivered"
WEBHOOK_REDIRECT = (
    "the subscriber answered HTTP {status} (a redirect to {location}): redirects are not followed; "
    "point the subscription at the final URL"
)
WEBHOOK_SEND_FAILED = "sending failed: {error}"
WEBHOOK_LAST_ATTEMPT_LOST = (
    "the service stopped during the last attempt ({attempts} of {limit}): the subscriber may or may "
    "not have got it"
)
JOB_SERVICE_STOPPED = "the service was stopped during the run"

# --- webhooks (continued) -------------------------------------------------------------------------
WEBHOOK_URL_UNUSABLE = (
    "body.url: must be a URL that can be sent to: a port from 1 to 65535, host name labels of 1 to 63 "
    "characters (253 in all), and inside [] an IPv6 address"
)
DELETE_CT_EXISTS = (
    "template {name!r} still has its CT {vmid} on the cluster: destroy it first "
    "(POST /api/v1/templates/{id}/destroy), then delete the record"
)
REBUILD_HAS_CHILDREN = (
    "template {name!r} cannot be rebuilt: templates are built on its CT ({children}), which Proxmox "
    "keeps while their linked clones use it; destroy them first, or make a new template"
)
REBUILD_OLD_CT_KEPT = (
    "the template now runs on its rebuilt CT, but its old CT {vmid} could not be destroyed ({cause}); "
    "remove it by hand: ansible-playbook playbooks/destroy.yml -e ctforge_vmid={vmid}"
)

# --- workspaces (issue #14) -----------------------------------------------------------------------
WORKSPACE_NOT_FOUND = "no workspace with id {id}"
WORKSPACE_NOT_YOURS = "workspace {name!r} belongs to {owner}: only its owner or an admin may change it"
WORKSPACE_NAME_TAKEN = "you have a workspace named {name!r} already: pick another name, or destroy that one"
WORKSPACE_NEEDS_STACKS = (
    "say what the work needs: give stacks, or project_files to read them from (or both)"
)
WORKSPACE_NEEDS_KEYS = (
    "ssh_public_keys: give at least one of your OpenSSH public keys: the workspace lets you in with it"
)
WORKSPACE_NO_TEMPLATE = (
    "no ready template you may use: build one first (POST /api/v1/templates/ID/build), or ask an admin "
    "for a default"
)
WORKSPACE_TEMPLATE_NOT_READY = (
    "template {name!r} is {status}: a workspace is cloned from a ready template; build it first, or leave "
    "template_id out to let ctforge pick one"
)
WORKSPACE_TEMPLATE_KEYLESS = (
    "template {name!r} keeps no build key (ctforge_keep_build_key: false): ctforge cannot reach its clones "
    "to let you in or install stacks; pick another template"
)
WORKSPACE_JOB_RUNNING = (
    "workspace {name!r} has a {kind} job that is {status} ({job_id}): one job at a time on a workspace; "
    "wait for it or cancel it (POST /api/v1/jobs/{job_id}/cancel)"
)
WORKSPACE_ACTION_NEEDS_STATUS = (
    "cannot {action} workspace {name!r}: it is {status}; {action} takes a workspace that is {wanted}"
)
WORKSPACE_STATUS_ILLEGAL = (
    "workspace {name!r} cannot go from {current} to {to}; from {current} it can go to: {allowed}"
)
WORKSPACE_RETRY_NOTHING_FAILED = "workspace {name!r} has no failed job to retry"
TEMPLATE_HAS_WORKSPACES = (
    "template {name!r} has workspaces ({workspaces}) made from it, which Proxmox keeps it for: destroy "
    "them first, or destroy with force=true to destroy them with it"
)
TEMPLATE_WORKSPACE_BUSY = (
    "template {name!r} cannot be destroyed now: its workspace {workspace!r} has a {kind} job that is "
    "{status} ({job_id}); wait for it or cancel it"
)

# --- reading a project's stacks (issue #14: ctforge.detect, `ctforge stacks detect`) -------------
# A problem is "{file}: {problem}"; each problem below names what is wrong in that file.
DETECT_PROBLEM = "{file}: {problem}"
DETECT_NOT_UTF8 = "not UTF-8 text: not read"
DETECT_NOT_JSON = "not valid JSON: {error}"
DETECT_NOT_TOML = "not valid TOML: {error}"
DETECT_NOT_YAML = "not valid YAML: {error}"
DETECT_NOT_INI = "not a valid setup.cfg: {error}"
DETECT_TOO_DEEP = "nested too deeply to read"
DETECT_YAML_KEY = "a list or a mapping is used as a mapping key"
DETECT_NOT_OBJECT = "must be a JSON object, not {kind}"
DETECT_NOT_MAPPING = "must be a YAML mapping, not {kind}"
DETECT_FIELD_KIND = "{field} must be a table of names, not {kind}: not read"
DETECT_FIELD_NOT_TEXT = "{field} must be text, not {kind}: not read"
DETECT_TOO_LARGE = "larger than {limit} bytes: not read"
DETECT_TOO_MANY = "more than {limit} manifest files in the checkout: this one and the rest were not read"
DETECT_UNREADABLE = "cannot be read ({error})"
DETECT_NOT_A_MANIFEST = "not a file ctforge reads stacks from: not read"
# The command line.
DETECT_PATH_MISSING = "{path} does not exist: give the directory of a project's checkout"
DETECT_PATH_NOT_DIR = "{path} is not a directory: give the directory of a project's checkout"
DETECT_NOTHING = "no stacks detected in {path}: none of the files ctforge reads names one"
REBUILD_HAS_WORKSPACES = (
    "template {name!r} cannot be rebuilt: workspaces are made from its CT ({workspaces}), which Proxmox "
    "keeps while their linked clones use it; destroy them first"
)
WORKSPACE_TEMPLATE_GONE = (
    "the workspace's template {name!r} has no CT any more: destroy this workspace and make a new one"
)
