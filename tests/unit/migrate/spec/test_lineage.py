"""Lineage in the spec: per output and source table, expressions or `all`, checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrate.examples.order_enricher.runner import SPEC
from migrate.spec import example_spec_path, load_spec
from migrate.spec.lineage import ALL
from tests.unit.migrate.spec.test_load import changed, load_fails, write

LINEAGE = "outputs.account_balance.lineage"


def test_expressions_and_the_coarse_form_load(tmp_path: Path) -> None:
    data = changed(LINEAGE, {"ledger.transfers": {"account_id": "COALESCE(to_account, from_account)"}})
    data["cdc"]["tables"] = ["ledger.transfers", "ledger.accounts"]
    data["outputs"]["account_balance"]["lineage"]["ledger.accounts"] = "all"
    lineage = load_spec(write(tmp_path, data)).outputs["account_balance"].lineage
    assert lineage == {"ledger.transfers": {"account_id": "COALESCE(to_account, from_account)"}, "ledger.accounts": ALL}


def test_the_kafka_streams_example_declares_lineage_and_the_shop_example_none() -> None:
    kstreams = load_spec(SPEC).outputs
    assert kstreams["orders_enriched"].lineage == {
        "shop.orders": {"order_id": "order_id"}, "shop.customers": {"customer_id": "id"},
    }  # fmt: skip
    assert kstreams["daily_revenue"].lineage == {
        "shop.orders": {"customer_id": "customer_id", "order_day": "CAST(created_at AS DATE)"},
    }  # fmt: skip
    assert all(not out.lineage for out in load_spec(example_spec_path()).outputs.values())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ledger.accounts": "all"}, f"{LINEAGE}.ledger.accounts: not a captured table; add it to cdc.tables "
         "(ledger.transfers) or remove it from the lineage"),
        ({"transfers": "all"}, f"{LINEAGE}: 'transfers': name the source table as database.table"),
        ({"ledger.transfers": "some"}, f"{LINEAGE}: ledger.transfers: expected `all` or a mapping"),
        ({"ledger.transfers": {}}, f"{LINEAGE}: ledger.transfers: map at least one output column"),
        ({"ledger.transfers": {"account_id": "id +"}}, f"{LINEAGE}: ledger.transfers.account_id: 'id +' is not a "
         "SQL expression: syntax error"),
        ({"ledger.transfers": {"account_id": "id) FROM x; DROP TABLE y; SELECT (1"}}, "is not one SQL expression"),
        ({"ledger.transfers": {"account_id": " "}}, "ledger.transfers.account_id: an empty expression"),
    ],
)  # fmt: skip
def test_a_wrong_lineage_fails_at_load_in_one_line(tmp_path: Path, value: Any, message: str) -> None:
    load_fails(write(tmp_path, changed(LINEAGE, value)), message)
