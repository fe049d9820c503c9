"""dbt models as Dagster assets, with a translator that gives them groups, owners and descriptions."""

import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource
from dagster_dbt import dbt_assets
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

from orchestration import segments
from orchestration.dbt_project import (dbt_env_applied, dbt_executable, dbt_project,
                                       ensure_manifest, manifest_path)
from orchestration.inputs.model import INPUT_SOURCE_PREFIX
from orchestration.settings import PROFILES_DIR, dbt_target_runs_kept
from orchestration.warehouse import WAREHOUSE_POOL

__all__ = ["PROJECT", "TRANSLATOR", "cdp_dbt_models", "dbt_resource", "ensure_manifest",
           "prune_dbt_targets", "relation_input_specs", "segment_declarations_valid"]

# Folder under models/ (or its first sub-folder) -> Dagster group.
GROUP_BY_FOLDER = {
    "staging": "staging",
    "identity": "identity",
    "profiles": "profiles",
    "customers": "profiles",  # marts/customers: the golden profile and its satellites
    "features": "features",
    "segments": "segments",
    "kpis": "segments",  # marts/kpis: cdp_kpis, beside the KPI report it feeds
    "activation": "activation",
    "experiments": "activation",  # experiment assignments and results, beside the syncs
    "privacy": "privacy",
    "quality": "quality",
}
OWNER_BY_GROUP = {
    "staging": "team:data-engineering",
    "identity": "team:data-engineering",
    "profiles": "team:data-engineering",
    "features": "team:analytics",
    "segments": "team:marketing-ops",
    "activation": "team:marketing-ops",
    "privacy": "team:privacy",
    "marts": "team:analytics",
    "reference": "team:data-engineering",
}
# dagster-dbt gives each dbt invocation its own folder under target/, named
# `<op>-<run id[:7]>-<random[:7]>` (or just the random part): manifest, compiled SQL, logs. One
# `cdp run` makes three (cdp_dbt_models, _2, _3: the job runs the dbt models in three steps
# around the Python assets), about 20 MB. Only folders of that shape are ever pruned.
INVOCATION_FOLDER = re.compile(r"^(?:.+-(?P<run>[0-9a-f]{7})-)?(?P<random>[0-9a-f]{7})$")


def group_for(dbt_resource_props: Mapping[str, Any]) -> str:
    fqn: list[str] = list(dbt_resource_props.get("fqn", []))
    folders = fqn[1:-1]
    for folder in reversed(folders):
        if folder in GROUP_BY_FOLDER:
            return GROUP_BY_FOLDER[folder]
    if dbt_resource_props.get("resource_type") == "seed":
        return "reference"
    return folders[0] if folders else "default"


def relation_input_name(dbt_resource_props: Mapping[str, Any]) -> str | None:
    """The input name of a source generated for a `from: relation` declaration (source
    `input_<name>` outside the raw schema), else None."""
    source_name = str(dbt_resource_props.get("source_name") or "")
    if source_name.startswith(INPUT_SOURCE_PREFIX) and dbt_resource_props.get("schema") != "raw":
        return source_name.removeprefix(INPUT_SOURCE_PREFIX)
    return None


def relation_input_specs() -> list[dg.AssetSpec]:
    """External assets `input/<name>` (group ingestion) of the valid `from: relation` inputs:
    tables already in the warehouse, read in place; none when a declaration is invalid (the
    definitions warn)."""
    from orchestration.inputs import InputError, load_inputs

    try:
        loaded = load_inputs()
    except InputError:
        return []
    return [dg.AssetSpec(key=dg.AssetKey(["input", item.declaration.input]), group_name="ingestion",
                         description=" ".join(item.declaration.description.split()))
            for item in loaded if item.declaration.from_.relation is not None]


class CdpTranslator(DagsterDbtTranslator):
    """Groups by model folder; sources map onto the loader's `raw/<table>` assets on every dbt
    target (the loader writes the raw tables into the target itself)."""

    def __init__(self, target: str = "duckdb",
                 settings: DagsterDbtTranslatorSettings | None = None) -> None:
        super().__init__(settings=settings)
        self.target = target

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        declared = dbt_resource_props.get("meta", {}).get("dagster", {}).get("asset_key")
        if dbt_resource_props.get("resource_type") == "source" and not declared:
            relation_input = relation_input_name(dbt_resource_props)
            if relation_input:  # a warehouse table declared in inputs/: no loader asset
                return dg.AssetKey(["input", relation_input])
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot"):
            # Model names are unique in a dbt project: the key is the name people query.
            return dg.AssetKey([dbt_resource_props.get("alias") or dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "source":
            if dbt_resource_props.get("schema") == "raw" or relation_input_name(dbt_resource_props):
                return "ingestion"
            return "features"
        return group_for(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        owner = OWNER_BY_GROUP.get(group_for(dbt_resource_props))
        return [owner] if owner else None

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        description = dbt_resource_props.get("description") or ""
        return description or super().get_description(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        tags["layer"] = group_for(dbt_resource_props)
        return tags


PROJECT = dbt_project()
TRANSLATOR = CdpTranslator(target=PROJECT.target or "duckdb",
                           settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=manifest_path(PROJECT),
    project=PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    pool=WAREHOUSE_POOL,
)
def cdp_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Build (run + test) the selected dbt models; test results become asset checks.

    dbt unit tests are development checks (their fixtures carry fixed dates, so an as-of run on
    historical data would fail them): production builds leave them out, tests/test_features.py
    runs every one of them."""
    problem = segments.compile_for_run()  # a run never builds stale segments
    if problem:
        context.log.error(f"segments not recompiled, the last good model is built: {problem}")
    invocation = dbt.cli(["build", "--exclude-resource-type", "unit_test"], context=context)
    try:
        yield from with_figures(context, invocation)
    finally:
        removed = prune_dbt_targets(invocation.target_path, dbt_target_runs_kept())
        if removed:
            context.log.info(f"pruned {len(removed)} dbt target folders of older runs")


# Counted after dbt has exited: dagster-dbt's `fetch_row_counts()` counts through the dbt adapter
# while the dbt process still runs, and on DuckDB that process holds the file's only write lock.
COUNTED_MATERIALIZATIONS = ("table", "incremental", "snapshot", "seed")
MEMBERSHIPS_MODEL = "segment_memberships"  # its asset gets a member count per segment


def with_figures(context: dg.AssetExecutionContext,
                 invocation: DbtCliInvocation) -> Iterator[Any]:
    """The invocation's events, its model outputs held back until dbt has finished and then given
    `dagster/row_count` (tables, incrementals, snapshots, seeds: never views) and, on the segment
    memberships model, one `segment/<name>` member count per segment, so the asset pages plot
    them over runs. Outputs are passed on unchanged when dbt fails or the counts cannot be read."""
    outputs: list[dg.Output] = []
    try:
        for event in invocation.stream():
            if isinstance(event, dg.Output):
                outputs.append(event)
            else:
                yield event
    except Exception:
        yield from outputs
        raise
    try:
        figures = output_figures(invocation.manifest, outputs)
    except Exception as error:  # noqa: BLE001 - figures are a nicety, never a failed build
        context.log.warning(f"row counts not recorded: {type(error).__name__}: {error}")
        figures = {}
    for output in outputs:
        extra = figures.get(output.output_name)
        yield output.with_metadata({**output.metadata, **extra}) if extra else output


def output_figures(manifest: Mapping[str, Any],
                   outputs: Sequence[dg.Output]) -> dict[str, dict[str, dg.MetadataValue]]:
    """Per output name, the figures read from the warehouse (one read-only session)."""
    from orchestration.warehouse import WarehouseResource

    nodes = manifest.get("nodes", {})
    figures: dict[str, dict[str, dg.MetadataValue]] = {}
    with WarehouseResource().open(read_only=True) as wh:
        for output in outputs:
            unique_id = getattr(output.metadata.get("unique_id"), "value", None)
            node = nodes.get(unique_id or "", {})
            relation = node.get("relation_name")
            if not relation or node.get("config", {}).get("materialized") not in \
                    COUNTED_MATERIALIZATIONS:
                continue
            entry = {"dagster/row_count": dg.MetadataValue.int(
                int(wh.scalar(f"select count(*) from {relation}") or 0))}
            if node.get("name") == MEMBERSHIPS_MODEL:
                rows = wh.rows(f"select segment_name, count(*) from {relation} "
                               "group by segment_name order by segment_name")
                entry.update({f"segment/{name}": dg.MetadataValue.int(int(count))
                              for name, count in rows})
            figures[output.output_name] = entry
    return figures


def prune_dbt_targets(current: Path, keep_runs: int) -> list[Path]:
    """Delete the invocation folders beside `current` except those of the `keep_runs` newest runs
    (the run of `current` always among them); target/ itself (manifest.json and
    partial_parse.msgpack of `dbt parse`, a plain dbt build's compiled/) is left alone."""
    runs: dict[str, list[Path]] = {}
    for path in current.parent.iterdir():
        match = INVOCATION_FOLDER.match(path.name)
        if match and path.is_dir() and not path.is_symlink():
            runs.setdefault(match["run"] or match["random"], []).append(path)
    current_match = INVOCATION_FOLDER.match(current.name)
    current_run = (current_match["run"] or current_match["random"]) if current_match else None
    newest_first = sorted(
        runs, reverse=True,
        key=lambda run: (run == current_run, max(p.stat().st_mtime_ns for p in runs[run])))
    removed = [path for run in newest_first[max(keep_runs, 1):] for path in runs[run]]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


class CdpDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, each invocation given `dbt_env()` (settings as absolute paths)
    explicitly instead of relying on variables exported into the process at import."""

    def cli(self, args: Sequence[str], **kwargs: Any) -> DbtCliInvocation:
        with dbt_env_applied():
            return super().cli(args, **kwargs)


def dbt_resource() -> DbtCliResource:
    return CdpDbtCliResource(
        project_dir=PROJECT,
        dbt_executable=dbt_executable(),
        profiles_dir=str(PROFILES_DIR),
        target=PROJECT.target,
    )


SEGMENT_MEMBERS = dg.AssetKey([segments.COMPILED_MODEL.stem])


@dg.asset_check(
    asset=SEGMENT_MEMBERS,
    name="segment_declarations_valid",
    description="segments/*.yml is valid and the compiled segment models match it; a failure "
                "names the file, segment and field (the last good compiled model is built).",
)
def segment_declarations_valid() -> dg.AssetCheckResult:
    problem = segments.declaration_problem()
    return dg.AssetCheckResult(passed=problem is None, severity=dg.AssetCheckSeverity.ERROR,
                               description=problem)
