"""The pipeline spec: the packaged reference, errors that name the field, and job identities."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.spec import PipelineSpec, SpecError, load_spec, reference_spec_path

REFERENCE = reference_spec_path().read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dualrun.yaml"
    path.write_text(text)
    return path


def test_the_reference_spec_loads_from_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./dualrun.yaml here: the packaged reference is used
    for name in ("DUALRUN_MARIADB_PORT", "DUALRUN_KAFKA_PORT", "DUALRUN_CONNECT_PORT"):
        monkeypatch.delenv(name, raising=False)
    spec = load_spec()
    assert spec.name == "shop-orders" and spec.origin == str(reference_spec_path())
    assert spec.source.url.endswith("@127.0.0.1:3306/shop")
    assert set(spec.compare.outputs) == {"orders_enriched", "order_alerts", "daily_revenue"}


def test_the_reference_spec_follows_the_local_stacks_port_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALRUN_MARIADB_PORT", "23306")
    monkeypatch.setenv("DUALRUN_KAFKA_PORT", "29092")
    monkeypatch.setenv("DUALRUN_CONNECT_PORT", "28083")
    spec = load_spec(reference_spec_path())
    assert spec.source.url == "mysql+pymysql://dualrun@127.0.0.1:23306/shop"
    assert spec.kafka.bootstrap_servers == "127.0.0.1:29092"
    assert spec.cdc.connect_url == "http://127.0.0.1:28083"


def test_a_users_spec_is_taken_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DUALRUN_MARIADB_PORT", "23306")
    spec = load_spec(write(tmp_path, REFERENCE.replace("127.0.0.1:3306", "db.example.com:3307")))
    assert spec.source.url.endswith("@db.example.com:3307/shop")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("commit_interval_ms: 200", "commit_interval_ms: -5"), "stream.commit_interval_ms: Input should be greater"),
        (("source: [1,", ""), "not valid YAML at line"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    text = REFERENCE.replace(old, new) if old in REFERENCE else old + "\n"
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(write(tmp_path, text))
    assert str(caught.value).startswith(str(tmp_path / "dualrun.yaml"))
    assert caught.value.exit_code == 2


def test_a_missing_spec_file_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist; pass --spec"):
        load_spec(tmp_path / "nope.yaml")


def test_variants_never_share_an_identity_with_the_real_job() -> None:
    spec = load_spec(reference_spec_path())
    replay = spec.replay()
    identity = ("group_id", "transactional_id", "enriched_topic", "alerts_topic", "state_topic",
                "dead_letter_topic", "changelog_dir")  # fmt: skip
    for field in identity:
        assert getattr(replay.stream, field) != getattr(spec.stream, field), field
    assert replay.stream.group_id == "dualrun-stream-replay" and replay.name == "shop-orders+replay"
    assert replay.cdc == spec.cdc and replay.source == spec.source  # the same inputs
    defect = spec.variant("drop-deletes", defect="drop-deletes")
    assert defect.stream.defect == "drop-deletes" and replay.stream.defect is None
    assert isinstance(defect, PipelineSpec)
