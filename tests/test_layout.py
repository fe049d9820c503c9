"""Runtime code, tooling and tests stay apart: tests import nothing from bench/, the runtime
package holds no sample-data generator, and the split packages keep files under ~500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = "bench"
MAX_LINES = 500
# The `cdp generate` command hands over to the sample-data tool; nothing else in the runtime
# package may reach tooling.
RUNTIME_TOOL_IMPORTS = {"orchestration/cli.py"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def bench_references(folder: Path) -> list[str]:
    """Files under `folder` that import bench/ or load a file of it by path."""
    offenders = []
    for path in sorted(folder.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        by_path = any(isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and (node.value == BENCH or node.value.startswith(BENCH + "/"))
                      for node in ast.walk(tree))
        if BENCH in imported_modules(path) or by_path:
            offenders.append(path.relative_to(folder).as_posix())
    return offenders


def test_tests_import_nothing_from_bench() -> None:
    assert bench_references(ROOT / "tests") == []


def test_the_runtime_package_holds_no_tooling() -> None:
    reaching = {path.relative_to(ROOT).as_posix(): imported_modules(path) & {BENCH, "tools"}
                for path in sorted((ROOT / "orchestration").rglob("*.py"))}
    reaching = {name: sorted(found) for name, found in reaching.items() if found}
    assert {name: found for name, found in reaching.items()
            if name not in RUNTIME_TOOL_IMPORTS or found != ["tools"]} == {}
    assert not (ROOT / "orchestration" / "generate.py").exists()


def test_split_packages_keep_files_small() -> None:
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for folder in ("orchestration/ingestion", "tools/sample_data")
             for path in (ROOT / folder).rglob("*.py")}
    assert sizes, "no files found: the packages moved?"
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
