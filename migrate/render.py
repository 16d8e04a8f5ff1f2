"""Every terminal rendering of migrate's results lives here; commands only choose a format.

Only rich is imported here: the results' modules are imported for their types alone, so a
command pays for what it renders, not for every result type (see tests/unit/test_cli_imports.py).
Tables below COMPACT_BELOW columns (an 80-column terminal, a pipe) switch to one block per row,
wrapped at whole words, instead of squeezing a wide column into slivers.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cdc.connect import ConnectorStatus
    from cdc.envelope import ChangeEvent, Tombstone
    from cdc.health import ConnectorHealth
    from comparators.history import RunSummary
    from migrate.asof import SpecReconciliation
    from migrate.batch import BatchRun
    from migrate.bracket import BracketCheck
    from migrate.checklist.model import Checklist
    from migrate.demo import DemoResult
    from migrate.external import OutputCheck
    from migrate.logbatch import LogBatchRun
    from migrate.marks import Bracket
    from migrate.sink import SinkParity
    from migrate.spec import PipelineSpec
    from migrate.stack import StackStatus
    from migrate.stream.status import StreamStatus
    from migrate.verify.model import CdcVerification

COMPACT_BELOW = 120  # columns: below this, tables of long evidence render as blocks
INDENT = 4


def as_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)


def _indented(console: Console, text: str, indent: int = INDENT, style: str = "") -> None:
    """`text` wrapped at whole words to the console's width, every line indented (no trailing padding)."""
    pad = " " * indent
    wrapped = textwrap.fill(text, width=max(console.width, indent + 20), initial_indent=pad, subsequent_indent=pad,
                            break_long_words=False, break_on_hyphens=False)  # fmt: skip
    console.print(Text(wrapped, style=style), soft_wrap=True)


def _block(console: Console, head: str, body: str, foot: str | None = None) -> None:
    """One row of a compact layout: a head line, then the body (and foot) indented, wrapped at whole words."""
    console.print(head, highlight=False)
    _indented(console, body)
    if foot:
        _indented(console, foot, style="dim")


def stack_status(status: StackStatus, console: Console) -> None:
    rows = []
    for s in status.services:
        health = "[green]healthy[/]" if s.healthy else ("[yellow]unhealthy[/]" if s.running else "[red]down[/]")
        if not s.required and not s.running:
            health = "[dim]off[/]"
        rows.append((s.name, str(s.port), health, s.version or "-", str(s.pid or "-"), s.detail))
    if console.width < COMPACT_BELOW:
        console.print("[bold]dualrun stack[/]", highlight=False)
        for name, port, health, version, pid, detail in rows:
            _block(console, f"{health} {name} :{port}  {version}  pid {pid}", detail)
        return
    table = Table(title="dualrun stack", title_justify="left")
    for column in ("service", "port", "health", "version", "pid"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", ratio=1)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def history_runs(runs: Sequence[RunSummary], path: Path, console: Console) -> None:
    """`dualrun history list`: one row per recorded run, newest first; the run id is what
    `dualrun report --run` takes, the batch run what it judged (re-checks of one batch run share
    it, and the parity streak counts it once)."""
    if not runs:
        console.print(f"no runs recorded in {path}", highlight=False)
        return
    # One line a run, never truncated: the run id is what the user copies.
    width = max(len("batch run"), *(len(run.batch_run or "-") for run in runs))
    console.print(f"run id                            recorded at (UTC)    {'batch run':<{width}}  verdict      "
                  "unexplained  comparison", style="bold", highlight=False, soft_wrap=True)  # fmt: skip
    for run in runs:
        at, batch_run = run.recorded_at.strftime("%Y-%m-%d %H:%M:%S"), run.batch_run or "-"
        console.print(f"{run.run_id:<32}  {at}  {batch_run:<{width}}  {run.verdict:<11}  {run.unexplained:>11,}"
                      f"  {run.name}", highlight=False, soft_wrap=True)  # fmt: skip


def connector_config(stored: dict[str, Any], console: Console, name: str | None = None) -> None:
    """A registered connector's config. `stored` is what Connect answers: the connector info of PUT
    /connectors/<name>/config ({name, config, tasks, type}) or GET's bare config map (whose `name`
    key, when present, names it; else `name`)."""
    config = stored["config"] if isinstance(stored.get("config"), dict) else stored
    console.print(f"[bold]connector {stored.get('name') or config.get('name') or name}[/] registered:")
    console.print_json(json.dumps(config, sort_keys=True))


def connector_status(status: ConnectorStatus, console: Console) -> None:
    colour = "green" if status.running else ("red" if status.failed else "yellow")
    console.print(f"connector [bold]{status.name}[/]: [{colour}]{status.state}[/] on {status.worker or '-'}")
    for task in status.tasks:
        console.print(f"  task {task.id}: {task.state}" + (f" - {task.error}" if task.error else ""))
    if not status.tasks:
        console.print("  no tasks")
    if status.error:
        console.print(f"  reason: {status.error}")


def connector_health(health: ConnectorHealth, console: Console) -> None:
    """The connector's status, then its topics and, when it cannot deliver, the cause and the fix."""
    connector_status(health.status, console)
    if health.topics:
        missing = set(health.missing)
        missing_names = ", ".join(f"{t} (missing)" if t in missing else t for t in health.topics)
        _indented(console, f"topics: {missing_names}", 2)
    if health.unchecked:
        _indented(console, f"topics not checked: {health.unchecked}; pass --bootstrap-servers", 2, "yellow")
    if health.stuck:
        _indented(console, f"STUCK: {health.stuck}", 2, "bold red")


def change_event(event: ChangeEvent | Tombstone, console: Console) -> None:
    from cdc.envelope import Tombstone

    if isinstance(event, Tombstone):
        console.print(f"[dim]{event.topic} tombstone key={event.key}[/]")
        return
    values = event.after if event.op != "d" else event.before
    console.print(
        f"{event.topic} {event.op} key={event.key} @ {event.position} "
        f"{'(snapshot) ' if event.snapshot else ''}{values}",
        markup=False,
        highlight=False,
    )


def spec_reconciliation(result: SpecReconciliation, fmt: str = "text") -> str:
    """A whole spec's reconciliation: a summary line per output, then each output's report."""
    from comparators.report import render as render_report

    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    run = result.run
    lines = [
        f"dualrun reconcile {result.spec_name}: {result.verdict.upper()}",
        f"batch run {run.run_id} at {run.where} ({sum(run.rows.values())} rows in {len(run.rows)} outputs)",
        result.progress.describe(),
        "",
    ]
    for name, rec in result.outputs.items():
        lines.append(
            f"  {name:<16} {rec.verdict:<11} batch {rec.left.rows:>8}  stream {rec.right.rows:>8}  "
            f"missing in stream {rec.only_in_left}  missing in batch {rec.only_in_right}  "
            f"mismatched {rec.mismatched_rows}"
        )
    for name, check in result.checks.items():
        lines.extend(_check_lines(name, check))
    if result.bracket is not None:
        lines.extend(_bracket_lines(result.bracket))
    for name, sink in result.sinks.items():
        lines.append(_sink_line(name, sink))
    text = "\n".join(lines) + "\n"
    if fmt == "text":
        for name, rec in result.outputs.items():
            if rec.verdict != "clean":
                text += f"\n== {name} ==\n" + render_report(rec, "text")
        for name, sink in result.sinks.items():
            if sink.reconciliation is not None and sink.verdict != "clean":
                text += f"\n== {name} (sink {sink.table}) ==\n" + render_report(sink.reconciliation, "text")
    elif fmt == "markdown":
        text = "\n".join(f"    {ln}" for ln in lines) + "\n"
        for name, rec in result.outputs.items():
            text += f"\n## {name}\n\n" + render_report(rec, "markdown")
        for name, sink in result.sinks.items():
            if sink.reconciliation is not None:
                text += f"\n## {name} (sink {sink.table})\n\n" + render_report(sink.reconciliation, "markdown")
    return text


def _sink_line(name: str, sink: SinkParity) -> str:
    """The third side of one output: the sink's table vs the output topic at the aligned read point."""
    name = f"{name}@{sink.side}"  # its id in the history and metrics (migrate.sink.side_output)
    if sink.reconciliation is None:
        return f"  {name:<16} {sink.verdict:<11} sink {sink.table}: {sink.reason}"
    rec = sink.reconciliation
    return (f"  {name:<16} {sink.verdict:<11} topic {rec.left.rows:>8}  sink {rec.right.rows:>8}  "
            f"missing in sink {rec.only_in_left}  only in sink {rec.only_in_right}  mismatched "
            f"{rec.mismatched_rows}  (side: sink {sink.table}, {sink.in_flight_keys} key(s) in flight)")  # fmt: skip


def _check_lines(name: str, check: OutputCheck) -> list[str]:
    """An external output's stream side: why it was not compared, or what the tap found."""
    lines = [f"  {name:<16} {check.cause:<11} {check.detail}"] if check.cause else []
    if check.window is not None and check.coverage is not None:
        c = check.coverage
        lines.append(
            f"  {name:<16} {'window':<11} {check.window.size} change event(s) between the offset fences: "
            f"{c.verified} key(s) verified, {c.in_flight} in flight (coverage {c.ratio:.1%})"
        )
        return lines
    tap = check.tap
    if tap is not None:
        lines.append(
            f"  {name:<16} {'tap':<11} {check.source}: {tap.records} records, {tap.without_position} without position, "
            f"{tap.reordered_keys} key(s) with positions going backwards, {check.in_flight_keys} reordered around "
            f"the batch position (in flight, left out)"
        )
        for sample in (tap.without_position_samples if check.cause == "no_positions" else tap.reordered_samples)[:3]:
            lines.append(f"  {'':<16} {'':<11} e.g. {sample.to_dict()}")
    return lines


def cdc_verification(result: CdcVerification, fmt: str = "text") -> str:
    """`dualrun cdc verify`: the verdict, a line per table, then each finding with its cause,
    the connector setting that explains it and sample keys (text and markdown); or JSON."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    lines = [
        f"dualrun cdc verify {result.pipeline}: {result.verdict.upper()}",
        f"connector {result.connector}, log rebuilt as of {result.position}",
    ]
    if result.unevaluated:
        lines.append(f"not evaluated: {result.unevaluated}")
    elif result.verdict == "unevaluated" and result.shortfall:
        lines.append(f"not evaluated: {result.shortfall}")
    for table in result.tables:
        state = "clean" if table.clean else f"{table.differing_rows:,} rows differ"
        unverified = f"  unverified {table.unverified_rows:,}" if table.unverified_rows else ""
        lines.append(
            f"  {table.table:<24} {state:<16} database {table.database_rows:>9,}  log {table.log_rows:>9,}  "
            f"matched {table.matched_rows:>9,}" + unverified
        )
        if table.note:
            lines.append(f"  {'':<24} note: {table.note}")
        for finding in table.findings:
            setting = f" [{finding.setting}]" if finding.setting else ""
            lines.append(f"  {'':<24} {finding.cause}: {finding.rows:,} rows{setting}: {finding.explanation}")
            for sample in finding.samples[:3]:
                lines.append(f"  {'':<24}   e.g. {json.dumps(sample, default=str)}")
    if fmt == "markdown":
        return "\n".join(f"    {ln}" for ln in lines) + "\n"
    return "\n".join(lines) + "\n"


def batch_run(run: BatchRun, warehouse: str) -> str:
    rows = ", ".join(f"{name} {count}" for name, count in run.rows.items())
    return f"batch run {run.run_id} read the source at {run.where} in {run.seconds:.2f}s: {rows} -> {warehouse}"


def log_batch_run(result: LogBatchRun, warehouse: str, compared: dict[str, Any] | None = None) -> str:
    """`dualrun run batch --from-log`: the run over the change log, its position, what each topic held
    and, when compared with the batch run at the same position, each output's verdict."""
    run = result.run
    rows = ", ".join(f"{name} {count}" for name, count in run.rows.items())
    lines = [
        f"log run {run.run_id} rebuilt the captured tables from Kafka at {run.position} ({result.position_source}) "
        f"in {run.seconds:.2f}s: {rows} -> {warehouse}",
        *(f"  {t.table}: {t.rows:,} rows from {t.events:,} change events on {t.topic}" for t in result.tables),
        *(f"  note: {note}" for note in result.notes),
        *(f"  batch vs log {name}: {r.verdict.upper()} ({r.unexplained:,} unexplained)" for name, r in
          (compared or {}).items()),
    ]  # fmt: skip
    return "\n".join(lines)


def bracketed_run(run: BatchRun, bracket: Bracket, warehouse: str) -> str:
    rows = ", ".join(f"{name} {count}" for name, count in run.rows.items())
    return (
        f"batch run {run.run_id} imported from the external job, bracketed by {bracket.begin.position} .. "
        f"{bracket.end.position} ({bracket.seconds:.2f}s): {rows} -> {warehouse}"
    )


def bracket_check(result: BracketCheck) -> str:
    """The text report of an external batch run decided key by key (`migrate.bracket`), then each
    output's reconciliation report when it is not clean."""
    from comparators.report import render as render_report

    b = result.bracket
    lines = [f"{result.verdict.upper()}: batch run {result.run.run_id}, bracket {b.begin.position} .. {b.end.position}"]
    if result.behind is not None:
        return "\n".join([*lines, f"  not compared: {result.behind}"]) + "\n"
    lines += _bracket_lines(result)
    if result.history_ids:
        lines.append(f"  recorded in the run history: {', '.join(result.history_ids.values())}")
    text = "\n".join(lines) + "\n"
    for name, out in result.outputs.items():
        if out.verdict != "clean":
            text += f"\n== {name} ==\n" + render_report(out.reconciliation, "text")
    return text


def _bracket_lines(result: BracketCheck) -> list[str]:
    """The window (where it was read from) and, per output, its keys outside and inside it."""
    from comparators.report import key_text

    lines = []
    window = result.window
    if window is not None:
        per_table = ", ".join(f"{t} {n}" for t, n in window.per_table().items()) or "none"
        lines.append(f"  window: {window.size} change event(s) inside the bracket ({per_table})")
        lines.append(f"  window read from {result.window_from}")
    if result.self_check_not_run:
        lines.append(
            f"  lineage self-check not run: the stream carries no positions ({', '.join(result.self_check_not_run)})"
        )
    for name, out in result.outputs.items():
        counts = out.to_dict()["window_keys"]
        rec = out.reconciliation
        lines.append(
            f"  {name}: {out.verdict}; {out.outside:,} key(s) outside the window compared exactly; "
            f"{out.coverage.in_flight:,} changed during the batch window: {counts['consistent']:,} consistent, "
            f"{counts['defect']:,} defect(s), {counts['unresolvable']:,} unresolvable (the batch did not read at one "
            f"point), {counts['untested']:,} untested; differences: missing in stream {rec.only_in_left:,}, missing "
            f"in batch {rec.only_in_right:,}, mismatched {rec.mismatched_rows:,}, within tolerance "
            f"{rec.within_tolerance_rows:,}"
        )
        keys = out.reconciliation.keys
        for short, label, found in (
            ("defect", "defect in the window (matches no stream version inside the bracket)", out.window_defects),
            ("unresolvable", "unresolvable, the batch did not read at one point", out.outcome("unresolvable")),
        ):
            lines += [f"    {label}: {key_text(zip(keys, key, strict=True))}" for key in found[:_KEYS_SHOWN]]
            if len(found) > _KEYS_SHOWN:
                lines.append(f"    ... and {len(found) - _KEYS_SHOWN:,} more {short} key(s)")
    return lines


_KEYS_SHOWN = 5  # window keys listed per outcome; the rest are counted


def stream_status_line(status: StreamStatus, console: Console) -> None:
    console.print(
        f"[dim]{status.state}[/] {status.events_in} events in ({status.events_per_second:.0f}/s"
        f"{f', idle {status.idle_share:.0%}' if status.idle_share is not None else ''}), "
        f"{status.events_out} changelog rows, {status.transactions} transactions, "
        f"lag {status.lag if status.lag is not None else '?'}, dead letters {status.dead_letters}",
        highlight=False,
    )


def demo_footer(result: DemoResult, spec: PipelineSpec, report: Path) -> str:
    w = result.workload
    lines = [
        f"workload: {w.events} operations at {w.rate:.0f}/s; batch snapshot {result.batch.position}",
        f"HTML report: {report}",
        f"GO needs {spec.checklist.min_parity_streak} clean batch runs in a row (the parity check above counts "
        "them; re-checking a run counts it once, and batch runs at one source position count once); each "
        "`dualrun demo` adds one, `dualrun checklist` re-evaluates",
    ]
    if result.defect:
        lines.append(f"injected defect: {result.defect} (this run is expected to be non-clean)")
    lines += [
        f"state, logs, warehouse and changelogs: {spec.state_dir}",
        "the stack and the streaming job keep running; stop everything with `dualrun stack down`",
    ]
    return "\n".join(lines)


_CHECK_STYLE = {"pass": ("green", "✔ pass"), "fail": ("bold red", "✘ FAIL"), "warn": ("yellow", "! warn"),
                "skipped": ("dim", "- skipped")}  # fmt: skip


def checklist(result: Checklist, console: Console) -> None:
    """The cutover checklist: the verdict in one line, then one row per check.

    At COMPACT_BELOW columns and wider: a table whose evidence column takes the room left and
    wraps at whole words. Narrower: one block per check (status and name, then the evidence and
    threshold indented), so no column is squeezed.
    """
    counts = result.counts()
    if result.unevaluated and all(c.name in result.unevaluated or c.status == "skipped" for c in result.checks):
        # Nothing could be evaluated (e.g. wrong credentials): one line, the first reason, never NO-GO.
        first = next(c.evidence for c in result.checks if c.name in result.unevaluated)
        why = first.removeprefix("could not evaluate: ")
        console.print(f"[bold red]could not evaluate[/] the checklist of {result.spec_name}: {why} (exit 2)",
                      highlight=False, soft_wrap=True)  # fmt: skip
        return
    colour = "green" if result.verdict == "GO" else "red"
    # Exit 2 is neither GO nor NO-GO: the header says so (the data keeps NO-GO, the cautious side).
    header = "COULD NOT EVALUATE" if result.unevaluated else result.verdict
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(f"[bold {colour}]{header}[/]  {result.spec_name}: {tally}", highlight=False)
    if console.width < COMPACT_BELOW:
        for check in result.checks:
            style, label = _CHECK_STYLE.get(check.status, ("", check.status))
            _block(console, f"[{style}]{label}[/] {check.name}", check.evidence, f"threshold: {check.threshold}")
    else:
        table = Table(show_edge=False, pad_edge=False, expand=True)
        table.add_column("status", no_wrap=True)
        table.add_column("check", no_wrap=True)
        table.add_column("evidence", ratio=3, overflow="fold")  # fold only words longer than the column
        table.add_column("threshold", style="dim", ratio=1, overflow="fold")
        for check in result.checks:
            style, label = _CHECK_STYLE.get(check.status, ("", check.status))
            table.add_row(f"[{style}]{label}[/]", check.name, check.evidence, check.threshold)
        console.print(table, highlight=False)
    if result.unevaluated:
        console.print(
            f"[red]could not evaluate {', '.join(result.unevaluated)}[/]: see the evidence above (exit 2)",
            highlight=False,
        )
