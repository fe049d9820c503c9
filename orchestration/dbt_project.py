"""The dbt project as Dagster sees it, and the one prepare step (segments compiled, dbt parsed)
that runs before the definitions load: nothing here builds assets, so it imports without a
manifest."""

import contextlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration import segments
from orchestration.inputs import compiler as inputs_compiler
from orchestration.settings import PROFILES_DIR, PROJECT_DIR, dbt_target_path, load_settings


def dbt_project() -> DbtProject:
    settings = load_settings()
    return DbtProject(
        project_dir=PROJECT_DIR,
        profiles_dir=PROFILES_DIR,
        target=settings.dbt_target,
        target_path=dbt_target_path(settings.dbt_target),
    )


def dbt_executable() -> str:
    """The dbt installed beside this Python (the virtualenv), so PATH need not include it."""
    return str(Path(sys.executable).with_name("dbt"))


def dbt_env() -> dict[str, str]:
    """The environment of every dbt invocation: this process's, with the CDP_* settings as
    absolute paths. `cdp prepare` (make parse) and the pipeline's dbt steps use this same env
    and the same `--target`, so dbt's partial parse of `make parse` stays valid in a run (dbt
    parses everything again when a profile value, an env var it read or `--target` differs)."""
    return {**os.environ, **load_settings().env()}


@contextlib.contextmanager
def dbt_env_applied() -> Iterator[None]:
    """`dbt_env()` in os.environ for the duration of one dbt invocation, then restored
    (dagster-dbt builds the subprocess env and the in-process adapter from os.environ)."""
    updates = load_settings().env()
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        ensure_engine_server()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ensure_engine_server() -> None:
    """dbt's `spark` target reaches a Spark Thrift server: start the local one (or check the
    remote CDP_SPARK_HOST) before dbt connects. Other targets need nothing."""
    if load_settings().dbt_target == "spark":
        from orchestration.warehouse.spark_server import ensure_running

        ensure_running()


def prepare_project(project: DbtProject | None = None) -> str | None:
    """The explicit prepare step (`cdp prepare`, `make parse`, `cdp run` before it loads the
    definitions): compile the segment YAML into its dbt model, then `dbt parse` with the
    pipeline's env into target/ (manifest.json, partial_parse.msgpack). Returns the segment
    error when the YAML is invalid (the last good compiled model stays); a dbt parse failure
    raises CalledProcessError."""
    project = project or dbt_project()
    warn_on_input_problems(inputs_compiler.compile_for_run())
    problem = segments.compile_for_run()
    subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(project.project_dir), "--profiles-dir",
         str(project.profiles_dir), "--target", project.target or "duckdb",
         "--target-path", str(project.target_path), "--quiet"],
        check=True, cwd=project.project_dir, env=dbt_env())
    return problem


def warn_on_input_problems(problem: str | None) -> None:
    """An invalid input declaration keeps the last good generated models: say so loudly (stderr
    and a warning) and let the run go on."""
    if problem:
        message = ("input declarations NOT compiled, the last good generated models stay: "
                   + problem)
        print(f"WARNING: {message}", file=sys.stderr)
        warnings.warn(message, stacklevel=2)


def ensure_manifest(project: DbtProject) -> Path:
    """The manifest for run-time callers (catalog, publication...): parsed first, with the
    pipeline's env, when none exists yet. Loading the definitions never parses (`manifest_path`)."""
    if not project.manifest_path.exists():
        prepare_project(project)
    return project.manifest_path


def manifest_path(project: DbtProject) -> Path:
    """The parsed manifest; under `dagster dev` the project is prepared first (as
    `DbtProject.prepare_if_dev` does, with the pipeline's env). Elsewhere nothing runs at import:
    a missing manifest is an error saying which step makes it."""
    if project.preparer.using_dagster_dev():
        prepare_project(project)
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"dbt manifest {project.manifest_path} not found: run `make parse` (or `cdp prepare`)"
            " before loading the Dagster definitions")
    return project.manifest_path
