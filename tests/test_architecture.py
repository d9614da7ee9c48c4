"""The layers hold: no import cycle between the project's modules (imports inside functions
included), core imports neither training nor the GUI, training and the GUI never import each
other, core never imports Qt. Run alone with ``pytest tests/test_architecture.py``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "training", "deblur_gui", "resources")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, at any depth of the file (functions too)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from pkg import submodule" imports the submodule
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:          # "import core.models.x.y" -> nearest module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_arrows_point_one_way():
    """core <- training, core <- deblur_gui; nothing imports the GUI; core never imports Qt."""
    bad = []
    for mod, deps in import_graph().items():
        top = mod.split(".")[0]
        for dep in deps:
            dtop = dep.split(".")[0]
            if top in ("core", "resources") and dtop in ("training", "deblur_gui"):
                bad.append(f"{mod} -> {dep}")
            if top == "training" and dtop == "deblur_gui" or top == "deblur_gui" and dtop == "training":
                bad.append(f"{mod} -> {dep}")
    assert bad == []


def test_core_never_imports_qt():
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy") for m in mods):
                offenders.append(name)
    assert offenders == []


def _external_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        out |= {m.split(".")[0] for m in mods}
    return out


#: app modules the napari plugin shares: they import no Qt binding and no other app module
BINDING_FREE = {"deblur_gui.param_widgets"}


def test_the_napari_plugin_is_a_front_end_over_core_only():
    """The plugin imports core (and napari, qtpy) and the binding-free modules it shares with
    the app, never the desktop app's other modules or PySide6 (napari may run on another Qt
    binding), and nothing imports the plugin."""
    plugin = "deblur_gui.napari_plugin"
    graph = import_graph()
    bad = [f"{mod} -> {dep}" for mod, deps in graph.items() for dep in deps
           if (mod.startswith(plugin) and dep.startswith("deblur_gui") and not dep.startswith(plugin)
               and dep not in BINDING_FREE)
           or (not mod.startswith(plugin) and dep.startswith(plugin))
           or (mod in BINDING_FREE and dep.startswith("deblur_gui"))]
    qt = {"PySide6", "pyqtgraph", "PyQt5", "PyQt6", "qtpy"}
    bad += [f"{name} imports {m}" for name, path in _modules().items() if name.startswith(plugin)
            for m in _external_imports(path) & (qt - {"qtpy"})]
    bad += [f"{name} imports {m}" for name, path in _modules().items() if name in BINDING_FREE
            for m in _external_imports(path) & qt]
    assert bad == []


def test_the_check_sees_a_cycle():
    """The checker itself: a two-module cycle and a longer one are found, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
