"""A user's external batch job for the bracket tests: the reference SQL run as separate statements,
each in its own autocommit read (no snapshot across them), outputs written as Parquet.

Usage: python bracket_job.py SOURCE_URL SQL_DIR OUT_DIR [--defect]   (password in $DUALRUN_DB_PASSWORD)
--defect reads the alerts threshold 500 as 400.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa


def main(url: str, sql_dir: str, out_dir: str, defect: bool) -> None:
    engine = sa.create_engine(sa.engine.make_url(url).set(password=os.environ["DUALRUN_DB_PASSWORD"]),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        for output in ("orders_enriched", "order_alerts", "daily_revenue"):
            sql = (Path(sql_dir) / f"{output}.sql").read_text()
            if defect and output == "order_alerts":
                sql = sql.replace("amount > 500", "amount > 400")
            result = conn.exec_driver_sql(sql)
            columns = list(result.keys())
            rows = [dict(zip(columns, row, strict=True)) for row in result]
            pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns}),
                           Path(out_dir) / f"{output}.parquet")  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--defect" in sys.argv[4:])
