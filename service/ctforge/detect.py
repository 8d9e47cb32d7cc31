"""Reading a project's stacks from its own files: which catalog stacks a checkout needs, and why.

    checkout = read_project(Path("~/src/shop").expanduser())    # the manifest files, bounded
    detection = detect_stacks(checkout.files, load_catalog())   # pure: bytes in, findings out
    detection.stack_ids()                                        # ['nodejs', 'claude_cli', 'postgresql']

`MANIFESTS` is the one table of the files read and what each says. A signal names a stack; one the
given catalog has becomes evidence for it, any other is listed as unknown, never mapped to a near
stack. A file that cannot be read is a problem naming it, and the other files are read all the same.
"""

from __future__ import annotations

import configparser
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict

from ctforge import messages
from ctforge.catalog import Catalog
from ctforge.yamlfile import _StrictLoader  # the project's strict loader, here over text, not a path

MAX_FILE_BYTES = 512 * 1024
MAX_DEPTH = 3  # directories below the checkout's top: packages/web/app/package.json is the deepest
MAX_FILES = 200
SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "bower_components", ".yarn", ".pnpm-store", ".venv", "venv",
     "__pycache__", "site-packages", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
     ".direnv", "vendor", "third_party", ".terraform", ".next", ".nuxt", ".cache"}
)  # fmt: skip
SHOWN_CHARS = 120


# --- the result: also what the service returns for uploaded manifest files -----------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Evidence(_Model):
    """What in which file shows that the project needs a stack."""

    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


class UnknownSignal(_Model):
    """A signal of something the catalog has no stack for (`name`: a tool, a language, an image)."""

    name: str
    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


class Problem(_Model):
    """A file that could not be read, or a part of it that is not what its format says."""

    file: str
    problem: str

    def __str__(self) -> str:
        return messages.DETECT_PROBLEM.format(file=self.file, problem=self.problem)


class DetectedStack(_Model):
    """A catalog stack the project needs; `required_by` when another detected stack pulls it in."""

    id: str
    evidence: list[Evidence]
    required_by: list[str]


class Detection(_Model):
    """The stacks in install order (catalog.resolve), the unknown signals and the problems."""

    stacks: list[DetectedStack]
    unknown: list[UnknownSignal]
    problems: list[Problem]

    def stack_ids(self) -> list[str]:
        return [s.id for s in self.stacks]


# --- what a reader yields ------------------------------------------------------------------------


class Hit(NamedTuple):
    """A file's signal of `stack` (a catalog id, or the name of what the catalog may lack)."""

    stack: str
    what: str


class Flaw(NamedTuple):
    """A part of a readable file that is not what its format says; the rest of the file counts."""

    problem: str


class ManifestError(Exception):
    """The file as a whole cannot be read (not UTF-8, not JSON, ...): its signals are unknown."""


Reader = Callable[[bytes], Iterable[Hit | Flaw]]


@dataclass(frozen=True)
class Manifest:
    """A file name pattern (matched on the base name) and the reader of such files."""

    pattern: str
    read: Reader
    reads_content: bool = True  # False: the name alone is the signal, so size and content never matter


# --- reading formats: every failure is a ManifestError with a one-line reason --------------------


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(messages.DETECT_NOT_UTF8) from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(_text(data))
    except RecursionError:
        raise ManifestError(messages.DETECT_TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise ManifestError(messages.DETECT_NOT_JSON.format(error=_one_line(str(exc)))) from None


def _toml(data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(_text(data))
    except RecursionError:
        raise ManifestError(messages.DETECT_TOO_DEEP) from None
    except ValueError as exc:  # TOMLDecodeError, and ints past Python's digit limit
        raise ManifestError(messages.DETECT_NOT_TOML.format(error=_one_line(str(exc)))) from None


def _yaml(data: bytes) -> Any:
    try:
        return yaml.load(_text(data), Loader=_StrictLoader)  # a SafeLoader subclass
    except RecursionError:
        raise ManifestError(messages.DETECT_TOO_DEEP) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        error = f"{exc.problem or exc.context or 'unreadable'}{where}"  # without the file's lines
        raise ManifestError(messages.DETECT_NOT_YAML.format(error=_one_line(error))) from None
    except (yaml.YAMLError, ValueError) as exc:  # a key twice; ints past Python's digit limit
        raise ManifestError(messages.DETECT_NOT_YAML.format(error=_one_line(str(exc)))) from None
    except TypeError:  # the strict loader's duplicate check meets a list or a mapping as a key
        raise ManifestError(messages.DETECT_NOT_YAML.format(error=messages.DETECT_YAML_KEY)) from None


def _mapping(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], Flaw | None]:
    """The table at `dotted` (e.g. "tool.poetry"), empty when absent, with a Flaw when it is no table."""
    value: Any = doc
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return {}, None
    if not isinstance(value, dict):
        return {}, Flaw(messages.DETECT_FIELD_KIND.format(field=dotted, kind=type(value).__name__))
    return value, None


def _one_line(text: str) -> str:
    """Text from a file or a parser's message as one short line: each run of white space (newlines,
    U+2028, ...) one space, anything else unprintable escaped, at most SHOWN_CHARS long."""
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in " ".join(text.split()))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _shown(value: object) -> str:
    """A value from the file, quoted as JSON, on one short line."""
    try:
        return _one_line(json.dumps(value, ensure_ascii=False, default=str))
    except (RecursionError, ValueError):  # nested past the stack's depth; ints past the digit limit
        return "…"


def _name(value: object) -> str:
    """A name from the file (a key, a tool, an image), as written, on one short line."""
    return _one_line(str(value)) or '""'


# --- what names mean -----------------------------------------------------------------------------

# npm packages that are a stack of their own (installed globally, not with the project's modules).
# Client libraries (pg, redis, psycopg) are no signal: the server they talk to may be anywhere.
NPM_PACKAGES = {"@anthropic-ai/claude-code": "claude_cli"}
# Node's `engines`, `volta` and `packageManager` names; bun (a runtime of its own) stays unknown.
NODE_TOOLS = {"node": "nodejs", "npm": "nodejs", "yarn": "nodejs", "pnpm": "nodejs"}
# asdf plugins and mise tools.
VERSION_MANAGER_TOOLS = {
    "nodejs": "nodejs", "node": "nodejs", "python": "python",
    "postgres": "postgresql", "postgresql": "postgresql", "redis": "redis",
}  # fmt: skip
# Compose images by name (registry, namespace and tag off). Exact names: postgres-exporter or
# redis-commander are not the server.
COMPOSE_IMAGES = {
    "postgres": "postgresql", "postgresql": "postgresql", "postgis": "postgresql",
    "redis": "redis", "redis-stack": "redis", "redis-stack-server": "redis", "valkey": "redis",
}  # fmt: skip
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
NPM_DEPENDENCY_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies")


def image_name(image: str) -> str:
    """`docker.io/library/postgres:16@sha256:…` → `postgres`."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0].lower()


def tool_stack(tool: str) -> str:
    """The stack an asdf plugin or mise tool stands for; its own name when the table has none."""
    name = tool.removeprefix("core:")
    if name.startswith("npm:"):
        return NPM_PACKAGES.get(name.removeprefix("npm:"), name)
    return VERSION_MANAGER_TOOLS.get(name, name)


# --- readers -------------------------------------------------------------------------------------


def presence(pattern: str, stack: str, what: str) -> Manifest:
    """A file whose name alone is the signal."""
    return Manifest(pattern, lambda _data: [Hit(stack, what)], reads_content=False)


def _version_file(stack: str, kind: str) -> Reader:
    """.nvmrc, .python-version and the like: a version per line, `#` comments."""

    def read(data: bytes) -> Iterator[Hit]:
        versions = [line.split("#", 1)[0].strip() for line in _text(data).splitlines()]
        versions = [v for v in versions if v]
        for version in versions:
            yield Hit(stack, f"{kind} version {_shown(version)}")
        if not versions:
            yield Hit(stack, f"a {kind} version file naming no version")

    return read


def _package_json(data: bytes) -> Iterator[Hit | Flaw]:
    doc = _json(data)
    if not isinstance(doc, dict):
        raise ManifestError(messages.DETECT_NOT_OBJECT.format(kind=type(doc).__name__))
    yield Hit("nodejs", "an npm package")
    for section in ("engines", "volta"):
        tools, flaw = _mapping(doc, section)
        if flaw:
            yield flaw
        for tool, version in tools.items():
            yield Hit(NODE_TOOLS.get(tool, tool), f"{section}.{_name(tool)} {_shown(version)}")
    manager = doc.get("packageManager")
    if isinstance(manager, str):
        tool = manager.split("@", 1)[0]
        yield Hit(NODE_TOOLS.get(tool, tool), f"packageManager {_shown(manager)}")
    for section in NPM_DEPENDENCY_SECTIONS:
        packages, flaw = _mapping(doc, section)
        if flaw:
            yield flaw
        for package, version in packages.items():
            if package in NPM_PACKAGES:
                yield Hit(NPM_PACKAGES[package], f"{section} {_shown(package)} {_shown(version)}")


def _pyproject(data: bytes) -> Iterator[Hit | Flaw]:
    doc = _toml(data)
    yield Hit("python", "a Python project")
    project, flaw = _mapping(doc, "project")
    if flaw:
        yield flaw
    if "requires-python" in project:
        yield Hit("python", f"project.requires-python {_shown(project['requires-python'])}")
    poetry, flaw = _mapping(doc, "tool.poetry.dependencies")
    if flaw:
        yield flaw
    if "python" in poetry:
        yield Hit("python", f"tool.poetry.dependencies.python {_shown(poetry['python'])}")


def _is_requirement(line: str) -> bool:
    """A line of a pip requirements file that names a package: not a comment, not an option (-r, -c,
    --index-url, ...) other than an editable install."""
    line = line.split(" #", 1)[0].strip()
    return bool(line) and (not line.startswith(("#", "-")) or line.startswith(("-e", "--editable")))


def _requirements(data: bytes) -> Iterator[Hit]:
    count = sum(1 for line in _text(data).splitlines() if _is_requirement(line))
    yield Hit("python", f"pip requirements ({count} packages)")


def _setup_cfg(data: bytes) -> Iterator[Hit]:
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read_string(_text(data))
    except configparser.Error as exc:
        raise ManifestError(messages.DETECT_NOT_INI.format(error=_one_line(str(exc)))) from None
    yield Hit("python", "a setuptools configuration")
    if config.has_option("options", "python_requires"):
        yield Hit("python", f"options.python_requires {_shown(config.get('options', 'python_requires'))}")


def _pipfile(data: bytes) -> Iterator[Hit | Flaw]:
    doc = _toml(data)
    yield Hit("python", "a Pipenv Pipfile")
    requires, flaw = _mapping(doc, "requires")
    if flaw:
        yield flaw
    for key in ("python_version", "python_full_version"):
        if key in requires:
            yield Hit("python", f"requires.{key} {_shown(requires[key])}")


def _compose(data: bytes) -> Iterator[Hit | Flaw]:
    doc = _yaml(data)
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ManifestError(messages.DETECT_NOT_MAPPING.format(kind=type(doc).__name__))
    services, flaw = _mapping(doc, "services")
    if flaw:
        yield flaw
    for name, service in services.items():
        if not isinstance(service, dict):
            field = f"services.{_name(name)}"
            yield Flaw(messages.DETECT_FIELD_KIND.format(field=field, kind=type(service).__name__))
            continue
        image = service.get("image")
        if image is None:
            continue  # built from the project's own Dockerfile: the project itself, not a stack it needs
        if not isinstance(image, str):
            field = f"services.{_name(name)}.image"
            yield Flaw(messages.DETECT_FIELD_NOT_TEXT.format(field=field, kind=type(image).__name__))
            continue
        stack = COMPOSE_IMAGES.get(image_name(image), image_name(image) or image)
        yield Hit(stack, f"service {_name(name)} (image {_name(image)})")


def _tool_versions(data: bytes) -> Iterator[Hit]:
    for line in _text(data).splitlines():
        tool, *versions = line.split("#", 1)[0].split() or [""]
        if tool:
            yield Hit(tool_stack(tool), f"{_name(tool)} {_shown(' '.join(versions))}")


def _mise(data: bytes) -> Iterator[Hit | Flaw]:
    tools, flaw = _mapping(_toml(data), "tools")
    if flaw:
        yield flaw
    for tool, spec in tools.items():
        version = spec.get("version", spec) if isinstance(spec, dict) else spec
        yield Hit(tool_stack(tool), f"tools.{_name(tool)} {_shown(version)}")


# The one table of the files read, in the order they are tried (the first pattern that matches wins).
MANIFESTS: tuple[Manifest, ...] = (
    # Node.js and the npm packages that are stacks
    Manifest("package.json", _package_json),
    presence("package-lock.json", "nodejs", "an npm lock file"),
    presence("npm-shrinkwrap.json", "nodejs", "an npm lock file"),
    presence("yarn.lock", "nodejs", "a Yarn lock file"),
    presence("pnpm-lock.yaml", "nodejs", "a pnpm lock file"),
    Manifest(".nvmrc", _version_file("nodejs", "Node.js")),
    Manifest(".node-version", _version_file("nodejs", "Node.js")),
    # Python
    Manifest("pyproject.toml", _pyproject),
    Manifest("requirements*.txt", _requirements),
    presence("setup.py", "python", "a setuptools setup script"),
    Manifest("setup.cfg", _setup_cfg),
    Manifest("Pipfile", _pipfile),
    presence("Pipfile.lock", "python", "a Pipenv lock file"),
    presence("poetry.lock", "python", "a Poetry lock file"),
    presence("uv.lock", "python", "a uv lock file"),
    Manifest(".python-version", _version_file("python", "Python")),
    # Services a project runs beside it, and version managers' tool lists
    *(Manifest(name, _compose) for name in COMPOSE_FILES),
    Manifest(".tool-versions", _tool_versions),
    Manifest("mise.toml", _mise),
    Manifest(".mise.toml", _mise),
    # The toolbox
    presence("Makefile", "devtools", "a Makefile (make)"),
    presence("GNUmakefile", "devtools", "a Makefile (make)"),
    # Languages and runtimes the catalog may lack: listed as they are, never mapped to a near stack
    presence("bun.lockb", "bun", "a Bun lock file"),
    presence("bun.lock", "bun", "a Bun lock file"),
    presence("deno.json", "deno", "a Deno configuration"),
    presence("deno.jsonc", "deno", "a Deno configuration"),
    presence("go.mod", "go", "a Go module"),
    presence("Gemfile", "ruby", "a Bundler Gemfile"),
    presence("Gemfile.lock", "ruby", "a Bundler lock file"),
    Manifest(".ruby-version", _version_file("ruby", "Ruby")),
    presence("Cargo.toml", "rust", "a Cargo manifest"),
    presence("composer.json", "php", "a Composer manifest"),
    presence("pom.xml", "java", "a Maven project"),
    presence("build.gradle", "java", "a Gradle build"),
    presence("build.gradle.kts", "java", "a Gradle build"),
    presence("mix.exs", "elixir", "a Mix project"),
)


def manifest_for(path: str) -> Manifest | None:
    """The table's entry for a file at `path` (relative, `/`-separated), or None when it is not read."""
    name = PurePosixPath(path).name
    return next((m for m in MANIFESTS if fnmatchcase(name, m.pattern)), None)


# --- detection -----------------------------------------------------------------------------------


def _hits(path: str, data: bytes) -> tuple[list[Hit], list[Problem]]:
    manifest = manifest_for(path)
    if manifest is None:
        return [], [Problem(file=path, problem=messages.DETECT_NOT_A_MANIFEST)]
    if manifest.reads_content and len(data) > MAX_FILE_BYTES:
        return [], [Problem(file=path, problem=messages.DETECT_TOO_LARGE.format(limit=MAX_FILE_BYTES))]
    hits: list[Hit] = []
    problems: list[Problem] = []
    try:
        for found in manifest.read(data):
            if isinstance(found, Flaw):
                problems.append(Problem(file=path, problem=found.problem))
            else:
                hits.append(found)
    except ManifestError as exc:
        return [], [Problem(file=path, problem=str(exc))]
    return hits, problems


def detect_stacks(
    files: Mapping[str, bytes], catalog: Catalog, problems: Iterable[Problem] = ()
) -> Detection:
    """The stacks `files` (relative path → content) call for, in install order, with their evidence;
    the signals `catalog` has no stack for; and `problems` followed by each file's own. Never raises
    over a file's content."""
    evidence: dict[str, list[Evidence]] = {}
    unknown: list[UnknownSignal] = []
    found_problems = list(problems)
    for path in sorted(files):
        hits, file_problems = _hits(path, files[path])
        found_problems += file_problems
        for hit in hits:
            if hit.stack in catalog:
                evidence.setdefault(hit.stack, []).append(Evidence(file=path, what=hit.what))
            else:
                unknown.append(UnknownSignal(name=_name(hit.stack), file=path, what=hit.what))
    order = catalog.resolve(sorted(evidence))
    stacks = [
        DetectedStack(
            id=stack_id,
            evidence=evidence.get(stack_id, []),
            required_by=[s for s in order if stack_id in catalog.get(s).requires],
        )
        for stack_id in order
    ]
    return Detection(stacks=stacks, unknown=unknown, problems=found_problems)


# --- a checkout on disk --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """The manifest files of a checkout (relative path → at most MAX_FILE_BYTES + 1 bytes, so an
    oversized one is still seen as such) and what could not be read of it."""

    files: dict[str, bytes]
    problems: tuple[Problem, ...]


def _is_skipped(directory: Path) -> bool:
    return directory.name in SKIPPED_DIRS or (directory / "pyvenv.cfg").is_file()  # a venv by any name


def read_project(root: Path) -> Checkout:
    """The files of the checkout at `root` that MANIFESTS reads: no symlinks, nothing in vendored or
    installed trees (SKIPPED_DIRS, virtualenvs), at most MAX_DEPTH directories down, MAX_FILES in all."""
    files: dict[str, bytes] = {}
    problems: list[Problem] = []

    def unreadable(path: Path, exc: OSError) -> None:
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        problem = messages.DETECT_UNREADABLE.format(error=exc.strerror or exc)
        problems.append(Problem(file=relative or ".", problem=problem))

    def on_walk_error(exc: OSError) -> None:
        unreadable(Path(exc.filename or root), exc)

    for top, dirs, names in os.walk(root, onerror=on_walk_error):
        here = Path(top)
        depth = len(here.relative_to(root).parts)
        dirs[:] = [] if depth >= MAX_DEPTH else sorted(d for d in dirs if not _is_skipped(here / d))
        for name in sorted(names):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if manifest_for(relative) is None or path.is_symlink():
                continue
            if len(files) == MAX_FILES:
                problem = messages.DETECT_TOO_MANY.format(limit=MAX_FILES)
                problems.append(Problem(file=relative, problem=problem))
                return Checkout(files, tuple(problems))
            try:
                with path.open("rb") as handle:
                    files[relative] = handle.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                unreadable(path, exc)
    return Checkout(files, tuple(problems))
