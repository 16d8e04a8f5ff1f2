"""The supervisor restarts a job that exits on an error, counts it and names a crash loop (real child processes)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from migrate.spec import PipelineSpec, example_spec_path, load_spec
from migrate.stream.status import read_status, status_path
from migrate.stream.supervisor import RestartPolicy, Supervisor, last_line

# A stand-in job: each run appends to runs.txt; runs 1-4 fail (run 2 after committing a transaction),
# run 5 keeps a copy of the status the supervisor wrote and exits 0, as a job asked to stop does.
JOB = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    home, status, log = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(home, "runs.txt"), "a") as fh:
        fh.write(os.environ["DUALRUN_STREAM_RESTARTS"] + " " + os.environ["DUALRUN_STREAM_SUPERVISOR"] + "\\n")
    runs = open(os.path.join(home, "runs.txt")).read().splitlines()
    if len(runs) == 2:
        now = time.time()
        report = {"pid": os.getpid(), "state": "running", "updated_at": now, "started_at": now,
                  "exactly_once": True, "committed_at": now, "transactions": 1}
        open(status, "w").write(json.dumps(report))
    if len(runs) >= 5:
        shutil.copy(status, os.path.join(home, "seen.json"))
        sys.exit(0)
    # Under `--background` the job's stderr is the log the supervisor reads.
    open(log, "a").write("error: streaming job cannot continue: PRODUCER_FENCED: fenced (fatal)\\n")
    sys.exit(1)
    """
)


def spec_in(tmp_path: Path) -> PipelineSpec:
    return load_spec(example_spec_path()).model_copy(update={"state_dir": str(tmp_path)})


def test_restarts_count_backoff_and_a_crash_loop_with_the_last_error(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    status_path(spec).parent.mkdir(parents=True)
    log = tmp_path / "job.log"
    argv = [sys.executable, "-c", JOB, str(tmp_path), str(status_path(spec)), str(log)]
    policy = RestartPolicy(first_s=0.05, max_s=0.2, crash_loop_after=2)
    assert Supervisor(spec, argv, policy=policy, log=log).run() == 0
    runs = (tmp_path / "runs.txt").read_text().splitlines()
    assert [r.split()[0] for r in runs] == ["0", "1", "2", "3", "4"]  # each start knows its restart count
    seen = json.loads((tmp_path / "seen.json").read_text())
    # Run 2 committed, so only runs 3 and 4 count as restarts without progress: a crash loop at 2.
    assert seen["state"] == "crash_loop" and seen["restarts"] == 4
    assert seen["error"].startswith("crash loop: 2 restarts without progress; last error: error: streaming job")
    assert "PRODUCER_FENCED" in seen["error"] and seen["supervisor_pid"] > 0
    assert read_status(spec) is not None


def test_backoff_doubles_to_its_cap_and_the_last_log_line_is_the_reason(tmp_path: Path) -> None:
    policy = RestartPolicy(first_s=1, max_s=60)
    assert [policy.delay(n) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]
    log = tmp_path / "x.log"
    assert last_line(log) is None
    log.write_text("starting\nerror: Kafka init_transactions failed for good: _FENCED\n\n")
    assert last_line(log) == "error: Kafka init_transactions failed for good: _FENCED"


def test_a_config_error_exit_is_not_restarted_and_the_status_says_why(tmp_path: Path) -> None:
    """Exit code 78 (EX_CONFIG: an output topic in the other JSON format): one start, status failed, no loop."""
    spec = spec_in(tmp_path)
    status_path(spec).parent.mkdir(parents=True)
    log = tmp_path / "job.log"
    job = ("import sys; open(sys.argv[1], 'a').write('error: cannot restore outputs.orders_enriched from topic "
           "orders-enriched: ...\\n'); open(sys.argv[2], 'a').write('run\\n'); sys.exit(78)")  # fmt: skip
    runs = tmp_path / "runs.txt"
    argv = [sys.executable, "-c", job, str(log), str(runs)]
    assert Supervisor(spec, argv, policy=RestartPolicy(first_s=0.05, max_s=0.1), log=log).run() == 78
    assert runs.read_text().splitlines() == ["run"]
    status = read_status(spec)
    assert status is not None and status.state == "failed" and status.restarts == 0
    assert status.error is not None and status.error.startswith("exited with code 78 (a config error), not restarted")
    assert "cannot restore outputs.orders_enriched" in status.error


def test_the_restore_format_error_exits_with_the_code_the_supervisor_stops_on() -> None:
    from migrate.stream.restore import RestoreFormatError
    from migrate.stream.supervisor import PERMANENT_CONFIG_EXIT

    assert RestoreFormatError.exit_code == PERMANENT_CONFIG_EXIT == 78


# Exit 2 is every error root's default (a revocable KafkaAccessError among them) and click's usage
# error: the supervisor restarts it. The stand-in exits 2 twice, then 0 as a job asked to stop does.
EXIT_2_TWICE = (
    "import sys; runs = open(sys.argv[1], 'a+'); runs.write('run\\n'); runs.seek(0); "
    "sys.exit(2 if len(runs.read().splitlines()) < 3 else 0)"
)


def test_exit_code_2_is_restarted_like_any_other_error(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    status_path(spec).parent.mkdir(parents=True)
    runs = tmp_path / "runs.txt"
    argv = [sys.executable, "-c", EXIT_2_TWICE, str(runs)]
    policy = RestartPolicy(first_s=0.05, max_s=0.1)
    assert Supervisor(spec, argv, policy=policy, log=tmp_path / "job.log").run() == 0
    assert runs.read_text().splitlines() == ["run", "run", "run"]
