"""No two scratchnet modules import each other, directly or around a loop.

The layering itself is written as import-linter contracts in pyproject.toml and checked by `lint-imports`
(`./run.sh lint`). Its `acyclic_siblings` contract compares sibling packages and modules only, so it misses a
module that imports its own package while the package's ``__init__`` imports it; this test walks every module.

What counts as an import: everything grimp finds, at module level or inside a function (a lazy import hides a
cycle from the interpreter, not from the reader: two modules that need each other are one module in two files),
including a package's ``__init__`` importing its own submodules. That alone never closes a loop (importing
``p.a`` is not recorded as importing ``p``); it closes one only when something under ``p`` imports ``p`` back,
which is the partially-initialised-package trap. Imports under ``if TYPE_CHECKING:`` never run and are not
counted.
"""
import grimp
import pytest


def import_edges(graph):
    """{module: the modules it imports}."""
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def strongly_connected_components(edges):
    """Tarjan's algorithm, iterative: the groups of modules that all reach one another (sizes >= 2)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)
    return groups


def shortest_cycle(edges, group):
    """One shortest import loop inside ``group``, starting and ending at its first module by name."""
    start = min(group)
    paths, frontier = {start: [start]}, [start]
    while frontier:
        next_frontier = []
        for module in frontier:
            for imported in sorted(edges[module] & group):
                if imported == start:
                    return paths[module] + [start]
                if imported not in paths:
                    paths[imported] = paths[module] + [imported]
                    next_frontier.append(imported)
        frontier = next_frontier
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def describe(graph, cycle):
    """'a -> b (l.3) -> a (l.12)': each arrow with the line numbers of the imports it stands for."""
    parts = [cycle[0]]
    for importer, imported in zip(cycle, cycle[1:]):
        lines = sorted({detail["line_number"] for detail in graph.get_import_details(importer=importer,
                                                                                      imported=imported)})
        parts.append(f"{imported} (l.{', l.'.join(map(str, lines))})" if lines else imported)
    return " -> ".join(parts)


def import_cycles(graph):
    """A description of one shortest loop per group of mutually importing modules, sorted."""
    edges = import_edges(graph)
    return sorted(describe(graph, shortest_cycle(edges, group)) for group in strongly_connected_components(edges))


def synthetic_graph(imports):
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        for module in (importer, imported):
            graph.add_module(module)
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    return graph


def test_scratchnet_has_no_import_cycle():
    graph = grimp.build_graph("scratchnet", exclude_type_checking_imports=True, cache_dir=None)
    assert len(graph.modules) > 30  # the whole package was found, not an empty or stale install
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in scratchnet:\n" + "\n".join(cycles)


def test_cycle_finder_names_a_loop_through_three_modules():
    graph = synthetic_graph([("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")])
    assert import_cycles(graph) == ["p.a -> p.b (l.1) -> p.c (l.1) -> p.a (l.1)"]


def test_cycle_finder_accepts_packages_importing_their_children():
    graph = synthetic_graph([("p", "p.a"), ("p", "p.sub"), ("p.a", "p.sub.b"), ("p.sub", "p.sub.b")])
    assert import_cycles(graph) == []


@pytest.mark.parametrize("parent", ["p", "p.sub"])
def test_cycle_finder_counts_a_module_importing_its_own_package(parent):
    graph = synthetic_graph([(parent, "p.sub.b"), ("p.sub.b", parent)])
    assert import_cycles(graph) == [f"{parent} -> p.sub.b (l.1) -> {parent} (l.1)"]


def test_cycle_finder_reports_each_separate_loop():
    graph = synthetic_graph([("p.a", "p.b"), ("p.b", "p.a"), ("p.c", "p.d"), ("p.d", "p.c"), ("p.b", "p.c")])
    assert import_cycles(graph) == ["p.a -> p.b (l.1) -> p.a (l.1)", "p.c -> p.d (l.1) -> p.c (l.1)"]
