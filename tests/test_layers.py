"""The shape of the house: imports point one way, downwards (README "Layout").

    entry points (app, wsgi, tasks) -> factory -> blueprints -> services -> engine
    (access rules and rows sit below the services and never import them)

Every module of ``webapp/`` is read with ``ast`` (imports inside functions count too). The
test fails on any import cycle, on the engine importing Flask, the database or the website,
and on any module importing one from a layer above its own. Tiny packages made in a temporary
folder show that each check can fail.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Layers, lowest first. A module may import its own layer or any below it (cycles aside).
LAYERS = ("engine", "rows", "access", "services", "views", "factory", "entry")
#: What the engine may never import (besides any website module).
ENGINE_FORBIDDEN = ("flask", "flask_", "sqlalchemy", "werkzeug", "celery")


def layer(module: str, package: str = "webapp") -> str:
    """The layer of a module of ``package`` (named as ``package.x.y``)."""
    rel = module[len(package) :].lstrip(".")
    head = rel.split(".", 1)[0]
    if head == "detection":
        return "engine"
    if head in ("models", "extensions", "config", "schema"):
        return "rows"
    if head in ("owners", "auth"):
        return "access"
    if head == "services":
        return "services"
    if head in ("blueprints", "templating", "catalog", "forms", "errors"):
        return "views"
    if head == "tasks":
        return "entry"
    return "factory"  # the package itself (create_app), cli, cli_accounts


def module_names(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package __init__)}`` of every module under root/package."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between the package's modules, every name each module imports)."""
    mods = module_names(root, package)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    raw: dict[str, set[str]] = defaultdict(set)
    for mod, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # "from pkg import name": the module pkg.name when there is one, else pkg
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            for target in targets:
                raw[mod].add(target)
                found = known(target)
                if found and found != mod:
                    edges[mod].add(found)
    return edges, raw


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def problems(root: Path, package: str = "webapp") -> list[str]:
    """Everything wrong with the package's imports, one line each (empty: the shape holds)."""
    edges, raw = import_graph(root, package)
    found = [f"cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    for mod, targets in sorted(edges.items()):
        rank = LAYERS.index(layer(mod, package))
        for target in sorted(targets):
            if LAYERS.index(layer(target, package)) > rank:
                found.append(
                    f"upward: {mod} ({layer(mod, package)}) imports {target} "
                    f"({layer(target, package)})"
                )
    for mod, names in sorted(raw.items()):
        if layer(mod, package) != "engine":
            continue
        for name in sorted(names):
            top = name.split(".", 1)[0]
            if top in ENGINE_FORBIDDEN or top.startswith("flask_"):
                found.append(f"engine imports {name}: {mod}")
            elif top == package and layer(name, package) != "engine":
                found.append(f"engine imports the website: {mod} -> {name}")
    return found


# --------------------------------------------------------------------------- the website


def test_webapp_imports_point_downwards() -> None:
    assert problems(ROOT) == []


def test_the_layers_are_the_ones_the_readme_draws() -> None:
    edges, _ = import_graph(ROOT, "webapp")
    assert "webapp.services.formatting" in edges["webapp.services.presenters"]
    assert "webapp.services.celery_app" in edges["webapp.tasks"]
    # the registry is reached through one service
    users = {m for m, ts in edges.items() if "webapp.detection.registry" in ts}
    assert {u for u in users if not u.startswith(("webapp.detection", "webapp.cli"))} == {
        "webapp.services.modelcard"
    }


# --------------------------------------------------------------------------- the checks can fail


def make_package(root: Path, files: dict[str, str]) -> Path:
    """A package named ``webapp`` under ``root`` with ``files`` ({relative path: source})."""
    for rel, source in {"webapp/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("")
        path.write_text(source)
    return root


def test_a_cycle_made_inside_functions_is_found(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "webapp/services/a.py": "def f():\n    from .b import g\n    return g()\n",
            "webapp/services/b.py": "def g():\n    from . import a\n    return a\n",
            "webapp/services/c.py": "from .a import f\n",
        },
    )
    assert problems(root) == ["cycle: webapp.services.a <-> webapp.services.b"]


def test_a_three_module_cycle_across_layers_is_found(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "webapp/owners.py": "import webapp.models\n",
            "webapp/models.py": "from webapp import extensions\n",
            "webapp/extensions.py": "def f():\n    import webapp.owners\n",
        },
    )
    found = problems(root)
    assert "cycle: webapp.extensions <-> webapp.models <-> webapp.owners" in found
    assert any(p.startswith("upward: webapp.extensions (rows) imports webapp.owners") for p in found)


def test_a_service_importing_a_blueprint_is_found(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "webapp/blueprints/results.py": "X = 1\n",
            "webapp/services/compare.py": "def f():\n    from ..blueprints.results import X\n",
        },
    )
    assert problems(root) == [
        "upward: webapp.services.compare (services) imports webapp.blueprints.results (views)"
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import flask\n", "engine imports flask: webapp.detection.video"),
        ("from flask_sqlalchemy import SQLAlchemy\n", "engine imports flask_sqlalchemy"),
        ("def f():\n    from ..extensions import db\n", "engine imports the website"),
    ],
)
def test_the_engine_importing_flask_or_the_database_is_found(
    tmp_path: Path, source: str, expected: str
) -> None:
    root = make_package(
        tmp_path, {"webapp/extensions.py": "db = None\n", "webapp/detection/video.py": source}
    )
    found = problems(root)
    assert any(p.startswith(expected) for p in found), found


def test_access_rules_importing_a_service_is_found(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "webapp/services/database.py": "def retry_locked(f):\n    return f()\n",
            "webapp/owners.py": "def ensure():\n    from .services.database import retry_locked\n",
        },
    )
    assert problems(root) == [
        "upward: webapp.owners (access) imports webapp.services.database (services)"
    ]
