"""The package's modules import on their own and form no import circle.

Floors, lowest first: ``errors``, ``paths``, ``distributed``, ``record`` and the data and model
helpers; the models; the trainers; the lookups (``utils``); ``config``; the quick
start, the report and the command line.
"""

import ast
import importlib.util
import subprocess
import sys

from conftest import REPO_DIR

PACKAGE_DIR = REPO_DIR / "recbole_ssl"


def module_name(path):
    parts = list(path.relative_to(REPO_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(module_name(p) for p in PACKAGE_DIR.rglob("*.py"))


def imported_modules(path):
    """Plugin modules ``path`` imports, at module level or inside functions, including
    ``importlib.import_module("recbole_ssl....")`` with a literal name."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return {n for n in names if n in MODULES}


def import_graph():
    graph = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        name = module_name(path)
        # a submodule's import of its own package (run when the package loads) is
        # Python's package mechanism, not a dependency between floors
        graph[name] = {
            m
            for m in imported_modules(path)
            if m != name and not name.startswith(m + ".")
        }
    return graph


def find_cycle(graph):
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_ground_floor_imports_nothing_of_the_plugin():
    graph = import_graph()
    assert graph["recbole_ssl.errors"] == set()
    assert graph["recbole_ssl.distributed"] == set()
    assert graph["recbole_ssl.randomness"] == set()
    assert graph["recbole_ssl.checkpoint"] <= {
        "recbole_ssl.distributed",
        "recbole_ssl.errors",
        "recbole_ssl.record",
    }
    for name, imports in graph.items():
        if name.startswith(
            ("recbole_ssl.model.", "recbole_ssl.data.", "recbole_ssl.trainer.")
        ):
            assert "recbole_ssl.utils" not in imports, name
            assert "recbole_ssl.config" not in imports, name


FORK_EACH = """
import os, sys, traceback
import numpy, pandas, torch, recbole.config, recbole.data, recbole.trainer  # third party
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # a child with no plugin module loaded yet
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
print("failed:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_each_module_imports_on_its_own():
    """Each module in an interpreter where no plugin module is loaded yet (one process
    per module, forked after the third-party libraries are loaded, as a fresh
    ``python -c 'import recbole_ssl.<module>'`` would find it but faster)."""
    assert all(importlib.util.find_spec(m) is not None for m in MODULES)
    out = subprocess.run(
        [sys.executable, "-c", FORK_EACH, *MODULES],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert out.stdout.strip() == "failed:"


def test_a_module_that_cannot_import_is_reported(tmp_path):
    (tmp_path / "broken_mod.py").write_text("import recbole_ssl.no_such_module\n")
    out = subprocess.run(
        [sys.executable, "-c", FORK_EACH, "recbole_ssl.errors", "broken_mod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1 and out.stdout.strip() == "failed: broken_mod"
