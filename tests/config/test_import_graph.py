"""The apps' import graph: flows at the bottom, orchestration on it, the Work Guide on both.

The graph is read from the source (``ast``), not by importing: an edge is a
module-level ``import``/``from ... import`` of one of Baton's modules, and
importing ``a.b.c`` counts as importing the packages ``a`` and ``a.b`` too
(Python runs their ``__init__``). Imports inside functions are left out:
each of those says in a comment why it must be there.
"""
import ast

from tests.servers import REPO

APPS = ("flows", "orchestration", "workguide")

# Orchestration's pages and URL configuration show and route the Work Guide's
# parts; everything else of orchestration (engine, starts, validation, the
# API's plumbing...) works without importing workguide.
ORCHESTRATION_UI = ("orchestration.admin", "orchestration.api_urls", "orchestration.urls", "orchestration.monitor",
                    "orchestration.templatetags")


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules():
    """``{module name: path}`` of every module of the three apps but their migrations."""
    return {module_name(path): path for app in APPS for path in sorted((REPO / app).rglob("*.py"))
            if "migrations" not in path.parts}


def with_parents(name, modules):
    """``name`` and the packages above it that are Baton modules (importing it runs their ``__init__``)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules}


def module_level(tree):
    """The import statements that run when a module loads (imports inside functions run later)."""
    return tree.body


def every_import(tree):
    """Every import statement, inside functions too: what a module may load while it runs."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def import_graph(statements=module_level):
    """``{module: set of Baton modules it imports}`` (at module level unless ``statements`` says otherwise)."""
    modules = app_modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in statements(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= with_parents(alias.name, modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets |= with_parents(base, modules)
                for alias in node.names:  # ``from . import engine`` imports the module orchestration.engine
                    targets |= with_parents(f"{base}.{alias.name}", modules) & {f"{base}.{alias.name}"}
        targets.discard(name)
        graph[name] = targets
    return graph


def app_of(module):
    return module.split(".")[0]


def test_the_graph_is_read():
    graph = import_graph()
    # A few edges known to exist, so that an empty or wrong reading cannot pass the tests below.
    assert "flows.expressions" in graph["flows.records"]
    assert "orchestration.api.common" in graph["workguide.api"]
    assert "orchestration.engine" in graph["orchestration.api.views"]
    assert "orchestration.api" in graph["orchestration.api.views"]  # the package's __init__ runs first


def test_flows_imports_nothing_of_orchestration_or_the_work_guide():
    graph = import_graph()
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() if app_of(module) == "flows"
                    for target in targets if app_of(target) != "flows")
    assert upward == []


def test_orchestration_outside_its_pages_imports_nothing_of_the_work_guide():
    graph = import_graph()
    found = sorted(f"{module} -> {target}" for module, targets in graph.items()
                   if app_of(module) == "orchestration"
                   and not any(module == ui or module.startswith(ui + ".") for ui in ORCHESTRATION_UI)
                   for target in targets if app_of(target) == "workguide")
    assert found == []


def strongly_connected(graph):
    """The strongly connected components of ``graph`` with more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_strongly_connected_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]


def test_no_import_circle_crosses_an_app_boundary():
    crossing = [sorted(component) for component in strongly_connected(import_graph())
                if len({app_of(module) for module in component}) > 1]
    assert crossing == []


# The circle issue 13 found went engine → effects → workguide.services → engine through imports
# inside functions (11 modules). The engine now finds the Work Guide's effects by a setting
# (BATON_EFFECTS), so not even those imports join the engine's modules and the Work Guide's.
ENGINE_SIDE = {
    "orchestration.engine", "orchestration.tasks", "orchestration.effects", "orchestration.worker",
    "orchestration.transition", "orchestration.exceptions", "orchestration.lifecycle", "workguide.due",
    "workguide.effects",
}


def test_the_engine_and_the_work_guide_share_no_circle_even_through_imports_inside_functions():
    shared = [sorted(component) for component in strongly_connected(import_graph(every_import))
              if component & ENGINE_SIDE and {"orchestration", "workguide"} <= {app_of(m) for m in component}]
    assert shared == []
