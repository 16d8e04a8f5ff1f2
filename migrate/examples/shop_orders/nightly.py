"""A stand-in for your own nightly job, to try the position bracket on the local stack (README, "An
external batch job: the position bracket"): the example's batch SQL run as separate autocommit
reads, outside any snapshot, as a script or a stored procedure would, each output written as
Parquet where the spec's `outputs.X.batch.import.parquet` says.

Usage: python -m migrate.examples.shop_orders.nightly [SPEC] [--busy] [--defect]   (SPEC: ./dualrun.yaml)
--busy seeds the source (1,000 orders) and keeps changing it while the job reads, as a live source
would: those changes make the window. --defect reads the alerts threshold 500 as 400 (a batch bug
for `dualrun batch check` to catch).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

SQL = Path(__file__).with_name("sql")


def write_outputs(url: str, password: str, paths: dict[str, Path], defect: bool = False, pause: float = 0) -> None:
    """Run each output's example SQL (`sql/<output>.sql`) on the source and write it to its path,
    `pause` seconds apart (the source changes in between under --busy)."""
    engine = sa.create_engine(sa.engine.make_url(url).set(password=password), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for output, path in paths.items():
                sql = (SQL / f"{output}.sql").read_text()
                if defect and output == "order_alerts":
                    sql = sql.replace("amount > 500", "amount > 400")
                result = conn.exec_driver_sql(sql)
                columns = list(result.keys())
                rows = [dict(zip(columns, row, strict=True)) for row in result]
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns}), path)
                time.sleep(pause)
    finally:
        engine.dispose()


def main(argv: list[str]) -> None:
    from migrate.spec import load_spec

    named = [a for a in argv if not a.startswith("--")]
    spec = load_spec(named[0] if named else "dualrun.yaml")
    paths = {name: Path(out.batch.import_.parquet) for name, out in spec.outputs.items()
             if out.batch.import_ is not None and out.batch.import_.parquet is not None}  # fmt: skip
    url, password = spec.source.url, spec.source.password()
    if "--busy" not in argv:
        write_outputs(url, password, paths, defect="--defect" in argv)
    else:
        from migrate.examples.shop_orders.workload import Workload

        workload = Workload(url, password, database=spec.source.database, seed=int(time.time()), customers=500)
        workload.seed(orders=1000)
        stop = threading.Event()
        changing = threading.Thread(target=lambda: workload.run(events=10**6, rate=50, stop=stop), daemon=True)
        changing.start()
        try:
            write_outputs(url, password, paths, defect="--defect" in argv, pause=2)
        finally:
            stop.set()
            changing.join(60)
            workload.close()
    print(f"nightly: wrote {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    main(sys.argv[1:])
