"""Which source record ids are personal: the rule comes from dbt (column meta and identity.sources)."""

from __future__ import annotations

from pathlib import Path

from orchestration.privacy.sources import identified_sources


def column_meta(column: dict) -> dict:
    """A manifest column's meta, whether the YAML put it under `meta:` or `config: meta:`."""
    return {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}


def embedded_pii_source_column(column: dict) -> str | None:
    """For a column whose YAML says `meta: {embeds_pii: {source_column: <col>}}`, that column.

    Such a column holds source record ids (alone or as `<source>:<id>`); `<col>` names each
    row's landing source. None for any other column."""
    embeds = column_meta(column).get("embeds_pii")
    if not embeds:
        return None
    if not isinstance(embeds, dict) or not embeds.get("source_column"):
        raise ValueError("meta embeds_pii must be {source_column: <column naming the source>}, "
                         f"got {embeds!r}")
    return str(embeds["source_column"])


def clear_record_id_sources(project_file: Path | None = None) -> frozenset[str]:
    """Sources whose record id is not one of their identifiers (dbt var identity.sources).

    The record ids of every other source (crm_contacts: the CRM contact id, loyalty_members: the
    loyalty id), and of any source not listed there, are personal: treated as the identifier."""
    return frozenset(s.source for s in identified_sources(project_file)
                     if s.staging_record_id not in s.identifier_columns)


def sql_string_list(values: frozenset[str]) -> str:
    """`'a', 'b'` for an SQL `in (...)`; `null` (matches nothing) when empty."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) or "null"
