"""`dualrun run batch | stream`: the two pipelines of a spec."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrate.commands.options import spec_option, state_option
from migrate.errors import DualrunError
from migrate.process import ManagedProcess, wait_until
from migrate.stackconfig import StackConfig

if TYPE_CHECKING:
    from migrate.spec import PipelineSpec
    from migrate.stream.status import StreamStatus

__all__ = ["spec_for", "spec_option", "start_stream_background", "state_option", "stream_jobs", "stream_process"]


def spec_for(spec_path: Path | None, state_dir: Path | None) -> PipelineSpec:
    from migrate.spec import load_spec

    spec = load_spec(spec_path)
    if state_dir is not None:
        spec = spec.model_copy(update={"state_dir": str(state_dir.absolute())})
        if spec.local:
            spec = _files_of_stack(spec, StackConfig.from_env().state_dir, state_dir.absolute())
    return spec.model_copy(update={"state_dir": str(Path(spec.state_dir).absolute())})


def _files_of_stack(spec: PipelineSpec, loaded: Path, home: Path) -> PipelineSpec:
    """A local spec loaded for the stack at `loaded` (DUALRUN_HOME, else ./.dualrun) but run with
    --state-dir `home`: the stack's secrets files it names (${file:...} for Connect) are `home`'s."""
    moved = {
        name: str(home / Path(value).relative_to(loaded))
        for name in ("password_file", "kafka_secrets_file")
        if (value := getattr(spec.cdc, name)) and Path(value).is_relative_to(loaded)
    }
    return spec.model_copy(update={"cdc": spec.cdc.model_copy(update=moved)}) if moved else spec


def _stream_job(pid_file: Path, state_dir: Path | str) -> ManagedProcess:
    # The command line names the state dir: a recycled pid of some other process is never ours.
    return ManagedProcess("stream", pid_file, pid_file.with_suffix(".log"), f"--state-dir {state_dir}")


def stream_jobs(state_dir: Path) -> list[ManagedProcess]:
    """Every streaming job started under a state directory (the main one, replays, defects)."""
    home = state_dir.absolute()
    return [_stream_job(pid_file, home) for pid_file in sorted((home / "stream").glob("*.pid"))]


def stream_process(spec: PipelineSpec) -> ManagedProcess:
    return _stream_job(spec.path("stream") / f"{spec.stream.group}.pid", spec.state_dir)


def start_stream_background(
    spec: PipelineSpec,
    spec_path: Path | None,
    defect: str | None = None,
    replay: bool = False,
    metrics_port: int | None = None,
) -> int:
    """Start `dualrun run stream` detached; returns its pid once it reports itself running."""
    from migrate.stream.status import read_status

    proc = stream_process(spec)
    # The supervisor is what runs in the background (its pid in the pid file); it runs the job.
    argv = [sys.executable, "-m", "migrate.cli", "run", "stream", "--supervise", "--state-dir", spec.state_dir]
    if spec_path is not None:
        argv += ["--spec", str(Path(spec_path).absolute())]
    if defect is not None:
        argv += ["--inject-defect", defect]
    if replay:
        argv += ["--replay"]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    running = proc.cmdline()
    if running is not None:
        if running.strip() == " ".join(map(str, argv)):
            return proc.pid() or 0
        # A job of this state dir started for another spec or defect would write what that spec says
        # (a trial saw the demo reuse a job writing bare JSON for a spec whose sink needs Connect JSON).
        click.echo(f"restarting the streaming job of this state dir: it runs `{running.strip()}`", err=True)
        proc.stop(timeout=60)
    started = time.time()
    pid = proc.start(argv)

    def reported() -> StreamStatus | None:
        status = read_status(spec)
        if status is None or status.updated_at < started or pid not in (status.pid, status.supervisor_pid):
            return None
        return status

    wait_until(reported, timeout=90, what="the streaming job to start", process=proc)
    return pid


@click.group()
def run() -> None:
    """Run the legacy batch job or the streaming job of a spec."""


@run.command(context_settings={"allow_interspersed_args": False})
@spec_option
@state_option
@click.option("--json", "as_json", is_flag=True)
@click.option("--external", is_flag=True, help="Run your own batch job (the COMMAND after --) between two "
              "`batch mark`s and import its outputs from outputs.X.batch.import.")  # fmt: skip
@click.option("--from-log", "from_log", is_flag=True, help="Run the batch SQL in DuckDB over the captured tables "
              "rebuilt from their change topics, not over the source (recorded as run ID~log).")  # fmt: skip
@click.option("--position", metavar="P", help="With --from-log: latest (the connector's committed offset, default), "
              "batch (the latest batch run's position), a batch run id, or FILE:POS.")  # fmt: skip
@click.option("--wait", type=float, default=60.0, show_default=True,
              help="With --from-log: seconds to wait for the change log to reach the position.")  # fmt: skip
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def batch(spec_path: Path | None, state_dir: Path | None, as_json: bool, external: bool, from_log: bool,
          position: str | None, wait: float, command: tuple[str, ...]) -> None:  # fmt: skip
    """Run the nightly batch job once, in one consistent snapshot, and record its source position.

    With `batch.verify_cdc: true` in the spec, `dualrun cdc verify` runs after it (recorded in the
    history); the command then exits 1 when the change log has differences, 2 when it could not be
    verified. With --external: run COMMAND (your job) between two source positions, exit with its
    exit code. With --from-log: the same SQL, transpiled to DuckDB, over the tables rebuilt from
    Kafka as of --position (no access to the source database); when --position names a batch run,
    each output is also reconciled with that run's, and the command exits 1 when they differ.
    """
    from migrate import render
    from migrate.batch import run_batch

    spec = spec_for(spec_path, state_dir)
    if position is not None and not from_log:
        raise DualrunError("run batch: --position applies only with --from-log")
    if from_log:
        from migrate.logbatch import compare_with_batch, run_from_log

        if external or command:
            raise DualrunError("run batch: --from-log runs the spec's SQL; it takes no --external COMMAND")
        log_run, tables = run_from_log(spec, position, wait_seconds=wait)
        compared = compare_with_batch(spec, log_run, tables)
        if as_json:
            click.echo(
                render.to_json({**log_run.to_dict(), "batch_vs_log": {n: r.verdict for n, r in compared.items()}})
            )
        else:
            click.echo(render.log_batch_run(log_run, str(spec.warehouse_path), compared))
        if any(r.exit_code for r in compared.values()):
            raise SystemExit(1)
        return
    if command and not external:
        raise DualrunError(f"run batch: {command[0]!r} is a command; add --external to run your own batch job")
    if external:
        from migrate.marks import run_external

        code, ran, bracket = run_external(spec, command)
        if ran is None or bracket is None:
            click.echo(f"the batch job exited with {code}; no batch run recorded", err=True)
            click.get_current_context().exit(code)
            return
        click.echo(render.as_json(bracket) if as_json else render.bracketed_run(ran, bracket, str(spec.warehouse_path)))
        return
    result = run_batch(spec)
    click.echo(render.as_json(result) if as_json else render.batch_run(result, str(spec.warehouse_path)))
    if spec.batch.verify_cdc:
        from migrate.verify import history
        from migrate.verify.run import verify

        verification = verify(spec)
        history.record(spec.history_path, verification)
        click.echo(render.cdc_verification(verification, "json" if as_json else "text"), nl=False)
        if verification.exit_code:
            raise SystemExit(verification.exit_code)


@run.command()
@spec_option
@state_option
@click.option("--background", is_flag=True, help="Start detached (pid and log under the state dir) and return.")
@click.option("--stop", "stop_job", is_flag=True, help="Stop a background job started for this state dir.")
@click.option("--inject-defect", "defect", default=None, help="Run a deliberately wrong transform (demo only).")
@click.option("--no-eos", is_flag=True, help="Turn exactly-once off (for comparison; not for production).")
@click.option("--replay", is_flag=True, help="Run the stream's noise baseline: a second job over the same events.")
@click.option("--supervise", is_flag=True, hidden=True, help="Run the job as a child and restart it when it fails.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve Prometheus metrics on 127.0.0.1:PORT (0: any free port). Default: a free port when "
              "the stack runs with --monitoring, else none.")  # fmt: skip
def stream(spec_path: Path | None, state_dir: Path | None, background: bool, stop_job: bool, defect: str | None,
           no_eos: bool, replay: bool, supervise: bool, metrics_port: int | None) -> None:  # fmt: skip
    """Run the streaming job until SIGTERM/SIGINT, reporting throughput and lag."""
    from rich.console import Console

    from migrate import render

    spec = spec_for(spec_path, state_dir)
    if defect is not None and replay:
        raise DualrunError("--replay and --inject-defect exclude each other; choose one")
    if defect is not None:
        from migrate.demo import defect_spec

        spec = defect_spec(spec, defect)
    if replay:
        spec = spec.replay()
    if no_eos:
        spec = spec.with_changes(stream={"exactly_once": False})
    if stop_job:
        stopped = stream_process(spec).stop(timeout=60)
        click.echo("streaming job stopped" if stopped else "no streaming job was running for this state dir")
        return
    from cdc.client import check_access

    check_access(spec.stream_kafka())  # refused credentials or TLS: say so now, not in a retry loop
    if background:
        pid = start_stream_background(spec, spec_path, defect, replay, metrics_port)
        click.echo(f"streaming job running (pid {pid}); log: {stream_process(spec).log_file}")
        return
    if supervise:
        from migrate.stream.supervisor import Supervisor

        child = [sys.executable, "-m", "migrate.cli", *[a for a in sys.argv[1:] if a != "--supervise"]]
        sys.exit(Supervisor(spec, child, log=stream_process(spec).log_file).run())
    from migrate.stream.job import StreamJob
    from migrate.stream.supervisor import SUPERVISOR_ENV

    if stream_process(spec).pid() not in (None, os.getpid(), int(os.environ.get(SUPERVISOR_ENV) or 0)):
        raise DualrunError(
            f"a streaming job already runs for {spec.state_dir}; stop it with `dualrun run stream --stop`"
        )
    console = Console(stderr=True)
    job = StreamJob(spec, report=lambda status: render.stream_status_line(status, console), metrics_port=metrics_port)
    counters = job.run()
    click.echo(f"stopped after {counters.events_in} events in {counters.transactions} transactions", err=True)
