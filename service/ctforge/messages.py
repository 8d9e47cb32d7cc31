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
