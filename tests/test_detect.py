"""Reading a project's stacks from its files (ctforge.detect) and `ctforge stacks detect PATH`.

The checkouts are real files under tmp_path; the property tests feed detect_stacks the bytes an
upload could carry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from catalog_helpers import write_stack
from ctforge import detect, messages
from ctforge.catalog import Catalog, load_catalog
from ctforge.cli import EXIT_ERROR, app
from ctforge.detect import MANIFESTS, Detection, detect_stacks, image_name, read_project

CATALOG = load_catalog()
runner = CliRunner()


def checkout(root: Path, files: dict[str, str | bytes]) -> Path:
    """A checkout at `root` holding `files` (relative path → text or bytes)."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def detect_in(root: Path, catalog: Catalog = CATALOG) -> Detection:
    project = read_project(root)
    return detect_stacks(project.files, catalog, project.problems)


def evidence(detection: Detection) -> dict[str, list[str]]:
    return {s.id: [str(e) for e in s.evidence] for s in detection.stacks}


def unknown(detection: Detection) -> list[tuple[str, str]]:
    return [(u.name, str(u)) for u in detection.unknown]


def problems(detection: Detection) -> list[str]:
    return [str(p) for p in detection.problems]


def made_from(text: str, template: str) -> bool:
    """Whether `text` is `template` filled in (its fixed start, for a parser's error at its end)."""
    return text.startswith(template.split("{", 1)[0]) and len(text) > len(template.split("{", 1)[0])


NODE_POSTGRES_PROJECT = {
    "package.json": json.dumps(
        {
            "name": "shop",
            "engines": {"node": ">=20"},
            "dependencies": {"pg": "^8.11", "redis": "^4"},
            "devDependencies": {"@anthropic-ai/claude-code": "^1.0.0"},
        }
    ),
    "package-lock.json": "{}",
    ".nvmrc": "20\n",
    "docker-compose.yml": (
        "services:\n"
        "  app:\n    build: .\n"
        "  db:\n    image: postgres:16-alpine\n"
        "  cache:\n    image: docker.io/library/redis:7\n"
    ),
}


def test_a_node_and_postgres_project_with_a_compose_file(tmp_path: Path) -> None:
    found = detect_in(checkout(tmp_path, NODE_POSTGRES_PROJECT))
    assert found.stack_ids() == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert evidence(found) == {
        "nodejs": [
            '.nvmrc: Node.js version "20"',
            "package-lock.json: an npm lock file",
            "package.json: an npm package",
            'package.json: engines.node ">=20"',
        ],
        "claude_cli": ['package.json: devDependencies "@anthropic-ai/claude-code" "^1.0.0"'],
        "postgresql": ["docker-compose.yml: service db (image postgres:16-alpine)"],
        "redis": ["docker-compose.yml: service cache (image docker.io/library/redis:7)"],
    }
    assert found.stacks[0].required_by == ["claude_cli"]
    # The client libraries pg and redis say nothing (the server may be anywhere), nor does the
    # service built from the project's own Dockerfile.
    assert (found.unknown, found.problems) == ([], [])


def test_a_python_project_with_pyproject_and_uv_lock(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "api"\nrequires-python = ">=3.11"\n',
            "uv.lock": "version = 1\n",
            ".python-version": "3.12\n",
            "requirements-dev.txt": "-r requirements.txt\n# tools\npytest>=8  # tests\n-e .\nruff\n",
        },
    )
    found = detect_in(root)
    assert evidence(found) == {
        "python": [
            '.python-version: Python version "3.12"',
            "pyproject.toml: a Python project",
            'pyproject.toml: project.requires-python ">=3.11"',
            "requirements-dev.txt: pip requirements (3 packages)",
            "uv.lock: a uv lock file",
        ]
    }
    assert (found.unknown, found.problems) == ([], [])


def test_pipenv_poetry_and_setuptools_files_give_python_away(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "a/Pipfile": '[packages]\nflask = "*"\n\n[requires]\npython_version = "3.11"\n',
            "a/Pipfile.lock": "{}",
            "b/pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\n',
            "b/poetry.lock": "",
            "c/setup.cfg": "[metadata]\nname = x\n\n[options]\npython_requires = >=3.8\n",
            "c/setup.py": "from setuptools import setup\nsetup()\n",
        },
    )
    assert evidence(detect_in(root)) == {
        "python": [
            "a/Pipfile: a Pipenv Pipfile",
            'a/Pipfile: requires.python_version "3.11"',
            "a/Pipfile.lock: a Pipenv lock file",
            "b/poetry.lock: a Poetry lock file",
            "b/pyproject.toml: a Python project",
            'b/pyproject.toml: tool.poetry.dependencies.python "^3.10"',
            "c/setup.cfg: a setuptools configuration",
            'c/setup.cfg: options.python_requires ">=3.8"',
            "c/setup.py: a setuptools setup script",
        ]
    }


def test_a_polyglot_repo_lists_go_and_ruby_as_unknown(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "go.mod": "module example.com/svc\n\ngo 1.22\n",
            "Gemfile": 'source "https://rubygems.org"\n',
            ".tool-versions": "# asdf\nruby 3.3.0\nnodejs 22.1.0 20.11.0\n",
            "mise.toml": (
                '[tools]\ngo = "1.22"\npython = ["3.12", "3.11"]\n'
                '"npm:@anthropic-ai/claude-code" = "latest"\nterraform = { version = "1.8" }\n'
            ),
            "compose.yaml": (
                "services:\n  db:\n    image: mysql:8\n"
                "  metrics:\n    image: prometheuscommunity/postgres-exporter\n"
            ),
        },
    )
    found = detect_in(root)
    assert evidence(found) == {
        "nodejs": ['.tool-versions: nodejs "22.1.0 20.11.0"'],
        "claude_cli": ['mise.toml: tools.npm:@anthropic-ai/claude-code "latest"'],
        "python": ['mise.toml: tools.python ["3.12", "3.11"]'],
    }
    assert unknown(found) == [
        ("ruby", '.tool-versions: ruby "3.3.0"'),
        ("ruby", "Gemfile: a Bundler Gemfile"),
        ("mysql", "compose.yaml: service db (image mysql:8)"),
        # Only exact server images count: an exporter of PostgreSQL metrics is not PostgreSQL.
        ("postgres-exporter", "compose.yaml: service metrics (image prometheuscommunity/postgres-exporter)"),
        ("go", "go.mod: a Go module"),
        ("go", 'mise.toml: tools.go "1.22"'),
        ("terraform", 'mise.toml: tools.terraform "1.8"'),
    ]


def test_package_managers_other_than_node_are_unknown(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "web/package.json": '{"packageManager": "pnpm@9.1.0", "volta": {"node": "20.11.0"}}',
            "web/pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
            "edge/package.json": '{"packageManager": "bun@1.1.0", "engines": {"vscode": "^1.80"}}',
            "edge/bun.lockb": b"\x00\x01binary",
        },
    )
    found = detect_in(root)
    assert evidence(found)["nodejs"] == [
        "edge/package.json: an npm package",
        "web/package.json: an npm package",
        'web/package.json: volta.node "20.11.0"',
        'web/package.json: packageManager "pnpm@9.1.0"',
        "web/pnpm-lock.yaml: a pnpm lock file",
    ]
    assert unknown(found) == [
        ("bun", "edge/bun.lockb: a Bun lock file"),
        ("vscode", 'edge/package.json: engines.vscode "^1.80"'),
        ("bun", 'edge/package.json: packageManager "bun@1.1.0"'),
    ]


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("postgres", "postgres"),
        ("postgis/postgis:16-3.4", "postgis"),
        ("bitnami/postgresql:16@sha256:0123abcd", "postgresql"),
        ("localhost:5000/team/redis:7.2", "redis"),
        ("valkey/valkey:8-alpine", "valkey"),
        ("ghcr.io/acme/api:latest", "api"),
    ],
)
def test_image_name_drops_registry_namespace_tag_and_digest(image: str, name: str) -> None:
    assert image_name(image) == name


# --- malformed files ------------------------------------------------------------------------------


def test_malformed_files_are_problems_naming_the_file_and_the_rest_is_read(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "package.json": '{"engines": {"node": ">=20"},}',
            "pyproject.toml": "[project\n",
            "docker-compose.yml": "services:\n  db:\n    image: [postgres\n",
            "setup.cfg": "no section header\n",
            "requirements.txt": b"flask\n\xff\xfe\n",
            "mise.toml": '[tools]\nnode = "22"\nnode = "20"\n',
            "compose.yaml": "services:\n  db: {image: postgres}\n  db: {image: mysql}\n",
            "Gemfile": "",
            ".nvmrc": "22\n",
        },
    )
    found = detect_in(root)
    assert evidence(found) == {"nodejs": ['.nvmrc: Node.js version "22"']}
    assert unknown(found) == [("ruby", "Gemfile: a Bundler Gemfile")]
    by_file = {p.file: p.problem for p in found.problems}
    assert sorted(by_file) == [
        "compose.yaml",
        "docker-compose.yml",
        "mise.toml",
        "package.json",
        "pyproject.toml",
        "requirements.txt",
        "setup.cfg",
    ]
    assert made_from(by_file["package.json"], messages.DETECT_NOT_JSON)
    assert made_from(by_file["pyproject.toml"], messages.DETECT_NOT_TOML)
    assert made_from(by_file["mise.toml"], messages.DETECT_NOT_TOML)
    assert made_from(by_file["docker-compose.yml"], messages.DETECT_NOT_YAML)
    assert by_file["docker-compose.yml"].endswith("(line 4, column 1)")  # where the list was to end
    # A key twice is an error in compose too, not a silent choice of the last one.
    assert by_file["compose.yaml"] == messages.DETECT_NOT_YAML.format(
        error=messages.STACK_FILE_DUPLICATE_KEY.format(key="db", line=3)
    )
    assert made_from(by_file["setup.cfg"], messages.DETECT_NOT_INI)
    assert by_file["requirements.txt"] == messages.DETECT_NOT_UTF8
    for problem in problems(found):
        assert len(problem.splitlines()) == 1 and "Traceback" not in problem


def test_a_part_of_the_wrong_kind_is_a_problem_and_the_rest_of_the_file_counts(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "package.json": '{"engines": ["node"], "devDependencies": {"@anthropic-ai/claude-code": "1"}}',
            "docker-compose.yml": (
                "services:\n  web: nginx\n  db:\n    image: 16\n  cache:\n    image: redis\n"
            ),
            "pyproject.toml": 'project = "api"\n',
        },
    )
    found = detect_in(root)
    assert found.stack_ids() == ["nodejs", "claude_cli", "python", "redis"]
    assert problems(found) == [
        messages.DETECT_PROBLEM.format(file=file, problem=problem)
        for file, problem in [
            ("docker-compose.yml", messages.DETECT_FIELD_KIND.format(field="services.web", kind="str")),
            (
                "docker-compose.yml",
                messages.DETECT_FIELD_NOT_TEXT.format(field="services.db.image", kind="int"),
            ),
            ("package.json", messages.DETECT_FIELD_KIND.format(field="engines", kind="list")),
            ("pyproject.toml", messages.DETECT_FIELD_KIND.format(field="project", kind="str")),
        ]
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("package.json", "[1, 2]", messages.DETECT_NOT_OBJECT.format(kind="list")),
        ("package.json", "[" * 100_000, messages.DETECT_TOO_DEEP),
        ("mise.toml", "a = " + "[" * 100_000, messages.DETECT_TOO_DEEP),
        ("compose.yaml", "[" * 100_000, messages.DETECT_TOO_DEEP),
        ("compose.yaml", "- services\n", messages.DETECT_NOT_MAPPING.format(kind="list")),
        (
            "compose.yaml",
            "services:\n  ? [a, b]\n  : {image: redis}\n",
            messages.DETECT_NOT_YAML.format(error=messages.DETECT_YAML_KEY),
        ),
        # past Python's digit limit for ints: a ValueError of its own, not the parser's
        ("package.json", '{"engines": {"node": ' + "1" * 5000 + "}}", messages.DETECT_NOT_JSON),
        ("pyproject.toml", "a = " + "1" * 5000, messages.DETECT_NOT_TOML),
        ("compose.yaml", "a: " + "1" * 5000, messages.DETECT_NOT_YAML),
    ],
    ids=lambda value: value[:20] if isinstance(value, str) else None,
)
def test_a_file_that_cannot_be_read_whole_is_one_problem(name: str, content: str, problem: str) -> None:
    found = detect_stacks({name: content.encode()}, CATALOG)
    assert found.stacks == [] and len(found.problems) == 1
    text = found.problems[0].problem
    assert made_from(text, problem) if "{" in problem else text == problem


def test_compose_tags_read_as_their_plain_value() -> None:
    compose = b"services: !override\n  cache:\n    image: valkey/valkey:8\n    ports: !reset []\n"
    found = detect_stacks({"compose.yaml": compose}, CATALOG)
    assert evidence(found) == {"redis": ["compose.yaml: service cache (image valkey/valkey:8)"]}


def test_an_oversized_file_is_a_problem_but_a_lock_file_is_known_by_its_name(tmp_path: Path) -> None:
    big = b" " * detect.MAX_FILE_BYTES
    root = checkout(tmp_path, {"package.json": b"{}" + big, "yarn.lock": b"# yarn\n" + big})
    project = read_project(root)
    assert {len(data) for data in project.files.values()} == {detect.MAX_FILE_BYTES + 1}
    found = detect_stacks(project.files, CATALOG)
    assert evidence(found) == {"nodejs": ["yarn.lock: a Yarn lock file"]}
    assert problems(found) == [
        messages.DETECT_PROBLEM.format(
            file="package.json", problem=messages.DETECT_TOO_LARGE.format(limit=detect.MAX_FILE_BYTES)
        )
    ]


# --- reading a checkout ---------------------------------------------------------------------------


def test_installed_and_vendored_trees_are_skipped(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {
            "package.json": "{}",
            "node_modules/@anthropic-ai/claude-code/package.json": "{}",
            "node_modules/pg/docker-compose.yml": "services: {db: {image: postgres}}\n",
            ".venv/lib/python3.11/site-packages/x/pyproject.toml": "",
            "env311/pyvenv.cfg": "home = /usr/bin\n",
            "env311/lib/Pipfile": "",
            "vendor/github.com/x/go.mod": "module x\n",
            ".git/hooks/Makefile": "",
        },
    )
    assert sorted(read_project(root).files) == ["package.json"]


def test_the_walk_stops_at_the_depth_limit_and_passes_symlinks_by(tmp_path: Path) -> None:
    outside = checkout(tmp_path / "outside", {"go.mod": "module x\n", "deep/Gemfile": ""})
    root = checkout(
        tmp_path / "repo", {"a/b/c/package.json": "{}", "a/b/c/d/pyproject.toml": "", "README.md": ""}
    )
    (root / "go.mod").symlink_to(outside / "go.mod")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    assert detect.MAX_DEPTH == 3
    assert sorted(read_project(root).files) == ["a/b/c/package.json"]


def test_the_walk_reads_at_most_max_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "MAX_FILES", 2)
    root = checkout(tmp_path, {"a/go.mod": "", "b/go.mod": "", "c/go.mod": "", "d/go.mod": ""})
    project = read_project(root)
    assert sorted(project.files) == ["a/go.mod", "b/go.mod"]
    assert [str(p) for p in project.problems] == [
        messages.DETECT_PROBLEM.format(file="c/go.mod", problem=messages.DETECT_TOO_MANY.format(limit=2))
    ]


# --- the catalog decides what is known, and the order -------------------------------------------


def test_a_stack_the_catalog_lacks_is_unknown(tmp_path: Path) -> None:
    catalog_dir = tmp_path / "stacks"
    write_stack(catalog_dir, "nodejs")
    write_stack(catalog_dir, "postgresql")
    root = checkout(tmp_path / "repo", NODE_POSTGRES_PROJECT)
    found = detect_in(root, load_catalog(catalog_dir))
    assert found.stack_ids() == ["nodejs", "postgresql"]
    assert unknown(found) == [
        ("redis", "docker-compose.yml: service cache (image docker.io/library/redis:7)"),
        ("claude_cli", 'package.json: devDependencies "@anthropic-ai/claude-code" "^1.0.0"'),
    ]


def test_stacks_come_in_install_order_with_requirements_pulled_in(tmp_path: Path) -> None:
    # claude_cli alone (from mise) needs nodejs, which no file names: it comes first, without evidence.
    root = checkout(
        tmp_path, {"a/.mise.toml": '[tools]\n"npm:@anthropic-ai/claude-code" = "1"\n', "b/Makefile": "all:\n"}
    )
    found = detect_in(root)
    assert found.stack_ids() == ["nodejs", "claude_cli", "devtools"]
    assert found.stack_ids() == CATALOG.resolve(found.stack_ids())
    nodejs = found.stacks[0]
    assert (nodejs.evidence, nodejs.required_by) == ([], ["claude_cli"])


def test_uploaded_files_are_read_by_their_relative_path(tmp_path: Path) -> None:
    found = detect_stacks(
        {"api/.python-version": b"3.12\n", "api/Dockerfile": b"FROM python:3.12\n"}, CATALOG
    )
    assert evidence(found) == {"python": ['api/.python-version: Python version "3.12"']}
    assert problems(found) == [
        messages.DETECT_PROBLEM.format(file="api/Dockerfile", problem=messages.DETECT_NOT_A_MANIFEST)
    ]


# --- properties: any bytes an upload could carry --------------------------------------------------

# One concrete file name for each pattern of the table (requirements*.txt → requirements-dev.txt).
MANIFEST_NAMES = [m.pattern.replace("*", "-dev") for m in MANIFESTS]


def assert_well_formed(found: Detection, catalog: Catalog = CATALOG) -> None:
    assert found.stack_ids() == catalog.resolve(found.stack_ids())
    assert not [u for u in found.unknown if u.name in catalog]
    texts = [str(x) for x in [*found.unknown, *found.problems]]
    texts += [str(e) for s in found.stacks for e in s.evidence]
    for text in texts:
        assert len(text.splitlines()) == 1, text
        assert len(text) < 400, text


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(MANIFEST_NAMES), data=st.binary(max_size=300))
def test_any_bytes_in_any_manifest_never_raise(name: str, data: bytes) -> None:
    assert_well_formed(detect_stacks({f"sub/{name}": data}, CATALOG))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
PACKAGE_KEYS = st.sampled_from(["engines", "volta", "packageManager", *detect.NPM_DEPENDENCY_SECTIONS])


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(PACKAGE_KEYS | st.text(), JSON_VALUES, max_size=6))
def test_any_json_object_as_package_json_never_raises(doc: dict[str, object]) -> None:
    found = detect_stacks({"package.json": json.dumps(doc).encode()}, CATALOG)
    assert_well_formed(found)
    assert "nodejs" in found.stack_ids()


LINES = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=30), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from([".tool-versions", "docker-compose.yml", "mise.toml", "requirements.txt"]),
    lines=LINES,
)
def test_any_text_in_line_and_yaml_formats_never_raises(name: str, lines: list[str]) -> None:
    assert_well_formed(detect_stacks({name: "\n".join(lines).encode()}, CATALOG))


@settings(max_examples=50, deadline=None)
@given(order=st.permutations(sorted(NODE_POSTGRES_PROJECT)))
def test_the_order_of_the_files_does_not_change_the_result(order: list[str]) -> None:
    files = {name: NODE_POSTGRES_PROJECT[name].encode() for name in order}
    reference = {name: NODE_POSTGRES_PROJECT[name].encode() for name in sorted(NODE_POSTGRES_PROJECT)}
    assert detect_stacks(files, CATALOG) == detect_stacks(reference, CATALOG)


# --- the command line ---------------------------------------------------------------------------


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_detect_prints_the_stacks_with_their_evidence_then_unknown_and_problems(tmp_path: Path) -> None:
    root = checkout(tmp_path, {**NODE_POSTGRES_PROJECT, "go.mod": "module x\n", "Pipfile": "[x\n"})
    code, out, err = run("stacks", "detect", root)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "4 stacks, in install order:"
    rows = [line.split("│")[1:3] for line in lines if line.startswith("│")]
    ids = [cells[0].strip() for cells in rows if cells[0].strip()]
    assert ids[:4] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert "docker-compose.yml: service db (image postgres:16-alpine)" in out
    assert "1 signal of what the catalog has no stack for:" in lines
    assert "go.mod: a Go module" in out
    assert "1 file problem:" in lines and messages.DETECT_NOT_TOML.split("{", 1)[0] in out


def test_detect_json_is_for_scripts(tmp_path: Path) -> None:
    root = checkout(tmp_path, {**NODE_POSTGRES_PROJECT, "go.mod": "module x\n", "Pipfile": "[x\n"})
    code, out, _ = run("stacks", "detect", root, "--json")
    assert code == 0
    doc = json.loads(out)
    assert sorted(doc) == ["problems", "stacks", "unknown"]
    assert [s["id"] for s in doc["stacks"]] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert doc["stacks"][2] == {
        "id": "postgresql",
        "evidence": [{"file": "docker-compose.yml", "what": "service db (image postgres:16-alpine)"}],
        "required_by": [],
    }
    assert doc["unknown"] == [{"name": "go", "file": "go.mod", "what": "a Go module"}]
    assert [p["file"] for p in doc["problems"]] == ["Pipfile"]


def test_detect_in_a_checkout_without_signals_says_so(tmp_path: Path) -> None:
    code, out, _ = run("stacks", "detect", checkout(tmp_path, {"README.md": "hello\n"}))
    assert code == 0
    assert " ".join(out.split()) == messages.DETECT_NOTHING.format(path=tmp_path)


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("nowhere", messages.DETECT_PATH_MISSING),
        ("file.txt", messages.DETECT_PATH_NOT_DIR),
    ],
)
def test_detect_of_a_path_that_is_no_directory_is_a_one_line_error(
    tmp_path: Path, relative: str, message: str
) -> None:
    (tmp_path / "file.txt").write_text("")
    code, out, err = run("stacks", "detect", tmp_path / relative)
    assert (code, out) == (EXIT_ERROR, "")
    assert err == messages.CLI_ERROR.format(message=message.format(path=tmp_path / relative)) + "\n"
