"""The catalog answers relation names and dbt vars from the parsed project, and names what is missing."""

import pytest

from orchestration.catalog import CatalogError, catalog


def test_relations_come_from_the_manifest_schema() -> None:
    cat = catalog()
    node = cat.node("customers")
    assert cat.relation("customers") == f"{node['schema']}.{node['alias']}"
    assert cat.relation("customers").split(".")[0] == cat.schema_of("customer_identities")
    assert cat.relation("stg_privacy__requests").split(".")[0] != cat.schema_of("customers")


def test_vars_are_read_by_dotted_path_and_missing_names_are_named() -> None:
    cat = catalog()
    assert isinstance(cat.var("features.cart_event_names"), list)
    assert cat.var("features.no_such_var", default=None) is None
    with pytest.raises(CatalogError, match="features.no_such_var"):
        cat.var("features.no_such_var")
    with pytest.raises(CatalogError, match="no_such_model"):
        cat.relation("no_such_model")
