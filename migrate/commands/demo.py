"""`dualrun demo`: the README's main command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrate.commands.options import DEFECTS

if TYPE_CHECKING:
    from migrate.spec import PipelineSpec


@click.command()
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Pipeline spec (default ./dualrun.yaml, else the packaged reference spec).")  # fmt: skip
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="Override the spec's state_dir.")
@click.option("--events", default=3000, show_default=True, help="Workload operations to run.")
@click.option("--rate", default=300.0, show_default=True, help="Workload operations per second.")
@click.option("--seed", default=7, show_default=True, help="Workload random seed.")
@click.option("--inject-defect", "defect", type=click.Choice(DEFECTS), default=None,
              help="Run a deliberately wrong streaming transform; the run must end non-clean.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(spec_path: Path | None, state_dir: Path | None, events: int, rate: float, seed: int,
         defect: str | None, as_json: bool) -> None:  # fmt: skip
    """Start the stack, run both pipelines under a live workload, reconcile them as of the batch position."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from comparators.report import render_run
    from migrate import render
    from migrate.checklist import evaluate
    from migrate.commands.run import spec_for, start_stream_background
    from migrate.demo import defect_spec, run_demo
    from migrate.reporting import build_report

    spec = spec_for(spec_path, state_dir)
    console = Console(stderr=True)

    def start(job_spec: PipelineSpec, replay: bool) -> None:
        start_stream_background(job_spec, spec_path, None if replay else defect, replay)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("workload", total=events, visible=False)

        def step(text: str) -> None:
            console.print(f"[bold cyan]>[/] {text}", highlight=False)

        def advanced(n: int) -> None:
            bar.update(task, completed=n, visible=True)

        result = run_demo(
            spec, events=events, rate=rate, start_stream=start, defect=defect, step=step,
            workload_progress=advanced, seed=seed,
        )  # fmt: skip
    job_spec = defect_spec(spec, defect) if defect else spec
    console.print("[bold cyan]>[/] evaluating the cutover checklist and writing the report", highlight=False)
    checks = evaluate(job_spec)
    report_path = Path(job_spec.state_dir) / ("report.html" if not defect else f"report-{defect}.html")
    report_path.write_text(render_run(build_report(job_spec, checks=checks), "html"))
    if as_json:
        click.echo(render.as_json(result))
    else:
        click.echo(render.spec_reconciliation(result.reconciliation, "text"))
        render.checklist(checks, Console())
        click.echo(render.demo_footer(result, spec, report_path))
    raise SystemExit(result.reconciliation.exit_code)
