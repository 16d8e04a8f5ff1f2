"""The bracket's try-it spec (README): it loads, its job's output files resolve against the spec
file wherever dualrun runs, and every output has a lineage over captured tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from migrate.examples.shop_orders import nightly
from migrate.spec import load_spec

SPEC = Path(nightly.__file__).with_name("spec-bracket.yaml")


def test_the_try_it_spec_resolves_its_outputs_against_the_spec_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = tmp_path / "try" / "dualrun.yaml"
    copied.parent.mkdir()
    shutil.copy(SPEC, copied)
    monkeypatch.chdir(tmp_path)  # dualrun run from elsewhere than the spec's folder
    spec = load_spec(copied)
    for name, out in spec.outputs.items():
        assert out.batch.import_ is not None and out.batch.import_.parquet == str(
            copied.parent / "out" / f"{name}.parquet"
        )
        assert out.lineage and set(out.lineage) <= set(spec.cdc.tables)
    assert spec.warehouse_path == tmp_path / ".dualrun" / "warehouse.duckdb"  # state_dir: the current directory
