"""One home for what dbt defines: relation names from the parsed manifest, rules from the dbt vars.

Python assets never type a schema-qualified table name or copy a dbt var value; they ask the catalog:

    from orchestration.catalog import catalog
    cat = catalog()
    cat.relation("customers")                 # 'main_marts.customers' on DuckDB
    cat.source("privacy", "privacy_requests")  # 'raw.privacy_requests'
    cat.var("features.cart_event_names")      # the list the dbt features use

Relations are `schema.identifier` (no database part: the same manifest serves a warehouse file under
any name, and the engines resolve the schema in the connected database). The schema is the one dbt
builds for the target the manifest was parsed with, so the same code reads `main_marts` on DuckDB and
the PostgreSQL or Spark schema on those targets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from orchestration.settings import PROJECT_DIR, dbt_target_path, load_settings

PROJECT_FILE = PROJECT_DIR / "dbt_project.yml"
_MISSING: Any = object()
# Resource types a Python asset may read or write by name.
_RELATION_TYPES = ("model", "seed", "snapshot")


class CatalogError(KeyError):
    """A name the dbt project does not define (the message says which and where to look)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


@dataclass(frozen=True)
class Catalog:
    """The parsed dbt manifest and the project vars, answering questions by name."""

    manifest: Mapping[str, Any]
    vars: Mapping[str, Any]
    _nodes: dict[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    _sources: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for node in self.manifest.get("nodes", {}).values():
            if node.get("resource_type") in _RELATION_TYPES:
                self._nodes.setdefault(node["name"], node)
        for source in self.manifest.get("sources", {}).values():
            self._sources[(source["source_name"], source["name"])] = source

    # --- relations ---------------------------------------------------------------------------
    def node(self, name: str) -> Mapping[str, Any]:
        """The manifest entry of the model, seed or snapshot called `name`."""
        try:
            return self._nodes[name]
        except KeyError:
            raise CatalogError(
                f"dbt defines no model, seed or snapshot named {name!r} (models/, seeds/, snapshots/; "
                "after adding one, run `make parse`)") from None

    def relation(self, name: str) -> str:
        """`schema.identifier` of a model, seed or snapshot, for SQL run by a Python asset."""
        node = self.node(name)
        return f"{node['schema']}.{node.get('alias') or node['name']}"

    def schema_of(self, name: str) -> str:
        return str(self.node(name)["schema"])

    def source_node(self, source_name: str, table: str) -> Mapping[str, Any]:
        try:
            return self._sources[(source_name, table)]
        except KeyError:
            raise CatalogError(
                f"dbt declares no source table {source_name}.{table} (models/staging/*/_*__sources.yml)"
            ) from None

    def source(self, source_name: str, table: str) -> str:
        """`schema.identifier` of a declared source table (the raw tables the loader writes)."""
        node = self.source_node(source_name, table)
        return f"{node['schema']}.{node.get('identifier') or node['name']}"

    def source_schema(self, source_name: str) -> str:
        """The schema the tables of a declared source live in (`raw` for the landing sources)."""
        for (name, _), node in self._sources.items():
            if name == source_name:
                return str(node["schema"])
        raise CatalogError(f"dbt declares no source {source_name!r} (models/staging/*/_*__sources.yml)")

    def source_columns(self, source_name: str, table: str) -> dict[str, Mapping[str, Any]]:
        """Documented columns of a source table (name -> YAML entry: description, meta)."""
        return dict(self.source_node(source_name, table).get("columns", {}))

    def columns(self, name: str) -> dict[str, Mapping[str, Any]]:
        """Documented columns of a model (name -> YAML entry: description, data_type, meta)."""
        return dict(self.node(name).get("columns", {}))

    def models_in(self, folder: str) -> list[str]:
        """Names of the models whose path lies under models/<folder>/."""
        prefix = folder.rstrip("/") + "/"
        return sorted(n["name"] for n in self._nodes.values()
                      if n.get("resource_type") == "model" and n.get("path", "").startswith(prefix))

    # --- rules -------------------------------------------------------------------------------
    def var(self, dotted: str, default: Any = _MISSING) -> Any:
        """A dbt var from dbt_project.yml by dotted path (`features.cart_event_names`)."""
        value: Any = self.vars
        walked: list[str] = []
        for part in dotted.split("."):
            walked.append(part)
            if not isinstance(value, Mapping) or part not in value:
                if default is not _MISSING:
                    return default
                raise CatalogError(f"dbt_project.yml has no var {'.'.join(walked)!r} (vars: section)")
            value = value[part]
        return value

    # --- added for issue 16 (relation lookups of the Python assets) ---------------------------
    def source_schema(self, source_name: str) -> str:
        """The schema of a declared dbt source (`predictions`: where the prediction asset writes)."""
        schemas = {str(node["schema"]) for (name, _), node in self._sources.items()
                   if name == source_name}
        if len(schemas) != 1:
            raise CatalogError(
                f"dbt declares {'no' if not schemas else 'more than one schema for'} source "
                f"{source_name!r} (models/**/_*__sources.yml)")
        return schemas.pop()

    def raw_schema(self) -> str:
        """The schema the loader writes landing tables to: the one the source YAML of every
        identity source (var `identity.sources`) declares; also home of the loader's own tables
        (`_load_log`, `_load_rejects`)."""
        schemas = {self.source_schema_of_table(entry["source"])
                   for entry in self.var("identity.sources")}
        if len(schemas) != 1:
            raise CatalogError(f"the landing sources declare different schemas {sorted(schemas)} "
                               "(models/staging/*/_*__sources.yml): the loader writes one")
        return schemas.pop()

    def raw_relation(self, table: str) -> str:
        """`raw_schema().table`, for tables the loader writes besides the sources (`_load_log`)."""
        return f"{self.raw_schema()}.{table}"

    def source_schema_of_table(self, table: str) -> str:
        """Schema of the source table called `table`, whatever its source is named."""
        for (_, name), node in self._sources.items():
            if name == table:
                return str(node["schema"])
        raise CatalogError(f"dbt declares no source table named {table!r} "
                           "(models/staging/*/_*__sources.yml)")

    def pii_columns(self, name: str) -> frozenset[str]:
        """Columns of a model its YAML marks `pii: true` (under `meta:` or `config: meta:`)."""
        return frozenset(
            column for column, spec in self.columns(name).items()
            if {**spec.get("meta", {}), **spec.get("config", {}).get("meta", {})}.get("pii"))


def manifest_file() -> Path:
    """The parsed manifest of the dbt target of this process (CDP_DBT_TARGET)."""
    return PROJECT_DIR / dbt_target_path(load_settings().dbt_target) / "manifest.json"


def load_catalog(manifest_path: Path | None = None, project_file: Path | None = None) -> Catalog:
    """A catalog from explicit files (tests use this with a copied project)."""
    path = manifest_path or manifest_file()
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the dbt project has not been parsed (run `make parse`)")
    project = yaml.safe_load((project_file or PROJECT_FILE).read_text()) or {}
    return Catalog(manifest=json.loads(path.read_text()), vars=project.get("vars") or {})


@lru_cache(maxsize=4)
def _cached(manifest_path: str, manifest_mtime: float, project_file: str, project_mtime: float) -> Catalog:
    return load_catalog(Path(manifest_path), Path(project_file))


@lru_cache(maxsize=4)
def _project_vars(project_file: str, project_mtime: float) -> Catalog:
    project = yaml.safe_load(Path(project_file).read_text()) or {}
    return Catalog(manifest={}, vars=project.get("vars") or {})


def dbt_var(dotted: str, default: Any = _MISSING) -> Any:
    """A dbt var from dbt_project.yml, for code that needs no relation (and so no manifest:
    the profile API process); re-read when the file changes."""
    return _project_vars(str(PROJECT_FILE), PROJECT_FILE.stat().st_mtime).var(dotted, default)


def catalog() -> Catalog:
    """The project's catalog, parsing the project first if no manifest exists; re-read when the
    manifest or dbt_project.yml changes (a long-running code server sees `make parse`)."""
    path = manifest_file()
    if not path.exists():
        from orchestration.dbt_project import dbt_project, ensure_manifest  # parse on first use

        ensure_manifest(dbt_project())
    return _cached(str(path), path.stat().st_mtime,
                   str(PROJECT_FILE), PROJECT_FILE.stat().st_mtime)
