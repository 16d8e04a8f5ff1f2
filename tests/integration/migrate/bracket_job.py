"""A user's external batch job for the bracket tests: the reference SQL run as separate statements,
each in its own autocommit read (no snapshot across them), outputs written as Parquet.

Usage: python bracket_job.py SOURCE_URL SQL_DIR OUT_DIR [--defect]   (password in $DUALRUN_DB_PASSWORD)
--defect reads the alerts threshold 500 as 400.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from migrate.examples.shop_orders.nightly import write_outputs

OUTPUTS = ("orders_enriched", "order_alerts", "daily_revenue")


def main(url: str, sql_dir: str, out_dir: str, defect: bool) -> None:
    assert Path(sql_dir).samefile(Path(__file__).parents[3] / "migrate" / "examples" / "shop_orders" / "sql")
    paths = {output: Path(out_dir) / f"{output}.parquet" for output in OUTPUTS}
    write_outputs(url, os.environ["DUALRUN_DB_PASSWORD"], paths, defect=defect)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--defect" in sys.argv[4:])
