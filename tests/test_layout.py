"""The packages keep their direction, and no module imports itself back through others.

Imports are read from the source (module level and inside functions alike); those under
`if TYPE_CHECKING:` are only for type checkers and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("experiments", "tracking", "sweeps")

# What each part may import of the project (beyond itself); the part's `__init__` says so too.
ALLOWED: dict[str, set[str]] = {
    "experiments": set(),
    "tracking": set(),
    "sweeps.errors": set(),
    "sweeps.spec": {"sweeps.errors", "experiments"},
    "sweeps.engines": {"sweeps.errors", "sweeps.spec", "experiments"},
    "sweeps.running": {"sweeps.errors", "sweeps.spec", "sweeps.engines", "experiments", "tracking"},
    "sweeps.report": {"sweeps.errors", "sweeps.spec", "sweeps.running", "experiments", "tracking"},
    "sweeps.cli": {"sweeps", "experiments", "tracking"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Project modules a module imports at run time."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            modules[_module_name(path)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imports(ast.parse(path.read_text(), str(path)), package)
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def _part(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(f"{part}."):
            return part
    return module.split(".")[0]


def test_parts_import_only_what_they_may() -> None:
    wrong = []
    for module, targets in sorted(_graph().items()):
        part = _part(module)
        if part not in ALLOWED:
            continue  # sweeps/__init__ and __main__: the public face, may import anything
        for target in sorted(targets):
            other = _part(target)
            ok = other == part or any(other == a or other.startswith(f"{a}.") for a in ALLOWED[part])
            if not ok:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layout:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "part", ["sweeps.spec", "sweeps.engines", "sweeps.running", "sweeps.cli", "sweeps.report"]
)
def test_each_part_says_what_it_is_for(part: str) -> None:
    init = ROOT / part.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and "May import" in doc.splitlines()[0], (
        f"{init}: first docstring line should say what it may import"
    )
