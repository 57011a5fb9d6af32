"""No two modules of tostrack import each other, directly or around a longer loop.

The graph is read from the source with ast, so an import inside a function counts as much as one
at the top of a module (it only runs later). The rules it follows:

- `import tostrack.a.b` and `from tostrack.a import b` (b a module) depend on tostrack.a.b;
  `from tostrack.a import name` (name defined in tostrack/a/__init__.py or tostrack/a.py)
  depends on tostrack.a. Relative imports are resolved against the importing module's package.
- Importing tostrack.a.b from outside package tostrack.a also runs tostrack/a/__init__.py, so
  it depends on that too. A module inside tostrack.a does not depend on its own package's
  __init__ (Python has run it already) unless it imports it by name: then it does, and if that
  __init__ re-exports the module, that is a loop. So a package's modules import each other
  directly, and only code outside the package imports the package.
- Imports under `if TYPE_CHECKING:` never run and are left out. Imports of anything outside
  tostrack (optional or not) are not edges of this graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tostrack

PACKAGE_ROOT = Path(tostrack.__file__).resolve().parent


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    where: str  # file:line of the import statement


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under root (a package's __init__ is
    named as the package)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join((package, *parts))] = path
    return names


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for inner in node.body:
                    skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def _imported_names(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool
) -> Iterator[str]:
    """The dotted names an import statement reaches for (not yet resolved to modules)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    for alias in node.names:
        yield f"{prefix}.{alias.name}"  # a submodule, or a name defined in prefix
        yield prefix


def import_graph(root: Path, package: str) -> list[Edge]:
    modules = module_names(root, package)
    edges = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        own_package = module if is_package else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            names = list(_imported_names(node, module, is_package))
            targets: set[str] = set()
            if isinstance(node, ast.ImportFrom):
                # from X import y: X.y when it is a module, else X itself.
                pairs = list(zip(names[::2], names[1::2], strict=True))
                for candidate, prefix in pairs:
                    targets.add(candidate if candidate in modules else prefix)
            else:
                targets.update(names)
            for target in list(targets):
                # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the importer
                # lives inside that package already.
                parts = target.split(".")
                for i in range(1, len(parts)):
                    ancestor = ".".join(parts[:i])
                    inside = own_package == ancestor or own_package.startswith(ancestor + ".")
                    if not inside:
                        targets.add(ancestor)
            for target in sorted(targets):
                if target in modules and target != module:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    edges.append(Edge(module, target, where))
    return edges


def import_loops(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return loops


def describe(loops: list[list[str]], edges: list[Edge]) -> str:
    lines = []
    for loop in loops:
        members = set(loop)
        lines.append("import loop: " + ", ".join(loop))
        for edge in edges:
            if edge.importer in members and edge.imported in members:
                lines.append(f"  {edge.importer} -> {edge.imported}  ({edge.where})")
    return "\n".join(lines)


def test_tostrack_has_no_import_loops() -> None:
    edges = import_graph(PACKAGE_ROOT, "tostrack")
    assert len({e.importer for e in edges}) > 20  # the walk found the package
    loops = import_loops(edges)
    assert not loops, describe(loops, edges)


# -- the detector itself, on small packages written here ----------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_an_import_inside_a_function_closes_a_loop(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "fetch.py": "from pkg.browser import render\n",
            "browser.py": "def render():\n    from pkg.fetch import utc_now\n",
        },
    )
    assert import_loops(import_graph(pkg, "pkg")) == [["pkg.browser", "pkg.fetch"]]


def test_relative_imports_and_longer_loops_are_found(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from . import b\n",
            "b.py": "from .sub import c\n",
            "sub/__init__.py": "",
            "sub/c.py": "from ..a import x\n",
        },
    )
    assert import_loops(import_graph(pkg, "pkg")) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_a_submodule_importing_its_re_exporting_package_is_a_loop(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "store/__init__.py": "from pkg.store.outbox import Outbox\n",
            "store/outbox.py": "from pkg.store import helper\n",
        },
    )
    assert import_loops(import_graph(pkg, "pkg")) == [["pkg.store", "pkg.store.outbox"]]


def test_siblings_and_type_checking_imports_make_no_loop(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.models import Clause\n",
            "models.py": "",
            "store/__init__.py": "from pkg.store.store import Store\n",
            "store/store.py": "from pkg.store.codecs import read\nfrom pkg import models\n",
            "store/codecs.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.store.store import Store\n"
            ),
            "pipeline.py": "from pkg.store import Store\n",
        },
    )
    edges = import_graph(pkg, "pkg")
    assert import_loops(edges) == []
    assert {(e.importer, e.imported) for e in edges} >= {
        ("pkg.pipeline", "pkg.store"),
        ("pkg.store", "pkg.store.store"),
        ("pkg.store.store", "pkg.store.codecs"),
    }
