"""The generic batch job on the real MariaDB: a user's own tables and SQL, types from the result set,
exact decimals, and reconciliation of an output name dualrun has never heard of."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cdc.position import Position
from comparators import FrameSource, Settings, reconcile
from migrate.asof import reconcile_spec
from migrate.batch import load_run, run_batch, run_output
from migrate.errors import DualrunError
from migrate.sides import stream_side
from migrate.spec import PipelineSpec, parse_spec
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database

LEDGER_SQL = """
    SELECT account_id, SUM(amount) AS balance, COUNT(*) AS transfers, MAX(booked_on) AS last_day,
           MAX(booked_at) AS last_at, MIN(memo) AS memo
    FROM transfers WHERE memo LIKE 'pay%' GROUP BY account_id
"""


def ledger_spec(stack: StackConfig, database: str, state_dir: Path, outputs: dict[str, Any]) -> PipelineSpec:
    raw = {
        "name": "ledger",
        "state_dir": str(state_dir),
        "source": {
            "url": f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}",
            "password_env": "DUALRUN_DB_PASSWORD",
        },
        "cdc": {
            "connect_url": stack.connect_url, "connector": database, "topic_prefix": database,
            "tables": [f"{database}.transfers"], "user": stack.debezium_user,
            "password_env": "DUALRUN_DEBEZIUM_PASSWORD",
        },
        "kafka": {"bootstrap_servers": stack.bootstrap_servers},
        "stream": {"group": f"{database}-job"},
        "outputs": outputs,
        "compare": {"wait_seconds": 0},
    }  # fmt: skip
    spec = parse_spec(raw, "ledger.yaml", state_dir)
    return spec.with_changes(source={"default_password": stack.db_password})


@pytest.fixture
def ledger(db: Database, unique: Callable[[str], str]) -> str:
    database = unique("ledger")
    db.run(
        f"CREATE DATABASE `{database}`",
        f"""CREATE TABLE `{database}`.transfers (id BIGINT UNSIGNED PRIMARY KEY, account_id INT UNSIGNED NOT NULL,
            amount DECIMAL(30,10) NOT NULL, booked_on DATE NOT NULL, booked_at DATETIME(6) NOT NULL,
            memo VARCHAR(40) NOT NULL, small TINYINT NOT NULL, ratio DOUBLE NOT NULL)""",
        f"""INSERT INTO `{database}`.transfers VALUES
            (1, 7, 12345678901234567890.0123456789, '2026-11-30', '2026-11-30 10:00:00.123456', 'pay rent', -3, 0.1),
            (2, 7, 0.0000000001, '2026-12-01', '2026-12-01 09:00:00.000001', 'pay back', 4, 0.2),
            (18446744073709551615, 4294967295, -1.5, '2026-12-01', '2026-12-01 00:00:00', 'payday', 127, 0.3),
            (4, 9, 100, '2026-12-01', '2026-12-01 00:00:00', 'refund', 0, 0.4)""",
    )
    return database


def test_types_come_from_the_result_set_and_decimals_stay_exact(
    stack: StackConfig, ledger: str, tmp_path: Path
) -> None:
    spec = ledger_spec(stack, ledger, tmp_path, {
        "balances": {"keys": ["account_id"], "batch": {"sql": LEDGER_SQL}, "stream": {"topic": "balances"}},
        "raw": {"keys": ["id"], "batch": {"sql": "SELECT * FROM transfers;"}, "stream": {"topic": "raw"},
                "tolerances": {"ratio": "abs:0.001"}},
    })  # fmt: skip
    run = run_batch(spec)
    assert run.rows == {"balances": 2, "raw": 4}
    raw = run_output(spec.warehouse_path, run.run_id, "raw")
    assert raw.schema == pa.schema([
        ("id", pa.uint64()), ("account_id", pa.uint32()), ("amount", pa.decimal128(30, 10)), ("booked_on", pa.date32()),
        ("booked_at", pa.timestamp("us")), ("memo", pa.string()), ("small", pa.int8()), ("ratio", pa.float64()),
    ])  # fmt: skip
    rows = {r["id"]: r for r in raw.to_pylist()}
    assert rows[1]["amount"] == Decimal("12345678901234567890.0123456789")  # 30 digits, none lost
    assert rows[18446744073709551615]["account_id"] == 4294967295 and rows[1]["small"] == -3
    assert rows[1]["booked_at"] == datetime(2026, 11, 30, 10, 0, 0, 123456)

    balances = run_output(spec.warehouse_path, run.run_id, "balances")
    assert balances.schema.field("balance").type == pa.decimal128(38, 10)  # SUM widens past 38: capped, checked
    assert balances.schema.field("transfers").type == pa.int64()
    assert balances.schema.field("last_day").type == pa.date32()
    by_account = {r["account_id"]: r for r in balances.to_pylist()}
    # `LIKE 'pay%'` reached the server as written: 'refund' (account 9) is filtered out.
    assert set(by_account) == {7, 4294967295}
    assert by_account[7]["balance"] == Decimal("12345678901234567890.0123456790")
    assert by_account[7]["last_day"] == date(2026, 12, 1)


def test_column_overrides_and_what_does_not_fit(stack: StackConfig, ledger: str, tmp_path: Path) -> None:
    sql = "SELECT account_id, SUM(amount) AS balance FROM transfers GROUP BY account_id"
    exact = ledger_spec(
        stack,
        ledger,
        tmp_path,
        {
            "b": {
                "keys": ["account_id"],
                "stream": {"topic": "b"},
                "batch": {"sql": sql, "columns": {"balance": "DECIMAL(38,10)", "account_id": "BIGINT"}},
            }
        },
    )
    run = run_batch(exact)
    table = run_output(exact.warehouse_path, run.run_id, "b")
    assert table.schema.field("balance").type == pa.decimal128(38, 10)
    assert table.schema.field("account_id").type == pa.int64()

    narrow = ledger_spec(
        stack,
        ledger,
        tmp_path / "n",
        {
            "b": {
                "keys": ["account_id"],
                "stream": {"topic": "b"},
                "batch": {"sql": sql, "columns": {"balance": "DECIMAL(12,2)"}},
            }
        },
    )
    with pytest.raises(DualrunError, match=r"outputs.b.batch: column balance does not fit decimal128\(12, 2\)"):
        run_batch(narrow)
    unknown = ledger_spec(
        stack,
        ledger,
        tmp_path / "u",
        {
            "b": {
                "keys": ["account_id"],
                "stream": {"topic": "b"},
                "batch": {"sql": sql, "columns": {"total": "BIGINT"}},
            }
        },
    )
    with pytest.raises(DualrunError, match=r"outputs.b.batch.columns: total not in the query's result"):
        run_batch(unknown)
    wrong = ledger_spec(
        stack,
        ledger,
        tmp_path / "w",
        {
            "b": {
                "keys": ["account_id"],
                "stream": {"topic": "b"},
                "batch": {"sql": "SELECT account_id, nope FROM transfers"},
            }
        },
    )
    with pytest.raises(DualrunError, match="outputs.b.batch: the source rejected the query: Unknown column 'nope'"):
        run_batch(wrong)


def test_an_output_of_any_name_reconciles_against_an_empty_stream_side(
    stack: StackConfig, ledger: str, tmp_path: Path
) -> None:
    spec = ledger_spec(stack, ledger, tmp_path, {
        "account_balance": {"keys": ["account_id"], "batch": {"sql": LEDGER_SQL}, "stream": {"topic": "ab"}},
    })  # fmt: skip
    run = run_batch(spec)
    assert load_run(spec.warehouse_path, run.run_id).rows == {"account_balance": 2}
    batch = run_output(spec.warehouse_path, run.run_id, "account_balance")
    side = stream_side(spec, "account_balance", run.position, batch.schema)
    # An empty changelog shaped like the batch output (no KeyError): both rows missing in the stream.
    found = reconcile(FrameSource(batch, name="batch"), side, ["account_id"], settings=Settings(allow_empty=True))
    assert found.verdict == "differences" and {k: n for k, n in found.causes.items() if n} == {"missing_in_stream": 2}

    # No stream ran: reconciliation says the stream is behind, never a false verdict.
    result = reconcile_spec(spec, run.run_id, wait=0, record=False)
    assert result.verdict == "stream_behind" and result.outputs == {}

    # An output the spec gained after the run is a one-line error, not a CatalogException.
    grown = spec.with_changes(
        outputs={"later": {"keys": ["id"], "batch": {"sql": "SELECT id FROM transfers"}, "stream": {"topic": "later"}}}
    )
    with pytest.raises(DualrunError, match="warehouse .* has no output 'later': the batch job never wrote it"):
        run_output(grown.warehouse_path, run.run_id, "later")


def test_the_noise_rerun_runs_in_the_same_snapshot(stack: StackConfig, ledger: str, tmp_path: Path) -> None:
    spec = ledger_spec(stack, ledger, tmp_path, {
        "b": {"keys": ["account_id"], "batch": {"sql": LEDGER_SQL}, "stream": {"topic": "b"}},
    })  # fmt: skip
    run = run_batch(spec)
    first = run_output(spec.warehouse_path, run.run_id, "b").sort_by("account_id")
    rerun = run_output(spec.warehouse_path, run.run_id + "~rerun", "b").sort_by("account_id")
    assert first.equals(rerun) and first.num_rows == 2
    assert isinstance(run.position, Position) and run.position.file


def test_a_captured_table_missing_from_the_source_fails_the_batch_in_one_line_naming_it_and_the_spec(
    stack: StackConfig, ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from click.testing import CliRunner

    from migrate.cli import cli

    spec = ledger_spec(stack, ledger, tmp_path, {
        "account_balance": {"keys": ["account_id"], "batch": {"sql": LEDGER_SQL}, "stream": {"topic": "ab"}},
    })  # fmt: skip
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["cdc"]["tables"] = [f"{ledger}.transfers", f"{ledger}.transfer"]  # a typo
    path = tmp_path / "ledger.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("DUALRUN_DB_PASSWORD", stack.db_password)
    result = CliRunner().invoke(cli, ["run", "batch", "--spec", str(path)])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.count("\n") == 0, line
    assert str(path) in line and f"cdc.tables: {ledger}.transfer does not exist in the source" in line
