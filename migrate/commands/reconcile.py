"""`dualrun reconcile LEFT RIGHT --key COL ...`: reconcile two outputs and exit 0/1/2."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrate.commands.options import MEMORY_LIMIT, REPORT_FORMATS
from migrate.commands.output import emit_report

if TYPE_CHECKING:
    from comparators.spec import InFlight


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    from comparators.spec import parse_assignments

    return dict(parse_assignments(values, option))


def _rules(values: tuple[str, ...]) -> dict[str, list[str]]:
    from comparators.spec import parse_assignments

    rules: dict[str, list[str]] = {}
    for column, rule in parse_assignments(values, "--tolerance"):
        rules.setdefault(column, []).append(rule)
    return rules


def _in_flight(value: str | None) -> InFlight | None:
    from comparators.errors import SpecError
    from comparators.spec import InFlight

    if value is None:
        return None
    column, _, since = value.rpartition("=")
    try:
        return InFlight(column, datetime.fromisoformat(since))
    except ValueError:
        raise SpecError(
            f"--in-flight {value!r}: expected COL=ISO-TIMESTAMP, e.g. updated_at=2024-05-01T02:00"
        ) from None


@click.command()
@click.argument("left", required=False)
@click.argument("right", required=False)
@click.option("--key", "keys", multiple=True, metavar="COL", help="Key column (repeat for composite keys).")
@click.option(
    "--tolerance",
    multiple=True,
    metavar="COL=RULE",
    help="Rule for a column (COL '*' = default): abs:X, rel:X, skew:2s, norm:trim,case, null:V, exact.",
)
@click.option("--ignore", multiple=True, metavar="COL", help="Column left out of the comparison.")
@click.option("--rename", multiple=True, metavar="RIGHT=LEFT", help="A right column's name on the left.")
@click.option(
    "--coerce",
    multiple=True,
    metavar="COL=TYPE",
    help="Compare a column as this DuckDB type on both sides (acknowledges a type mismatch).",
)
@click.option("--partition", metavar="COL", help="Also compare counts, sums and fingerprints per partition.")
@click.option(
    "--aggregate-tolerance",
    default="0",
    metavar="X",
    show_default=True,
    help="Relative tolerance for per-partition sums.",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="POSITION",
    help="RIGHT is a changelog; read it as of this source position (GTID, FILE:POS, LSN).",
)
@click.option(
    "--in-flight",
    "in_flight",
    metavar="COL=TIMESTAMP",
    help="Without positions: differences whose COL is after TIMESTAMP are in flight.",
)
@click.option(
    "--naive-tz",
    "naive_tz",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="IANA zone that timestamps without time zone are read in where they meet aware ones.",
)
@click.option("--require-rows", is_flag=True, help="Refuse (exit 2) an empty side instead of reporting it.")
@click.option("--baseline-left", metavar="SOURCE", help="A rerun of the batch, to measure its own noise.")
@click.option("--baseline-right", metavar="SOURCE", help="A replay of the stream, to measure its own noise.")
@click.option("--samples", default=10, show_default=True, help="Sample rows per cause.")
@click.option(
    "--history",
    "history_db",
    type=click.Path(path_type=Path),
    metavar="DB",
    help="Record the run in this DuckDB run-history database.",
)
@click.option("--name", help="Name of the comparison in the history (default: LEFT vs RIGHT).")
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), metavar="FILE", help="Write the report here.")
@click.option("--memory-limit", default=MEMORY_LIMIT, show_default=True)
@click.option(
    "--temp-dir",
    type=click.Path(path_type=Path),
    help="Where DuckDB spills (default: a private temp dir).",
)
@click.option("--threads", type=int, help="DuckDB threads (default: all cores).")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), help="Reconcile every output of a pipeline spec "
              "as of a batch run's source position (no LEFT/RIGHT; default ./dualrun.yaml, else the "
              "reference spec).")  # fmt: skip
@click.option("--run", "run_id", default="latest", show_default=True, help="With --spec: the batch run to align to.")
@click.option("--wait", type=float, help="With --spec: seconds to wait for the stream to pass the batch position.")
def reconcile(
    left: str | None,
    right: str | None,
    keys: tuple[str, ...],
    tolerance: tuple[str, ...],
    ignore: tuple[str, ...],
    rename: tuple[str, ...],
    coerce: tuple[str, ...],
    partition: str | None,
    aggregate_tolerance: str,
    as_of: str | None,
    in_flight: str | None,
    naive_tz: str,
    require_rows: bool,
    baseline_left: str | None,
    baseline_right: str | None,
    samples: int,
    history_db: Path | None,
    name: str | None,
    fmt: str,
    output: Path | None,
    memory_limit: str,
    temp_dir: Path | None,
    threads: int | None,
    spec_path: Path | None,
    run_id: str,
    wait: float | None,
) -> None:
    """Reconcile LEFT (batch output) with RIGHT (stream output).

    LEFT/RIGHT: a .parquet/.csv path or glob, duckdb:PATH?table=T, or a SQLAlchemy
    URL with ?table=T. Exit 0 when there are no unexplained differences, 1 when
    there are, 2 on usage or configuration errors.
    """
    from rich.console import Console

    from comparators import history
    from comparators.engine import Settings
    from comparators.engine import reconcile as run_reconcile
    from comparators.errors import SpecError
    from comparators.report import render
    from comparators.sources import open_source

    ctx = click.get_current_context()
    if spec_path is not None:
        if left is not None or right is not None:
            raise click.UsageError("give either --spec or LEFT and RIGHT, not both")
        _refuse_pair_options(ctx)
        _reconcile_spec(spec_path, run_id, wait, fmt, output)
        return
    if left is None and right is None and not _pair_options_given(ctx):
        # Neither form named: the spec form with the default spec, as checklist and batch check do.
        _reconcile_spec(None, run_id, wait, fmt, output)
        return
    for param in ("run_id", "wait"):
        if _given(ctx, param):
            raise SpecError(f"{_flag(ctx, param)} applies only with --spec")
    if left is None or right is None:
        raise click.UsageError("give LEFT and RIGHT (the batch and the stream output), or --spec")
    if not keys:
        raise click.UsageError("name the key with --key COL (repeat for a composite key)")
    try:
        agg_tol = Decimal(aggregate_tolerance)
    except InvalidOperation:
        raise SpecError(f"--aggregate-tolerance {aggregate_tolerance!r} is not a number") from None
    as_of = _position(as_of)
    settings = Settings(
        memory_limit=memory_limit,
        temp_directory=str(temp_dir) if temp_dir else None,
        threads=threads,
        allow_empty=not require_rows,
    )
    console = Console(stderr=True)
    show = console.is_terminal and not console.is_dumb_terminal
    with console.status("reconciling", spinner="dots") if show else _Quiet() as status:

        def progress(step: str) -> None:
            if status is not None:
                status.update(step)

        result = run_reconcile(
            left,
            open_source(right, position=as_of),
            keys,
            rules=_rules(tolerance),
            ignore=ignore,
            rename=_pairs(rename, "--rename"),
            coerce=_pairs(coerce, "--coerce"),
            partition=partition,
            aggregate_tolerance=agg_tol,
            samples=samples,
            in_flight=_in_flight(in_flight),
            naive_timezone=naive_tz,
            left_position=as_of,
            baseline_left=baseline_left,
            baseline_right=baseline_right,
            name=name,
            settings=settings,
            progress=progress,
        )
    if history_db is not None:
        # Two tables, no batch run: --as-of (the left position) is the source state judged, so
        # re-running at one position counts once; without it nothing ties two runs to one state of
        # the source, so no streak of "clean batch runs" is claimed.
        run_id = history.record(history_db, result)
        if as_of is None:
            click.echo(
                f"recorded run {run_id} in {history_db}; no --as-of position, so each run counts on its own "
                "(no parity streak claimed)",
                err=True,
            )
        else:
            streak = history.parity_streak(history_db, history.default_name(result))
            click.echo(
                f"recorded run {run_id} in {history_db}; parity streak {streak} (clean source positions in a "
                "row; runs at one --as-of position count once)",
                err=True,
            )
    emit_report(render(result, fmt), output, result.verdict)
    ctx.exit(result.exit_code)


# Options of the --spec form; every other option belongs to the LEFT/RIGHT form and is refused
# with --spec rather than silently ignored.
_SPEC_OPTIONS = frozenset({"left", "right", "spec_path", "run_id", "wait", "fmt", "output"})
# Where the spec says the same thing; options without an entry have no spec equivalent.
_SPEC_HOME = {
    "keys": "outputs.<name>.keys", "tolerance": "outputs.<name>.tolerances", "ignore": "outputs.<name>.ignore",
    "partition": "outputs.<name>.partition", "history_db": "compare.history",
}  # fmt: skip


def _position(text: str | None) -> str | None:
    """`--as-of` in its one canonical spelling (`0/16b3748` and `00/016B3748` are one LSN, GTID sets in
    domain order), so history counts one source state once however the user wrote it.

    >>> _position(" 1-1-3, 0-1-42"), _position("0/16b3748"), _position(None)
    ('0-1-42,1-1-3', '0/016B3748', None)
    """
    from comparators.errors import PositionError, SpecError
    from comparators.positions import parse_position

    if text is None:
        return None
    try:
        return str(parse_position(text))
    except PositionError as exc:
        raise SpecError(f"--as-of: {exc}") from None


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _flag(ctx: click.Context, name: str) -> str:
    param = next(p for p in ctx.command.params if p.name == name)
    return max(param.opts, key=len)


def _pair_options_given(ctx: click.Context) -> bool:
    return any(p.name is not None and p.name not in _SPEC_OPTIONS and _given(ctx, p.name) for p in ctx.command.params)


def _refuse_pair_options(ctx: click.Context) -> None:
    """Raise SpecError (exit 2) naming the first LEFT/RIGHT-only option given with --spec."""
    from comparators.errors import SpecError

    for param in ctx.command.params:
        name = param.name
        if name is None or name in _SPEC_OPTIONS or not _given(ctx, name):
            continue
        home = _SPEC_HOME.get(name)
        hint = (
            f"put it in the spec's {home} instead" if home else "the spec's outputs have no such setting; leave it out"
        )
        raise SpecError(f"{_flag(ctx, name)} does not apply with --spec: {hint}")


def _reconcile_spec(spec_path: Path | None, run_id: str, wait: float | None, fmt: str, output: Path | None) -> None:
    from rich.console import Console

    from migrate import render as migrate_render
    from migrate.asof import reconcile_spec
    from migrate.spec import load_spec

    spec = load_spec(spec_path)
    console = Console(stderr=True)
    with console.status("reconciling") as status:
        result = reconcile_spec(spec, run_id, wait=wait, progress=status.update)
    emit_report(migrate_render.spec_reconciliation(result, fmt), output, result.verdict)
    click.get_current_context().exit(result.exit_code)


class _Quiet:
    """Stands in for the progress spinner when stderr is not a terminal."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
