"""No import circle crosses an app boundary (issue 13, point 2).

The graph is built from the source: every module of ``flows``,
``orchestration`` and ``workguide``, with an edge for each import at module
level (imports inside functions run later and are not part of loading a
module). A circle is a strongly connected component of that graph; one that
holds modules of two apps means neither app can be loaded, read or replaced
without the other.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPS = ("flows", "orchestration", "workguide")

#: Modules whose circles this test watches. The engine's side of point 2;
#: other modules join the list as their imports are untangled.
WATCHED = {
    "orchestration.engine", "orchestration.tasks", "orchestration.effects", "orchestration.worker",
    "orchestration.transition", "orchestration.exceptions", "orchestration.lifecycle", "workguide.due",
    "workguide.effects",
}


def module_names():
    names = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def _every_import(tree):
    """Every import statement, inside functions too (what a module may load while it runs)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _module_level(tree):
    """Import statements run when the module loads: at top level, or under a top-level if/try/with."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)


def imports_of(name, path, known, statements=_module_level):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in statements(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for candidate in candidates:
            # Loading a.b.c loads a and a.b first: their __init__ modules count too.
            parts = candidate.split(".")
            targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known.keys()
    targets.discard(name)
    return targets


def import_graph(statements=_module_level):
    known = module_names()
    return {name: imports_of(name, path, known, statements) for name, path in known.items()}


def strongly_connected(graph):
    """Tarjan's algorithm, iteratively: the components of more than one module."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
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
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                        found.append(component)
    return found


def test_the_graph_sees_module_level_imports_only():
    graph = import_graph()
    assert "orchestration.worker" in graph["orchestration.engine"]  # a top-level `from . import worker`
    assert "orchestration.exceptions" in graph["orchestration.steps"]
    assert "workguide.services" in graph["workguide.effects"]
    assert not any(name.startswith("workguide") for name in graph["orchestration.transition"])  # by setting, not import


def test_the_cycle_finder_finds_a_circle_across_apps():
    graph = {"a.x": {"b.y"}, "b.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert strongly_connected(graph) == [{"a.x", "b.y", "a.z"}]


def test_no_import_circle_through_the_engine_crosses_an_app_boundary():
    crossing = []
    for component in strongly_connected(import_graph()):
        apps = {name.split(".")[0] for name in component}
        if len(apps) > 1 and component & WATCHED:
            crossing.append(sorted(component))
    assert crossing == [], f"import circles across apps through {sorted(WATCHED)}: {crossing}"


def test_the_engine_and_the_work_guide_share_no_circle_even_through_imports_inside_functions():
    """The circle issue 13 found: engine → effects → workguide.services → engine (11 modules, through
    imports inside functions). The engine now finds the Work Guide's effects by a setting."""
    shared = []
    for component in strongly_connected(import_graph(_every_import)):
        if component & WATCHED and {"orchestration", "workguide"} <= {name.split(".")[0] for name in component}:
            shared.append(sorted(component))
    assert shared == []
