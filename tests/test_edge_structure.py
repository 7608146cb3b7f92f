"""The runtime's shape: sub-packages in layers with no upward import and no cycle, nothing imported from
train/convert/benchmarks, small modules, and the README's Library snippet runs as written."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge_support import PHOTOS, ROOT, need

PACKAGE = ROOT / "edge_runtime"
#: Each part of edge_runtime and the parts it may import (its own layer or a lower one).
LAYERS = {
    "base": set(),  # errors, redact, paths, atomic_io, results, command_line
    "model": {"base"},
    "sources": {"base"},
    "labelled_faces": {"base"},  # FER2013 and FER+ data for train, convert and benchmarks (not the daemon)
    "detection": {"base", "model"},
    "recognition": {"base", "model", "detection"},
    "outputs": {"base", "sources"},
    "service": {"base", "model", "sources", "detection", "recognition", "outputs"},
}
LAYERS["api"] = set(LAYERS)  # the package's public names (__init__) and python -m edge_runtime (__main__)
PROJECT_PACKAGES = ("train", "convert", "benchmarks", "tools", "tests", "examples")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    if module in ("edge_runtime", "edge_runtime.__main__"):
        return "api"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "base"


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path.relative_to(ROOT)}: relative import (the runtime imports absolutely)"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def runtime_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_runtime_imports_nothing_from_the_rest_of_the_project():
    for path in PACKAGE.rglob("*.py"):
        outside = {m for m in imports_of(path) if m.split(".")[0] in PROJECT_PACKAGES}
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_every_import_goes_to_the_same_layer_or_below():
    graph = runtime_graph()
    assert {part_of(m) for m in graph} == set(LAYERS), "every layer holds modules"
    upward = [(m, t) for m, targets in graph.items() for t in targets
              if part_of(t) != part_of(m) and part_of(t) not in LAYERS[part_of(m)]]
    assert not upward, upward


def test_there_is_no_import_cycle():
    graph = runtime_graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its own submodule is not a cycle
                continue
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("edge_runtime", "train", "convert", "benchmarks", "tools")
            for p in (ROOT / folder).rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_the_daemon_module_only_runs_the_loop():
    tree = ast.parse((PACKAGE / "service" / "daemon.py").read_text())
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert classes == ["Daemon"] and functions == [], (classes, functions)


@pytest.mark.slow
def test_the_readme_library_snippet_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"## Library\n\n```python\n(.*?)```", readme, re.S).group(1)
    shutil.copy(need(PHOTOS / "obama_and_biden.jpg"), tmp_path / "photo.jpg")
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    labels = {"happy", "neutral", "sad", "surprise"}
    assert len(lines) == 5, done.stdout  # per face: its result and its crop's label; then fer7's labels
    for result, crop_label in ((lines[0], lines[1]), (lines[2], lines[3])):
        box, rest = result[1:].split(") ", 1)
        assert len(box.split(",")) == 4 and crop_label in labels, done.stdout
        assert rest.split()[0] == crop_label, "the crop recognize() classified gets the same label alone"
    fer7_labels = ast.literal_eval(lines[4])
    assert len(fer7_labels) == 2 and all(isinstance(label, str) for label in fer7_labels), done.stdout
