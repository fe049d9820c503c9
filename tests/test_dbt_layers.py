"""The dbt layers flow one way (staging -> intermediate -> marts), read from the parsed manifest."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from orchestration.settings import PROJECT_DIR

MANIFEST = PROJECT_DIR / "target" / "manifest.json"
MAX_CUSTOMERS_PARENTS = 5


@cache
def manifest() -> dict[str, Any]:
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST} missing: run `make parse` first")
    return json.loads(MANIFEST.read_text())


def models() -> dict[str, dict[str, Any]]:
    return {key: node for key, node in manifest()["nodes"].items()
            if node["resource_type"] == "model"}


def layer(node: dict[str, Any]) -> str:
    """The first folder under models/ (staging, intermediate, marts)."""
    return str(node["fqn"][1])


def parents(unique_id: str) -> list[str]:
    return list(manifest()["parent_map"].get(unique_id, []))


def model_id(name: str) -> str:
    found = [key for key, node in models().items() if node["name"] == name]
    assert len(found) == 1, f"model {name} not found once in the manifest"
    return found[0]


def test_every_model_sits_in_a_known_layer() -> None:
    assert {layer(node) for node in models().values()} == {"staging", "intermediate", "marts"}


def test_no_intermediate_model_refs_a_mart() -> None:
    nodes = models()
    wrong = sorted(
        f"{node['name']} -> {nodes[parent]['name']}"
        for key, node in nodes.items() if layer(node) == "intermediate"
        for parent in parents(key) if parent in nodes and layer(nodes[parent]) == "marts")
    assert not wrong, f"intermediate models reading marts: {wrong}"


def test_only_staging_models_call_source() -> None:
    wrong = sorted(
        f"{node['name']} -> {parent}"
        for key, node in models().items() if layer(node) != "staging"
        for parent in parents(key) if parent.startswith("source."))
    assert not wrong, f"models outside staging calling source(): {wrong}"


def test_customers_has_an_intermediate_model_in_front() -> None:
    customers = parents(model_id("customers"))
    assert len(customers) <= MAX_CUSTOMERS_PARENTS, f"customers reads {len(customers)}: {customers}"
    assert "model.cdp.int_profiles_assembled" in customers


def test_the_purchase_rule_has_one_home() -> None:
    """Only int_transactions_identified reads the shop orders with the excluded order statuses."""
    readers = sorted(node["name"] for node in models().values()
                     if "excluded_order_statuses" in node.get("raw_code", ""))
    assert readers == ["int_transactions_identified"]


def test_marts_layer_models_are_public_marts_or_stay_out_of_the_marts_schema() -> None:
    """A model in the marts layer without an enforced contract (built on marts, not queried, like
    the feature summaries) keeps the intermediate schema, so neither BI nor users see it."""
    wrong = sorted(
        node["name"] for node in models().values()
        if layer(node) == "marts" and not node["config"].get("contract", {}).get("enforced")
        and node["config"].get("schema") != "intermediate")
    assert not wrong, f"marts without a contract in the marts schema: {wrong}"


def test_marts_folders_are_named_for_what_people_query() -> None:
    folder = {node["name"]: node["fqn"][2] for node in models().values() if layer(node) == "marts"}
    assert {folder[name] for name in ("customers", "customer_source_records",
                                      "customer_events")} == {"customers"}
    assert {folder[name] for name in ("customer_identities", "customer_id_merges",
                                      "identity_edges")} == {"identity"}


def test_bi_publication_takes_the_public_marts_only() -> None:
    from orchestration.publication import published_tables

    published = {table.name for table in published_tables(manifest())}
    public = {node["name"] for node in models().values()
              if layer(node) == "marts" and node["config"]["contract"]["enforced"]}
    assert {"customers", "customer_events", "customer_identities", "cdp_kpis"} <= published
    assert public <= published
    assert not published & {"int_customers_features_touched", "int_customers_segment_inputs"}
