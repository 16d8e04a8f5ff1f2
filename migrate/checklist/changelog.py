"""The change-log check: the last `dualrun cdc verify` found the log complete, recently."""

from __future__ import annotations

from datetime import UTC, datetime

from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import DualrunError


def cdc_complete(ctx: Context) -> CheckResult:
    """The latest change-log verification of this pipeline is clean and younger than the batch window.

    Example: `verified 2h 5m ago at mysql-bin.000012:4711: 3 table(s) clean` passes at 24h;
    `latest verification: 2 rows differ in shop.orders (lost_delete)` fails; none recorded warns
    (run `dualrun cdc verify`).
    """
    from migrate.verify import history

    window = ctx.spec.checklist.batch_window_hours
    r = ctx.begin("cdc_complete", f"latest `cdc verify` clean and < {window:g}h old")
    try:
        latest = history.latest(ctx.spec.history_path, ctx.spec.name)
    except DualrunError as exc:
        return r.failed(str(exc))
    if latest is None:
        return r.warned("the change log was never verified against the source; run `dualrun cdc verify`")
    now = datetime.fromtimestamp(ctx.now, UTC).replace(tzinfo=None)
    age_h = (now - latest.recorded_at).total_seconds() / 3600
    result = latest.result
    where = result.get("position") or {}
    at = f"{where.get('file')}:{where.get('pos')}" if where.get("file") else "an unknown position"
    age = f"{int(age_h)}h {int(age_h * 60) % 60}m ago"
    if latest.verdict == "unevaluated":
        return r.failed(f"latest verification ({age}) could not be evaluated: "
                        f"{result.get('unevaluated') or 'no row of some table was within the log reach'}")  # fmt: skip
    if latest.verdict != "clean":
        parts = []
        for table in result.get("tables", []):
            causes = ", ".join(f"{f['rows']:,} {f['cause']}" for f in table.get("findings", []))
            if causes:
                parts.append(f"{table['table']} ({causes})")
        return r.failed(f"latest verification ({age}) at {at}: " + "; ".join(parts))
    if age_h > window:
        return r.failed(f"latest clean verification is {age}, older than the {window:g}h batch window")
    return r.passed(f"verified {age} at {at}: {len(result.get('tables', []))} table(s) clean")
