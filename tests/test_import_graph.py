"""The shape of the code (STYLE.md, "One direction of imports"), read from the
source: no import cycles inside channels_app/ (imports inside functions count:
they are how cycles hide), and the interfaces import only what they may."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "channels_app"

# The doors: each may import the services, the selectors, the models and the shared modules below, never
# another door.
INTERFACES = ("channels_app.api", "channels_app.esp", "channels_app.messaging", "channels_app.admin",
              "channels_app.tasks", "channels_app.health", "channels_app.media_access", "channels_app.whatsapp",
              "channels_app.workspace")
SHARED = ("channels_app.services", "channels_app.selectors", "channels_app.models", "channels_app.parsing",
          "channels_app.authentication", "channels_app.errors", "channels_app.rights", "channels_app.choices",
          "channels_app.options_catalog", "channels_app.text_rules", "channels_app.validators",
          "channels_app.attachments", "channels_app.outbound", "channels_app.metrics", "channels_app.publishing",
          "channels_app.rendering", "channels_app.signed_links",
          # the hot paths' JSON and their dispatch past the middleware
          "channels_app.lean",
          # signing in: the views every login page reuses (the admin's, the workspace's)
          "channels_app.sign_in")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _reexports() -> dict[tuple[str, str], str]:
    """(package, name) -> the submodule a package's __init__ takes the name from."""
    found = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(name + "."):
                    for alias in node.names:
                        found[(name, alias.asname or alias.name)] = node.module
    return found


def import_graph() -> dict[str, set[str]]:
    reexports = _reexports()
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("channels_app"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        targets.add(f"{node.module}.{alias.name}")
                    elif (node.module, alias.name) in reexports and path.name != "__init__.py":
                        targets.add(reexports[(node.module, alias.name)])
                    else:
                        targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith("channels_app"))
        graph[name] = {target for target in targets if target in MODULES and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_inside_channels_app():
    graph = import_graph()

    assert cycles(graph) == []
    assert len(graph) > 50  # the walk found the code


def test_a_cycle_is_found_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _package_of(name: str) -> str:
    return next((interface for interface in INTERFACES if name == interface or name.startswith(interface + ".")),
                name)


def test_interfaces_import_only_services_selectors_models_and_shared_modules():
    wrong = []
    for name, targets in import_graph().items():
        if not name.startswith(INTERFACES):
            continue
        for target in targets:
            if _package_of(target) == _package_of(name):
                continue  # a door's own modules
            if not target.startswith(SHARED):
                wrong.append(f"{name} -> {target}")

    assert wrong == []


def test_reads_stay_below_the_services_that_use_them():
    # selectors.py (and the option reads it uses) import no service: services read through them, not the
    # other way round (issue 22, item 23)
    graph = import_graph()
    below = ("channels_app.selectors", "channels_app.option_values")

    wrong = [f"{name} -> {target}" for name in below for target in sorted(graph.get(name, ()))
             if target.startswith("channels_app.services")]

    assert "channels_app.selectors" in graph
    assert wrong == []


def test_services_never_import_an_interface():
    """Services depend on models, transports and pure modules; a door's parser (say Meta's webhook bodies)
    lives with its transport, so that no service reaches up into a door."""
    wrong = [
        f"{name} -> {target}"
        for name, targets in import_graph().items() if name.startswith("channels_app.services")
        for target in targets if target.startswith(INTERFACES)
    ]

    assert wrong == []
