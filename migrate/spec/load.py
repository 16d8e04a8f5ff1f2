"""YAML -> PipelineSpec: every problem with its path, `sql_file` resolution, the local stack's opt-in.

A wrong spec fails here, never later: `SpecError` says the file, the field's path and what to do
in one line (the first problem, with the count of the others), and carries every problem in
`problems` for callers that show them all.
"""

from __future__ import annotations

import difflib
from contextvars import ContextVar
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from migrate.errors import SpecError
from migrate.spec.model import PipelineSpec

DEFAULT_SPEC_NAMES = ("dualrun.yaml", "dualrun.yml")
_SECRET_FIELDS = ("default_password", "password", "default_connect_password", "connect_password", "default_secrets")


def example_spec_path() -> Path:
    """The local stack's example spec, shipped in the package (what `dualrun demo` runs)."""
    return Path(str(files("migrate") / "examples" / "shop_orders" / "spec.yaml"))


reference_spec_path = example_spec_path  # the name before spec v2


class SpecProblems(SpecError):
    """A spec that fails validation: the message is the first problem; `problems` holds them all."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def _did_you_mean(errors: list[Any]) -> list[Any]:
    """Unknown fields first (a typo'd key is the cause, the missing one its effect), each with the
    closest missing field of the same section as `did you mean`."""
    missing: dict[tuple[Any, ...], list[str]] = {}
    for e in errors:
        if e["type"] == "missing" and e["loc"]:
            missing.setdefault(tuple(e["loc"][:-1]), []).append(str(e["loc"][-1]))
    unknown, rest = [], []
    for e in errors:
        if e["type"] != "extra_forbidden" or not e["loc"]:
            rest.append(e)
            continue
        close = difflib.get_close_matches(str(e["loc"][-1]), missing.get(tuple(e["loc"][:-1]), []), n=1)
        unknown.append({**e, "hint": close[0]} if close else e)
    return unknown + rest


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the spec reference in the README"
        if "hint" in error:
            message = f"unknown field; did you mean `{error['hint']}`?"
    elif error["type"] == "missing":
        message = "required field is missing"
    return f"{where}: {message}" if where else message  # checks across sections name their own path


def explain(exc: ValidationError, origin: str) -> SpecProblems:
    problems = [_problem(e) for e in _did_you_mean(list(exc.errors()))]
    more = f" (and {len(problems) - 1} more problem(s); --debug lists them)" if len(problems) > 1 else ""
    return SpecProblems(f"{origin}: {problems[0]}{more}", problems)


def _names_default_port(address: Any, default: int) -> bool:
    """True when `address` (a URL or host:port; None) is absent or ends in the stack's default port."""
    if not isinstance(address, str) or not address.strip():
        return True
    return address.rstrip("/").rsplit(":", 1)[-1] == str(default)


def _on_local_stack(raw: dict[str, Any]) -> dict[str, Any]:
    """`local: true`: the spec describes the local stack, so where it names the stack's default
    ports it follows the stack's port overrides (DUALRUN_*_PORT), and it gets the local passwords;
    `dualrun demo` works when 3306 or 9092 is taken. A port the spec sets otherwise is kept."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from migrate.stackconfig import Ports, StackConfig

    stack = StackConfig.from_env()
    ports, defaults = stack.ports, Ports()
    source = {**raw.get("source", {}), "default_password": stack.db_password}
    try:
        url = make_url(source["url"]) if isinstance(source.get("url"), str) else None
    except ArgumentError:  # not a URL: SourceSpec's validator names the field and the form to use
        url = None
    if url is not None:
        postgres = source.get("kind") == "postgres"
        # Only a URL naming the stack's default port means "the stack": any other port was chosen.
        if url.port in (None, defaults.postgres if postgres else defaults.mariadb):
            port = ports.postgres if postgres else ports.mariadb
            source["url"] = url.set(port=port).render_as_string(hide_password=False)
    cdc = {**raw.get("cdc", {}), "default_password": stack.debezium_password}
    if _names_default_port(cdc.get("connect_url"), defaults.connect):
        cdc["connect_url"] = stack.connect_url
        # The stack's worker resolves ${file:...} from its secrets file (migrate.services.connect):
        # Debezium's database password never sits in Connect's config topic.
        cdc.setdefault("password_file", str(stack.connect_secrets_file))
        if stack.secure:
            # The secured stack's Connect: HTTPS (the local CA) with basic auth.
            user, password = stack.connect_http()["auth"]
            cdc.update(connect_user=user, default_connect_password=password, connect_ca=stack.connect_http()["verify"])
    kafka = dict(raw.get("kafka", {}))
    if _names_default_port(kafka.get("bootstrap_servers"), defaults.kafka):
        kafka["bootstrap_servers"] = f"127.0.0.1:{ports.kafka}"
    stream = raw.get("stream", {})
    if stack.secure:
        # The secured stack's users: dualrun reads, the job writes as `stream`, Debezium's schema
        # history is `debezium`'s; their passwords come from the stack's users file.
        users = {user: stack.kafka(user) for user in ("dualrun", "stream", "debezium")}
        kafka["properties"] = {**users["dualrun"].properties, **kafka.get("properties", {})}
        kafka["default_secrets"] = dict(users["dualrun"].secrets)
        stream = {**stream, "kafka_properties": {"sasl.username": "stream"},
                  "default_secrets": dict(users["stream"].secrets)}  # fmt: skip
        cdc.update(kafka_properties={"sasl.username": "debezium"}, default_secrets=dict(users["debezium"].secrets),
                   kafka_secrets_file=str(stack.state_dir / "secure" / "debezium.properties"),
                   password_file=str(stack.state_dir / "secure" / "debezium.properties"))  # fmt: skip
    return {**raw, "source": source, "cdc": cdc, "kafka": kafka, "stream": stream}


def _secrets_in(raw: dict[str, Any]) -> str | None:
    for section in ("source", "cdc", "kafka", "stream"):
        body = raw.get(section)
        if isinstance(body, dict):
            for name in _SECRET_FIELDS:
                if name in body:
                    return f"{section}.{name}"
    return None


def _resolve_sql_files(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`sql_file` and `import` file paths relative to the spec file's folder become absolute."""
    outputs = raw.get("outputs")
    if not isinstance(outputs, dict):
        return raw
    resolved: dict[str, Any] = {}
    for name, output in outputs.items():
        batch = output.get("batch") if isinstance(output, dict) else None
        if isinstance(batch, dict) and isinstance(batch.get("sql_file"), str):
            path = Path(batch["sql_file"]).expanduser()
            batch = {**batch, "sql_file": str(path if path.is_absolute() else (folder / path).absolute())}
            output = {**output, "batch": batch}
        imported = batch.get("import") if isinstance(batch, dict) else None
        if isinstance(imported, dict) and isinstance(output, dict) and isinstance(batch, dict):
            # An external job's Parquet or CSV file, like sql_file, relative to the spec file.
            for kind in ("parquet", "csv"):
                if isinstance(imported.get(kind), str):
                    path = Path(imported[kind]).expanduser()
                    imported = {**imported, kind: str(path if path.is_absolute() else (folder / path).absolute())}
            output = {**output, "batch": {**batch, "import": imported}}
        resolved[name] = output
    return {**raw, "outputs": resolved}


def parse_spec(raw: Any, origin: str, folder: Path | None = None) -> PipelineSpec:
    """Validate a spec already read into Python (a YAML document); `folder` resolves sql_file."""
    if raw is None:
        raise SpecError(f"{origin}: the spec is empty; it needs name, source, cdc, kafka, stream and outputs")
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: expected a mapping of sections (source, cdc, kafka, stream, outputs) at the top")
    if secret := _secrets_in(raw):
        raise SpecError(
            f"{origin}: {secret}: passwords never live in the spec; name the environment variable in password_env"
        )
    if "outputs" not in raw:
        raise SpecError(
            f"{origin}: outputs: the spec declares no outputs; add each output with its keys and batch SQL "
            "(see the spec reference in the README)"
        )
    raw = _resolve_sql_files(raw, folder or Path.cwd())
    if raw.get("local") is True:
        raw = _on_local_stack(raw)
    try:
        return PipelineSpec.model_validate({**raw, "origin": origin})
    except ValidationError as exc:
        raise explain(exc, origin) from None


# The spec file the running command loaded: the CLI names it in a spec error raised later (an
# unset `*_env` variable, a tolerance on a column the output lacks), which only knows its key path.
LOADED: ContextVar[Path | None] = ContextVar("dualrun_spec_file", default=None)


def load_spec(path: str | Path | None = None) -> PipelineSpec:
    """Load and validate a spec; None finds ./dualrun.yaml, else the local stack's example spec."""
    if path is None:
        found = next((Path(n) for n in DEFAULT_SPEC_NAMES if Path(n).exists()), None)
        path = found or example_spec_path()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; pass --spec with a path to a dualrun YAML spec") from None
    except IsADirectoryError:
        raise SpecError(f"spec {path} is a folder; pass --spec with a path to a dualrun YAML spec") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    spec = parse_spec(raw, str(path), path.absolute().parent)
    LOADED.set(path)
    return spec
