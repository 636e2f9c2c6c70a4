"""Modules are joined by plain imports in one direction: no cycle among safety/ modules (imports inside
functions included), nothing loaded by a name string, and a misspelt name fails at start."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(top: str) -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every safety module ``path`` imports, at any depth of the file (``from a import b`` -> a.b when b is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif node.module in known:
                    out.add(node.module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle_among_safety_modules():
    mods = _modules("safety")
    known = set(mods)
    graph = {name: _imports(path, known) - {name} for name, path in mods.items()}
    # a package's own __init__ importing its parts is how a package is assembled, not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not (name.startswith(m + ".") and m in known)}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_dlt_modules_import_in_one_direction():
    mods = _modules("safety")
    known = set(mods)
    order = ["events", "decisions", "evaluability", "screening", "stopping"]
    for i, name in enumerate(order):
        deps = {m.rsplit(".", 1)[-1] for m in _imports(mods[f"safety.derive.dlt.{name}"], known)
                if m.startswith("safety.derive.dlt.")}
        assert deps <= set(order[:i]), f"{name} imports {deps - set(order[:i])}"


@pytest.mark.parametrize("top", ["safety", "dashboard"])
def test_nothing_is_loaded_by_a_name_string(top):
    offenders = []
    for name, path in _modules(top).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "importlib" for a in node.names):
                offenders.append(f"{name}: import importlib")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "importlib":
                offenders.append(f"{name}: from importlib")
            elif isinstance(node, ast.Name) and node.id == "__import__":
                offenders.append(f"{name}: __import__")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "not installed" in node.value:
                offenders.append(f"{name}: a 'not installed' fallback")
    assert offenders == []


def test_a_misspelt_derivation_fails_loudly():
    from safety.derive.graph import GraphError
    from safety.derive.pipeline import derivation, run_derivations
    assert derivation("dlt_screening").name == "dlt_screening"
    with pytest.raises(GraphError, match="dlt_screenin"):
        derivation("dlt_screenin")
    with pytest.raises(GraphError, match="stoping_rules"):
        run_derivations(None, "S", None, {}, only=["stoping_rules"])


def test_a_misspelt_right_or_page_fails_at_start():
    from dashboard import navigation, session
    with pytest.raises(KeyError):
        session.can(object(), "can_adjudicat")
    navigation.check_pages()  # every declared page file and right exists
    typo = navigation.PageSpec("overveiw.py", "Overview", ":material/dashboard:", "overview", "can_view_patient_data")
    monkey = pytest.MonkeyPatch()
    monkey.setattr(navigation, "PAGES", navigation.PAGES + (typo,))
    try:
        with pytest.raises(FileNotFoundError, match="overveiw.py"):
            navigation.check_pages()
    finally:
        monkey.undo()
