"""JSON rendering: `Reconciliation.to_dict()`, stable key order, exact Decimals as strings."""

from __future__ import annotations

import json

from comparators.result import Reconciliation


def render_json(result: Reconciliation) -> str:
    return json.dumps(result.to_dict(), indent=2) + "\n"
