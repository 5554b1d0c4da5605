"""The shape of the code: three floors (jobs -> behaviorlm -> udfs), no stage importing another, no import circle,
the encoder core free of Spark, and files and functions short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

STAGES = {"ingest", "embed_items", "embed_users", "similar_users", "segments", "recommend", "predict", "search",
          "intents", "complete", "evaluate", "report"}  # fmt: skip
# Only these know every stage.
ORCHESTRATORS = {"jobs.cli", "jobs.run"}


def modules() -> dict[str, Path]:
    found = {}
    for package in ("behaviorlm", "jobs", "udfs"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {i for i in imports(path) if i in mods} for name, path in mods.items()}


def test_floors_and_no_stage_imports_another():
    for name, deps in graph().items():
        top = name.split(".")[0]
        if top == "udfs":
            assert not {d for d in deps if not d.startswith("udfs")}, f"{name} (executor side) imports {deps}"
        if top == "behaviorlm":
            assert not {d for d in deps if d.startswith("jobs")}, f"library module {name} imports a job: {deps}"
        if top == "jobs" and name not in ORCHESTRATORS:
            stages = {d for d in deps if d.startswith("jobs.") and d.split(".")[1] in STAGES}
            assert not stages, f"stage {name} imports stage(s) {stages}"


def test_no_import_circle():
    deps = graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in deps.get(node, ()):
            assert state.get(nxt) != 1, f"import circle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in deps:
        if node not in state:
            visit(node, [])


def test_encoder_core_has_no_spark():
    assert not {i for i in imports(REPO / "udfs" / "encoder.py") if i.startswith("pyspark")}


def test_files_and_functions_are_short():
    for path in [*modules().values(), *(REPO / "tests").glob("*.py"), *(REPO / "bench").glob("*.py")]:
        lines = path.read_text().splitlines()
        assert len(lines) <= 350, f"{path.relative_to(REPO)} has {len(lines)} lines"
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(REPO)}:{node.lineno} {node.name} has {length} lines"
