"""`dualrun demo`: the README's main command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrate.commands.options import STREAM_DEFECTS

if TYPE_CHECKING:
    from migrate.spec import PipelineSpec

ALL_DEFECTS = sorted({defect for defects in STREAM_DEFECTS.values() for defect in defects})


@click.command()
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Pipeline spec (default ./dualrun.yaml, else the packaged reference spec).")  # fmt: skip
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="Override the spec's state_dir.")
@click.option("--events", default=3000, show_default=True, help="Workload operations to run.")
@click.option("--rate", default=300.0, show_default=True, help="Workload operations per second.")
@click.option("--seed", default=7, show_default=True, help="Workload random seed.")
@click.option("--stream", "stream_kind", type=click.Choice(sorted(STREAM_DEFECTS)), default="dualrun",
              show_default=True, help="The streaming side: dualrun's own Python job, or the article's Kafka "
              "Streams OrderEnricher as a subprocess (migrate/examples/order_enricher/spec.yaml).")  # fmt: skip
@click.option("--inject-defect", "defect", type=click.Choice(ALL_DEFECTS), default=None,
              help="Run a deliberately wrong streaming transform; the run must end non-clean.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(spec_path: Path | None, state_dir: Path | None, events: int, rate: float, seed: int,
         stream_kind: str, defect: str | None, as_json: bool) -> None:  # fmt: skip
    """Start the stack, run both pipelines under a live workload, reconcile them as of the batch position."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from comparators.report import render_run
    from migrate import render
    from migrate.checklist import evaluate
    from migrate.commands.run import spec_for, start_stream_background
    from migrate.demo import job_spec_for, run_demo
    from migrate.examples.order_enricher.runner import SPEC as KSTREAMS_SPEC
    from migrate.examples.order_enricher.runner import EnricherJob, EnricherSettings
    from migrate.reporting import build_report

    if defect is not None and defect not in STREAM_DEFECTS[stream_kind]:
        raise click.UsageError(
            f"--inject-defect {defect} is not a defect of the {stream_kind} stream; "
            f"choose one of {', '.join(sorted(STREAM_DEFECTS[stream_kind]))}"
        )
    kstreams = stream_kind == "kafka-streams"
    spec = spec_for(spec_path if spec_path is not None or not kstreams else KSTREAMS_SPEC, state_dir)
    console = Console(stderr=True)

    def start(job_spec: PipelineSpec, replay: bool) -> None:
        if kstreams:
            EnricherJob(Path(job_spec.state_dir), EnricherSettings.for_spec(job_spec, defect)).start()
        else:
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
            workload_progress=advanced, seed=seed, replay=not kstreams,
        )  # fmt: skip
    job_spec = job_spec_for(spec, defect)
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
