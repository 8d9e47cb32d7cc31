"""Property-based tests of the ordering rules, on random catalogs.

The caller's order is kept "wherever dependencies allow" in this precise sense: each asked-for stack
brings the requirements not yet listed right before itself. So the first k asked-for stacks, with
everything they require, fill exactly the first positions of the result. (Keeping every pair of
independent stacks in the caller's order is impossible in general: see
test_catalog.py::test_caller_order_yields_where_an_earlier_stack_pulls_a_later_one_forward.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from catalog_helpers import stack
from ctforge.catalog import Catalog, StackCycleError, find_cycle

NAMES = [f"s{i}" for i in range(10)]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random acyclic `requires` graph: a stack may only require stacks earlier in a random order."""
    names = draw(st.permutations(NAMES))[: draw(st.integers(1, len(NAMES)))]
    graph: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        graph[name] = draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
    return graph


@st.composite
def dag_and_request(draw: st.DrawFn) -> tuple[dict[str, list[str]], list[str]]:
    graph = draw(dags())
    return graph, draw(st.lists(st.sampled_from(sorted(graph)), max_size=12))


def catalog_of(graph: dict[str, list[str]]) -> Catalog:
    return Catalog(stack(name, requires) for name, requires in graph.items())


def closure(graph: dict[str, list[str]], ids: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(ids)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def is_acyclic(graph: dict[str, list[str]]) -> bool:
    """Kahn's algorithm, independent of the catalog's own cycle search."""
    waiting = {node: len(set(reqs)) for node, reqs in graph.items()}
    dependants: dict[str, list[str]] = {node: [] for node in graph}
    for node, reqs in graph.items():
        for req in set(reqs):
            dependants[req].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    removed = 0
    while ready:
        node = ready.pop()
        removed += 1
        for dependant in dependants[node]:
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                ready.append(dependant)
    return removed == len(graph)


@given(dag_and_request())
def test_resolve_is_the_closure_without_duplicates(case: tuple[dict[str, list[str]], list[str]]) -> None:
    graph, request = case
    order = catalog_of(graph).resolve(request)
    assert len(order) == len(set(order))
    assert set(order) == closure(graph, request)


@given(dag_and_request())
def test_each_stack_comes_after_all_it_requires(case: tuple[dict[str, list[str]], list[str]]) -> None:
    graph, request = case
    order = catalog_of(graph).resolve(request)
    position = {stack_id: i for i, stack_id in enumerate(order)}
    for stack_id in order:
        assert all(position[req] < position[stack_id] for req in graph[stack_id])


@given(dag_and_request())
def test_each_prefix_of_the_request_fills_a_prefix_of_the_result(
    case: tuple[dict[str, list[str]], list[str]],
) -> None:
    graph, request = case
    order = catalog_of(graph).resolve(request)
    for k in range(1, len(request) + 1):
        needed = closure(graph, request[:k])
        assert set(order[: len(needed)]) == needed
        # the asked-for stack closes its own block when it is new there
        if request[k - 1] not in closure(graph, request[: k - 1]):
            assert order[len(needed) - 1] == request[k - 1]


@given(dag_and_request())
def test_independent_asked_for_stacks_keep_the_callers_order(
    case: tuple[dict[str, list[str]], list[str]],
) -> None:
    graph, request = case
    order = catalog_of(graph).resolve(request)
    firsts = list(dict.fromkeys(request))
    for i, a in enumerate(firsts):
        pulled_in = closure(graph, request[: request.index(a) + 1])
        for b in firsts[i + 1 :]:
            if b not in pulled_in:  # nothing asked for up to a needs b, so a precedes b
                assert order.index(a) < order.index(b)


@given(dag_and_request())
def test_resolve_is_idempotent(case: tuple[dict[str, list[str]], list[str]]) -> None:
    graph, request = case
    cat = catalog_of(graph)
    once = cat.resolve(request)
    assert cat.resolve(once) == once


@given(st.data())
def test_effective_keeps_the_parents_stacks_first_and_in_order(data: st.DataObject) -> None:
    graph = data.draw(dags())
    parent_request = data.draw(st.lists(st.sampled_from(sorted(graph)), max_size=6))
    own = data.draw(st.lists(st.sampled_from(sorted(graph)), max_size=6))
    cat = catalog_of(graph)
    parent = cat.resolve(parent_request)
    child = cat.effective(parent, own)
    assert child[: len(parent)] == parent
    assert set(child) == closure(graph, parent + own)
    assert len(child) == len(set(child))
    assert cat.effective(parent, parent + own) == child  # re-listing inherited stacks changes nothing


@given(
    st.dictionaries(
        st.sampled_from(NAMES[:6]),
        st.lists(st.sampled_from(NAMES[:6]), max_size=3, unique=True),
        min_size=1,
    )
)
def test_a_cycle_is_found_exactly_when_there_is_one_and_named_truly(graph: dict[str, list[str]]) -> None:
    graph = {node: [r for r in reqs if r in graph] for node, reqs in graph.items()}
    try:
        catalog_of(graph)
    except StackCycleError as err:
        cycle = err.cycle
        assert not is_acyclic(graph)
        assert cycle == find_cycle(graph)
        assert len(cycle) >= 2 and cycle[0] == cycle[-1]
        assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle: no id twice before the end
        assert all(b in graph[a] for a, b in itertools.pairwise(cycle))
        assert " → ".join(cycle) in str(err)
    else:
        assert is_acyclic(graph)
