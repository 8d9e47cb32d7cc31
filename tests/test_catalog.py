"""The stack catalog: loading and validating stacks/<id>.yml, resolving and accumulating stack lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_helpers import stack, write_role, write_stack
from ctforge import messages
from ctforge.catalog import (
    Catalog,
    CatalogError,
    MissingRoleError,
    StackCycleError,
    StackFileError,
    UnknownStackError,
    load_catalog,
)

REQUIRED_STACKS = {"nodejs", "python", "postgresql", "redis", "claude_cli", "devtools"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- the real catalog ---------------------------------------------------------------------------


def test_real_catalog_has_the_required_stacks(catalog: Catalog) -> None:
    assert set(catalog.ids()) >= REQUIRED_STACKS
    assert catalog.get("claude_cli").requires == ["nodejs"]


def test_every_entry_is_installed_by_the_role_of_its_name(catalog: Catalog) -> None:
    for entry in catalog:
        assert entry.role == entry.id
        assert entry.verify.strip()


def test_effective_accumulates_along_the_canonical_chain(catalog: Catalog) -> None:
    base = catalog.effective([], [])
    parent = catalog.effective(base, ["nodejs", "claude_cli"])
    child = catalog.effective(parent, ["postgresql", "redis"])
    assert base == []
    assert parent == ["nodejs", "claude_cli"]
    assert child == ["nodejs", "claude_cli", "postgresql", "redis"]


def test_a_child_relisting_an_inherited_stack_gets_it_once(catalog: Catalog) -> None:
    assert catalog.effective(["nodejs", "claude_cli"], ["nodejs", "redis", "claude_cli"]) == [
        "nodejs",
        "claude_cli",
        "redis",
    ]


def test_resolve_puts_requirements_first(catalog: Catalog) -> None:
    assert catalog.resolve(["claude_cli"]) == ["nodejs", "claude_cli"]
    assert catalog.resolve(["redis", "claude_cli"]) == ["redis", "nodejs", "claude_cli"]


def test_resolve_keeps_the_callers_order_and_drops_repeats(catalog: Catalog) -> None:
    assert catalog.resolve(["redis", "python", "redis", "devtools"]) == ["redis", "python", "devtools"]
    assert catalog.resolve(["claude_cli", "nodejs"]) == ["nodejs", "claude_cli"]


def test_resolve_names_an_unknown_stack(catalog: Catalog) -> None:
    with pytest.raises(UnknownStackError) as err:
        catalog.resolve(["nodejs", "cobol"])
    assert err.value.stack_id == "cobol"
    assert str(err.value) == messages.UNKNOWN_STACK.format(stack_id="cobol", known=", ".join(catalog.ids()))


def test_effective_names_an_unknown_inherited_stack(catalog: Catalog) -> None:
    with pytest.raises(UnknownStackError, match="'fortran'"):
        catalog.effective(["fortran"], ["nodejs"])


# --- ordering rules on small hand-made catalogs -------------------------------------------------


def test_caller_order_yields_where_an_earlier_stack_pulls_a_later_one_forward() -> None:
    # c requires b: b must precede c, and c was asked for before a, so b precedes a as well.
    # No order keeps every asked-for pair (c<a, a<b, b<c): requirements come with the stack needing them.
    cat = Catalog([stack("a"), stack("b"), stack("c", ["b"])])
    assert cat.resolve(["c", "a", "b"]) == ["b", "c", "a"]


def test_requirements_follow_their_declared_order() -> None:
    cat = Catalog([stack("x"), stack("y"), stack("app", ["y", "x"])])
    assert cat.resolve(["app"]) == ["y", "x", "app"]


def test_diamond_requirement_is_installed_once() -> None:
    cat = Catalog(
        [stack("base"), stack("left", ["base"]), stack("right", ["base"]), stack("top", ["left", "right"])]
    )
    assert cat.resolve(["top"]) == ["base", "left", "right", "top"]


# --- bad stack files: each names the path, the field and the reason ----------------------------


def _load_error(directory: Path) -> StackFileError:
    with pytest.raises(StackFileError) as err:
        load_catalog(directory)
    return err.value


def test_a_valid_file_loads(tmp_path: Path) -> None:
    write_stack(tmp_path, "tool", icon="🔧", tags=["cli", "build-tools"])
    entry = load_catalog(tmp_path).get("tool")
    assert (entry.icon, entry.tags, entry.requires) == ("🔧", ["cli", "build-tools"], [])


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"name": None}, "name", None),
        ({"verify": "   "}, "verify", None),
        ({"role": "other"}, "role", messages.STACK_ROLE_NOT_ID.format(stack_id="tool")),
        ({"requires": "nodejs"}, "requires", None),
        ({"requires": ["Node.js"]}, "requires[0]", None),
        ({"requires": ["nodejs", "nodejs"]}, "requires", messages.STACK_LIST_DUPLICATE.format(item="nodejs")),
        ({"tags": ["cli", "cli"]}, "tags", messages.STACK_LIST_DUPLICATE.format(item="cli")),
        ({"tags": ["Has Space"]}, "tags[0]", None),
        ({"icon": "x" * 40}, "icon", None),
        ({"id": "other", "role": "other"}, "id", messages.STACK_ID_NOT_FILE_NAME.format(stem="tool")),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_a_wrong_field_is_named_with_the_reason(
    tmp_path: Path, overrides: dict[str, object], field: str, reason: str | None
) -> None:
    path = write_stack(tmp_path, "tool", **overrides)
    error = _load_error(tmp_path)
    assert (error.path, error.field) == (path, field)
    if reason is not None:
        assert error.reason == reason
    assert str(error).startswith(f"{path}: field '{field}': ")


def test_a_missing_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "tool.yml"
    path.write_text("id: tool\nname: Tool\ndescription: d\nicon: t\nrole: tool\n")
    error = _load_error(tmp_path)
    assert (error.field, error.reason) == ("verify", messages.STACK_FIELD_MISSING)


def test_an_unknown_field_is_named(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "tool", version="1.0")
    error = _load_error(tmp_path)
    assert error.path == path
    assert error.problems == [("version", messages.STACK_FIELD_UNKNOWN.format(fields=", ".join(_FIELDS)))]


_FIELDS = ["id", "name", "description", "icon", "tags", "role", "requires", "verify"]


def test_every_wrong_field_is_reported_at_once(tmp_path: Path) -> None:
    write_stack(tmp_path, "tool", name="", requires="nodejs", colour="red")
    assert [field for field, _ in _load_error(tmp_path).problems] == ["name", "requires", "colour"]


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tool.yml").write_text("id: tool\nname: A\nname: B\n")
    error = _load_error(tmp_path)
    assert error.field == "-"
    assert messages.STACK_FILE_DUPLICATE_KEY.format(key="name", line=3) in error.reason


@pytest.mark.parametrize(
    ("text", "reason_start"),
    [
        ("id: tool\nname: [unclosed\n", "not valid YAML: "),
        ("- id: tool\n", messages.STACK_FILE_NOT_MAPPING.format(kind="list")),
        ("", messages.STACK_FILE_NOT_MAPPING.format(kind="NoneType")),
    ],
    ids=["broken-yaml", "a-list", "empty"],
)
def test_a_file_that_is_no_mapping_is_refused(tmp_path: Path, text: str, reason_start: str) -> None:
    (tmp_path / "tool.yml").write_text(text)
    error = _load_error(tmp_path)
    assert error.field == "-"
    assert error.reason.startswith(reason_start)
    assert "\n" not in str(error)


def test_a_yaml_suffix_is_refused_not_ignored(tmp_path: Path) -> None:
    write_stack(tmp_path, "tool")
    stray = tmp_path / "other.yaml"
    stray.write_text("id: other\n")
    error = _load_error(tmp_path)
    assert (error.path, error.reason) == (stray, messages.STACK_FILE_SUFFIX.format(name="other.yml"))


def test_resolve_refuses_a_bare_string(catalog: Catalog) -> None:
    with pytest.raises(TypeError, match="list of stack ids"):
        catalog.resolve("nodejs")  # type: ignore[arg-type]


# --- the catalog as a whole ---------------------------------------------------------------------


def test_a_requirement_on_an_unknown_stack_names_both(tmp_path: Path) -> None:
    write_stack(tmp_path, "app", ["nodejs"])
    with pytest.raises(UnknownStackError) as err:
        load_catalog(tmp_path)
    assert str(err.value) == messages.UNKNOWN_REQUIREMENT.format(stack_id="app", required="nodejs")


def test_a_cycle_is_named_as_its_path(tmp_path: Path) -> None:
    write_stack(tmp_path, "a", ["b"])
    write_stack(tmp_path, "b", ["c"])
    write_stack(tmp_path, "c", ["a"])
    write_stack(tmp_path, "d", ["a"])
    with pytest.raises(StackCycleError) as err:
        load_catalog(tmp_path)
    assert err.value.cycle == ["a", "b", "c", "a"]
    assert str(err.value) == messages.STACK_CYCLE.format(cycle="a → b → c → a")


def test_a_stack_requiring_itself_is_a_cycle() -> None:
    with pytest.raises(StackCycleError) as err:
        Catalog([stack("loop", ["loop"])])
    assert err.value.cycle == ["loop", "loop"]


def test_a_stack_defined_twice_is_refused() -> None:
    with pytest.raises(CatalogError) as err:
        Catalog([stack("a"), stack("a")])
    assert str(err.value) == messages.DUPLICATE_STACK.format(stack_id="a")


def test_a_missing_catalog_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path / "nowhere")
    assert str(err.value) == messages.CATALOG_MISSING.format(path=tmp_path / "nowhere")


def test_an_empty_catalog_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path)
    assert str(err.value) == messages.CATALOG_EMPTY.format(path=tmp_path)


def test_check_roles_names_each_stack_whose_role_is_missing(tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    write_role(roles, "nodejs", {}, {})
    (roles / "redis").mkdir()  # a role directory without tasks/main.yml is no role yet
    cat = Catalog([stack("nodejs"), stack("redis"), stack("python")])
    with pytest.raises(MissingRoleError) as err:
        cat.check_roles(roles)
    assert [m[0] for m in err.value.missing] == ["python", "redis"]
    assert messages.MISSING_ROLE.format(
        stack_id="redis", role="redis", path=roles / "redis" / "tasks" / "main.yml"
    ) in str(err.value)


def test_check_roles_passes_when_every_role_exists(tmp_path: Path) -> None:
    write_role(tmp_path, "nodejs", {}, {})
    write_role(tmp_path, "claude_cli", {}, {})
    Catalog([stack("nodejs"), stack("claude_cli", ["nodejs"])]).check_roles(tmp_path)
